/**
 * API keys: created with a secret shown once (only its hash is stored), listed, revoked, and the keys
 * an operator starts with (SESSIOND_BOOTSTRAP_ADMIN_KEY, or a first-start key for a local install).
 */
import { hashSecret, MIN_BOOTSTRAP_SECRET_LENGTH, newSecret, secretPrefix, type ApiKey, type Role } from "./access.js";
import { InvalidInputError, NotFoundError } from "./errors.js";
import { decodeGlobalId, newUuid } from "./ids.js";
import type { HashedApiKey, KeyStore } from "./key-store.js";
import type { NamespaceStore } from "./namespace-store.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import { checkNamespace, checkPageSize, checkText } from "./session-model.js";

/** Shortest and longest expiry a key may be given. */
export const MIN_KEY_EXPIRY_MS = 60_000;
export const MAX_KEY_EXPIRY_MS = 10 * 366 * 24 * 3600_000;

/** Input of {@link ApiKeyService.create}. */
export interface CreateApiKeyInput {
  displayName: string;
  role: Role | undefined;
  /** The one namespace the key may reach; "" for all. */
  namespace: string;
  /** Undefined for no expiry. */
  expiresAfterMs: number | undefined;
  /** Who creates it: an API key id, "cli", ... */
  createdBy: string;
}

/** Managing API keys. */
export interface ApiKeyService {
  create(input: CreateApiKeyInput): Promise<{ key: ApiKey; secret: string }>;
  /** Keys of `namespace` ("" for every key), newest first. */
  list(input: { namespace: string; showRevoked: boolean; pageSize: number; pageToken: string }): Promise<{ keys: ApiKey[]; nextPageToken: string }>;
  /** Revokes the key `id` (a global id), which must belong to `namespace` unless that is "". */
  revoke(id: string, namespace: string): Promise<ApiKey>;
  /** Makes sure an ADMIN key for all namespaces with this secret exists (replacing an earlier bootstrap secret). */
  ensureBootstrap(secret: string): Promise<ApiKey>;
  /** When no key was ever made: makes an ADMIN key for all namespaces and returns it with its secret. */
  createFirstKey(): Promise<{ key: ApiKey; secret: string } | undefined>;
}

/** A stored key as the API shows it: never with its hash. */
function withoutSecret({ secretHash: _, ...key }: HashedApiKey): ApiKey {
  return key;
}

/** Checks a role from the API. */
function checkRole(role: Role | undefined): Role {
  if (!role) throw new InvalidInputError("role", "is required: ROLE_READER, ROLE_WRITER or ROLE_ADMIN");
  return role;
}

/** The service over the key and namespace stores. */
export function createApiKeyService(deps: { keys: KeyStore; namespaces: NamespaceStore }): ApiKeyService {
  const { keys, namespaces } = deps;
  const MAX_CREATED_BY = 128;

  async function insert(v: { namespaceId: string | null; displayName: string; role: Role; createdBy: string; expiresAfterMs: number | null }) {
    // The secret embeds the key's id, so the id is chosen here rather than by the database.
    const uuid = newUuid();
    const secret = newSecret("sk", uuid);
    // The creator's name is capped as the column is (a client certificate's identity can be a long URI).
    const createdBy = v.createdBy.length > MAX_CREATED_BY ? `${v.createdBy.slice(0, MAX_CREATED_BY - 1)}…` : v.createdBy;
    const row = await keys.insert({ uuid, ...v, createdBy, secretHash: hashSecret(secret), secretPrefix: secretPrefix(secret) });
    return { key: withoutSecret(row), secret };
  }

  return {
    async create(input) {
      const displayName = checkText("display_name", input.displayName, 128, { required: true, id: true });
      const role = checkRole(input.role);
      const ms = input.expiresAfterMs;
      if (ms !== undefined && (ms < MIN_KEY_EXPIRY_MS || ms > MAX_KEY_EXPIRY_MS)) throw new InvalidInputError("expires_after", "must be between 1 minute and 10 years");
      let namespaceId: string | null = null;
      if (input.namespace) {
        const ns = await namespaces.find(checkNamespace(input.namespace));
        if (!ns) throw new NotFoundError(`namespace "${input.namespace}" not found; create it first (AdminService.CreateNamespace)`);
        namespaceId = ns.uuid;
      }
      return insert({ namespaceId, displayName, role, createdBy: input.createdBy, expiresAfterMs: ms ?? null });
    },

    async list(input) {
      const limit = checkPageSize(input.pageSize);
      const fp = fingerprint({ keys: input.namespace, r: input.showRevoked });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace and show_revoked") : undefined;
      let namespaceId: string | undefined;
      if (input.namespace) {
        namespaceId = (await namespaces.find(checkNamespace(input.namespace)))?.uuid;
        if (!namespaceId) return { keys: [], nextPageToken: "" };
      }
      const rows = await keys.list({ namespaceId, showRevoked: input.showRevoked, after, limit: limit + 1 });
      const page = pageOf(rows, limit, (last) => encodePageToken({ createTime: last.createTime, uuid: last.uuid }, fp));
      return { keys: page.items.map(withoutSecret), nextPageToken: page.nextPageToken };
    },

    async revoke(id, namespace) {
      const uuid = decodeGlobalId("ApiKey", id);
      let namespaceId: string | undefined;
      if (namespace) {
        namespaceId = (await namespaces.find(checkNamespace(namespace)))?.uuid;
        if (!namespaceId) throw new NotFoundError(`API key ${id} not found`);
      }
      const row = await keys.revoke(uuid, namespaceId);
      if (!row) throw new NotFoundError(`API key ${id} not found${namespace ? ` in namespace "${namespace}"` : ""}`);
      return withoutSecret(row);
    },

    async ensureBootstrap(secret) {
      if (secret.length < MIN_BOOTSTRAP_SECRET_LENGTH) throw new InvalidInputError("SESSIOND_BOOTSTRAP_ADMIN_KEY", `must be at least ${MIN_BOOTSTRAP_SECRET_LENGTH} characters`);
      return withoutSecret(await keys.upsertBootstrap(hashSecret(secret), ""));
    },

    async createFirstKey() {
      if (await keys.any()) return undefined;
      return insert({ namespaceId: null, displayName: "first-start admin", role: "admin", createdBy: "first-start", expiresAfterMs: null });
    },
  };
}
