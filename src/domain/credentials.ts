/**
 * Checking a presented secret: an API key (`sk_…`), a session's client secret (`cs_…`), or the
 * operator's bootstrap secret. Secrets are hashed and the hashes compared in constant time. API key
 * rows are cached briefly per process; client secrets are read fresh on every request, so that a
 * cancel or refresh takes effect at once everywhere, and are counted against their session's
 * per-minute limit in the database, shared by every server process.
 */
import type { ClientSecretStore } from "./client-secret-store.js";
import type { HashedApiKey as ApiKeyRow, KeyStore } from "./key-store.js";
import { parseSecret, secretMatches, type Principal } from "./access.js";
import { RateLimitedError, UnauthenticatedError } from "./errors.js";

/** How long a process trusts a cached API key row: a revocation elsewhere takes effect within this. */
export const KEY_CACHE_MS = 2000;
const KEY_CACHE_MAX = 10_000;

/** Authentication of requests. */
export interface Credentials {
  /**
   * Who presents `secret`. @throws UnauthenticatedError (unknown, revoked or expired, or a client
   * secret of a session that is cancelled, soft-deleted or past expire_time)
   */
  authenticate(secret: string): Promise<Principal>;
  /** Counts one request of a client secret. @throws RateLimitedError when over the session's limit */
  admit(principal: Extract<Principal, { kind: "client" }>): Promise<void>;
  /** Forgets cached key rows (after a revocation in this process). */
  forget(keyUuid?: string): void;
}

const rejected = () => new UnauthenticatedError("the credential is unknown, revoked or expired");

/** The service over the key and client-secret stores. */
export function createCredentials(deps: { keys: KeyStore; clientSecrets: ClientSecretStore; now?: () => number }): Credentials {
  const { keys, clientSecrets } = deps;
  const now = deps.now ?? Date.now;
  const cache = new Map<string, { row: ApiKeyRow | undefined; until: number }>();
  // Loads in flight by key: when a busy key's entry expires, the calls that find it stale share one
  // read instead of each making its own (64 calls in flight made up to 64 reads every KEY_CACHE_MS).
  const loading = new Map<string, Promise<ApiKeyRow | undefined>>();

  async function keyRow(key: string, load: () => Promise<ApiKeyRow | undefined>): Promise<ApiKeyRow | undefined> {
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.row;
    let pending = loading.get(key);
    if (!pending) {
      // A forget() (a revocation) while the read was in flight leaves its row uncached: it may predate it.
      const settle = () => {
        const current = loading.get(key) === pending;
        if (current) loading.delete(key);
        return current;
      };
      pending = load().then(
        (row) => {
          if (settle()) {
            if (cache.size >= KEY_CACHE_MAX) cache.clear();
            // Unknown ids are not cached: they would let anyone fill the cache.
            if (row) cache.set(key, { row, until: now() + KEY_CACHE_MS });
          }
          return row;
        },
        (err: unknown) => {
          settle();
          throw err;
        },
      );
      loading.set(key, pending);
    }
    return pending;
  }

  function principalOf(secret: string, row: ApiKeyRow | undefined): Principal {
    if (!secretMatches(secret, row?.secretHash)) throw rejected();
    if (!row || row.revokeTime || (row.expireTime && row.expireTime.getTime() <= now())) throw rejected();
    return { kind: "key", keyUuid: row.uuid, role: row.role, namespace: row.namespace };
  }

  return {
    async authenticate(secret) {
      const parsed = parseSecret(secret);
      if (parsed.kind === "sk") return principalOf(secret, await keyRow(parsed.uuid, () => keys.find(parsed.uuid)));
      if (parsed.kind === "other") return principalOf(secret, await keyRow("bootstrap", () => keys.findBootstrap()));
      const row = await clientSecrets.find({ uuid: parsed.uuid, namespaceId: parsed.namespaceId });
      if (!secretMatches(secret, row?.secretHash) || !row?.usable) throw rejected();
      return { kind: "client", sessionUuid: row.sessionUuid, externalId: row.externalId, namespace: row.namespace, namespaceId: row.namespaceId, maxRequestsPerMinute: row.maxRequestsPerMinute };
    },

    async admit(principal) {
      const limit = principal.maxRequestsPerMinute;
      const waitMs = await clientSecrets.admit({ namespaceId: principal.namespaceId, uuid: principal.sessionUuid }, limit);
      if (waitMs > 0) throw new RateLimitedError(`this session's client secret is over its limit of ${limit} requests per minute`, waitMs);
    },

    forget(keyUuid) {
      if (keyUuid) {
        cache.delete(keyUuid);
        loading.delete(keyUuid);
      } else {
        cache.clear();
        loading.clear();
      }
      cache.delete("bootstrap");
      loading.delete("bootstrap");
    },
  };
}
