/**
 * The session lifecycle: create, read, list, update, cancel, soft delete / undelete, truncate, delete.
 * Rules and transactions live here; SQL lives in the store, protobuf in the handlers.
 */
import type { BulkDeleteEvent, BulkDeleteInput } from "./bulk-delete.js";
import type { Operations } from "./operations.js";
import { cutoffsOf, isExpired } from "./retention.js";
import { hashSecret, newSecret } from "./access.js";
import { checkNewParticipants, type NewParticipant, type Participant } from "./conversation-model.js";
import { ConflictError, InvalidInputError, NamespaceGoneError, NotFoundError, PreconditionError } from "./errors.js";
import { decodeSessionId, encodeSessionId, newUuid, sessionIdIn } from "./ids.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import {
  checkData,
  checkExpiresAfter,
  checkFilter,
  checkLabels,
  checkMaxRequestsPerMinute,
  checkNamespace,
  checkPageSize,
  checkText,
  etagOf,
  sessionOf,
  type DeletedCounts,
  type JsonObject,
  type Session,
  type SessionFilter,
  type SessionRef,
  type StoredSession,
} from "./session-model.js";
import type { NamespacedSessionKey, SessionKey, SessionStore, TruncateCounts } from "./session-store.js";
import type { Stores } from "./stores.js";
import type { Changed } from "./watch-model.js";

/** Input of {@link SessionService.create}. */
export interface CreateSessionInput {
  namespace: string;
  sessionId: string;
  user: string;
  workflow: { id: string; version: string };
  data: JsonObject;
  labels: Record<string, string>;
  /** undefined: the default (10 minutes). */
  expiresAfterMs?: number;
  /** 0: the default (10). */
  maxRequestsPerMinute: number;
  /** Bound in the session's own transaction, in this order (at most MAX_PARTICIPANTS_AT_CREATE). */
  participants?: NewParticipant[];
}

/** How a call names one session, as it arrives (not yet validated). */
export interface SessionAddress {
  id: string;
  namespace: string;
  sessionId: string;
}

/** Input of {@link SessionService.list}. */
export interface ListSessionsInput {
  namespace: string;
  pageSize: number;
  pageToken: string;
  filter: SessionFilter;
  showDeleted: boolean;
  ascending: boolean;
}

/** Fields UpdateSession may change, named as in the API's field mask. */
export const UPDATABLE_PATHS = ["data", "labels", "user", "workflow", "workflow.id", "workflow.version"] as const;

/** Input of {@link SessionService.update}. */
export interface UpdateSessionInput {
  address: SessionAddress;
  paths: string[];
  values: { data: JsonObject; labels: Record<string, string>; user: string; workflow: { id: string; version: string } };
  etag: string;
}

/** The session lifecycle operations. */
export interface SessionService {
  /**
   * Creates a session with its client secret (returned only here) and binds the participants given, in
   * one transaction: if any of it fails, nothing is created.
   */
  create(input: CreateSessionInput): Promise<Session & { clientSecret: ClientSecret; participants: Participant[] }>;
  get(address: SessionAddress, showDeleted: boolean): Promise<Session>;
  list(input: ListSessionsInput): Promise<{ sessions: Session[]; nextPageToken: string }>;
  update(input: UpdateSessionInput): Promise<Session>;
  /** Deletes a session for good; returns its ids, its namespace and what went with it. */
  delete(address: SessionAddress, etag: string): Promise<{ id: string; sessionId: string; namespace: string; deleted: DeletedCounts }>;
  softDelete(address: SessionAddress): Promise<Session>;
  undelete(address: SessionAddress): Promise<Session>;
  truncate(address: SessionAddress): Promise<{ session: Session } & TruncateCounts>;
  /** Cancels the session and revokes its client secret. */
  cancel(address: SessionAddress): Promise<Session>;
  /** Issues a new client secret for an active session, valid for expiresAfterMs (default 10 minutes). */
  refreshClientSecret(address: SessionAddress, expiresAfterMs: number | undefined): Promise<{ session: Session; clientSecret: ClientSecret }>;
  /** Starts a bulk delete as an operation and streams it (see operations.ts). */
  bulkDelete(input: BulkDeleteInput, signal: AbortSignal): AsyncGenerator<BulkDeleteEvent>;
}

/** A session's client secret, as issued (only at creation and refresh). */
export interface ClientSecret {
  value: string;
  expireTime: Date;
}

/**
 * Resolves (creating on first use) the namespace `name` and runs `insert` in it. The namespace id is
 * cached per process, so when another process deleted the namespace meanwhile the insert fails on the
 * foreign key: then the name is resolved once more (re-creating the namespace) and the insert retried.
 */
export async function insertRetryingGoneNamespace<T>(store: Pick<SessionStore, "namespaceId">, name: string, insert: (namespaceId: string) => Promise<T>): Promise<T> {
  try {
    return await insert((await store.namespaceId(name, true))!);
  } catch (err) {
    if (!(err instanceof NamespaceGoneError)) throw err;
    return insert((await store.namespaceId(name, true))!);
  }
}

/** Validates how a call names a session. @throws InvalidInputError */
export function parseAddress(address: SessionAddress, prefix = ""): SessionRef {
  if (address.id && address.sessionId) throw new InvalidInputError(`${prefix}id`, `set either ${prefix}id or ${prefix}session_id, not both`);
  if (address.id) {
    const id = decodeSessionId(address.id, `${prefix}id`);
    return { kind: "uuid", ...id, namespace: address.namespace ? checkNamespace(address.namespace, `${prefix}namespace`) : undefined };
  }
  if (!address.sessionId) throw new InvalidInputError(`${prefix}id`, `${prefix}id or ${prefix}session_id is required`);
  return { kind: "external", namespace: checkNamespace(address.namespace, `${prefix}namespace`), sessionId: checkText(`${prefix}session_id`, address.sessionId, 256, { id: true }) };
}

/**
 * Where to look for the session `ref` names: in the namespace the call names or, when it names none,
 * in the one its global id carries. Undefined when no such session can exist: the call's namespace
 * does not exist, or the id carries another namespace (the session is not in the call's namespace,
 * so the call answers as for any session absent from it). By uuid alone only for an id of the old form
 * in a call that names no namespace.
 */
export async function sessionKeyOf(s: Pick<SessionStore, "namespaceId">, ref: SessionRef): Promise<SessionKey | undefined> {
  const named = ref.namespace === undefined ? undefined : await s.namespaceId(ref.namespace, false);
  if (ref.namespace !== undefined && named === undefined) return undefined;
  if (ref.kind === "external") return { namespaceId: named!, externalId: ref.sessionId };
  if (named !== undefined && !sessionIdIn(ref, named)) return undefined;
  const namespaceId = named ?? ref.namespaceId;
  return namespaceId === undefined ? { uuid: ref.uuid } : { namespaceId, uuid: ref.uuid };
}

/**
 * Like {@link sessionKeyOf}, with the namespace always known: a global id of the old form in a call
 * naming no namespace is first looked up by uuid alone (reaching every shard) to find it. Undefined
 * when the session does not exist.
 */
export async function namespacedKeyOf(s: Pick<SessionStore, "namespaceId" | "find">, ref: SessionRef): Promise<NamespacedSessionKey | undefined> {
  const key = await sessionKeyOf(s, ref);
  if (!key || key.namespaceId !== undefined) return key;
  const found = await s.find(key);
  return found && { namespaceId: found.namespaceId, uuid: found.uuid };
}

/**
 * Finds the session a call names (soft-deleted ones only when `showDeleted`), optionally row-locked.
 * @throws InvalidInputError for a malformed address, NotFoundError when absent or in another namespace
 */
export async function loadSession(s: SessionStore, address: SessionAddress, opts: { showDeleted?: boolean; lock?: boolean } = {}): Promise<Session> {
  return sessionOf(await loadStored(s, address, opts));
}

/** The error for a session the call names that does not exist (or not in the call's namespace). */
function notFoundOf(ref: SessionRef, address: SessionAddress): NotFoundError {
  return new NotFoundError(ref.kind === "uuid" ? `session ${address.id} not found` : `session "${ref.sessionId}" not found in namespace "${ref.namespace}"`);
}

/**
 * The version an etag names when it is exactly one etagOf makes (`"v<version>"`, no leading zero, within
 * the version column's integer range), else undefined: any other etag is compared as before, and conflicts.
 */
function versionOfEtag(etag: string): number | undefined {
  const m = /^"v(0|[1-9]\d{0,9})"$/.exec(etag);
  const version = m ? Number(m[1]) : NaN;
  return version <= 0x7fffffff && etagOf(version) === etag ? version : undefined;
}

/** loadSession's session as stored, with its version. */
async function loadStored(s: SessionStore, address: SessionAddress, opts: { showDeleted?: boolean; lock?: boolean }): Promise<StoredSession> {
  const ref = parseAddress(address);
  const notFound = () => notFoundOf(ref, address);
  // A row lock is taken through the namespace only (a lock by uuid alone would reach every shard).
  const key = opts.lock ? await namespacedKeyOf(s, ref) : await sessionKeyOf(s, ref);
  if (!key) throw notFound();
  const stored = await s.find(key, opts.lock);
  if (!stored || (stored.state === "soft_deleted" && !opts.showDeleted)) throw notFound();
  // Past its namespace's retention policy: hidden at once, before the sweeper deletes it.
  if (s.retention) {
    const policy = s.retention.cached(stored.namespaceId) ?? (await s.retention.policyOf(stored.namespaceId, s.retentionPolicy));
    if (isExpired(policy, stored)) throw notFound();
  }
  return stored;
}

/**
 * Creates the service over the stores (the session store, and the stores' transactions for a create that
 * binds participants), and the operations bulk deletes run as.
 */
export function createSessionService(deps: { stores: Pick<Stores, "sessions" | "transaction">; operations: Pick<Operations, "bulkDelete">; changed?: Changed }): SessionService {
  const { stores, operations } = deps;
  const store = stores.sessions;
  const changed = deps.changed ?? (() => {});
  /** Tells the session's watchers, once the change committed. */
  const told = <T extends Session>(session: T): T => {
    changed(session.namespaceId, { uuid: session.uuid }, true);
    return session;
  };

  function checkEtag(session: Session, etag: string, field: string) {
    if (etag && etag !== session.etag) throw new ConflictError(`${field}: the session changed since (etag ${etag}, now ${session.etag}); read it again and retry`);
  }

  return {
    async create(input) {
      const namespace = checkNamespace(input.namespace);
      const values = {
        externalId: checkText("session_id", input.sessionId, 256, { id: true }) || crypto.randomUUID(),
        user: checkText("user", input.user, 256),
        workflowId: checkText("workflow.id", input.workflow.id, 256),
        workflowVersion: checkText("workflow.version", input.workflow.version, 64),
        data: checkData(input.data),
        labels: checkLabels(input.labels),
        expiresAfterMs: checkExpiresAfter(input.expiresAfterMs),
        maxRequestsPerMinute: checkMaxRequestsPerMinute(input.maxRequestsPerMinute),
      };
      const participants = checkNewParticipants(input.participants ?? []);
      const uuid = newUuid();
      // The secret names the namespace, which is known only once resolved (again, if it went meanwhile).
      let secret = "";
      const { stored, bound } = await insertRetryingGoneNamespace(store, namespace, (namespaceId) => {
        secret = newSecret("cs", uuid, namespaceId);
        const row = { uuid, namespaceId, clientSecretHash: hashSecret(secret), ...values };
        // Without participants a single INSERT, as ever; with them, one transaction for all of it.
        if (!participants.length) return store.insert(row).then((s) => ({ stored: s, bound: [] as Participant[] }));
        return stores.transaction(async (tx) => {
          // Counted as the session is inserted: one statement fewer than counting them after.
          const s = await tx.sessions.insert({ ...row, participantCount: participants.length });
          const bound = await tx.conversations.bindNew(s, participants);
          return { stored: s, bound };
        });
      });
      const session = told(sessionOf(stored));
      return { ...session, clientSecret: { value: secret, expireTime: session.expireTime }, participants: bound };
    },

    get: (address, showDeleted) => loadSession(store, address, { showDeleted }),

    async list(input) {
      const namespace = checkNamespace(input.namespace);
      const limit = checkPageSize(input.pageSize);
      const filter = checkFilter(input.filter);
      const fp = fingerprint({
        namespace,
        filter: { ...filter, labels: filter.labels && Object.fromEntries(Object.entries(filter.labels).sort()) },
        showDeleted: input.showDeleted,
        ascending: input.ascending,
      });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp) : undefined;
      const namespaceId = await store.namespaceId(namespace, false);
      if (!namespaceId) return { sessions: [], nextPageToken: "" };
      // Sessions past the namespace's retention policy are left out at once, before the sweeper deletes them.
      const retained = store.retention && cutoffsOf(await store.retention.policyOf(namespaceId, store.retentionPolicy));
      const rows = await store.list({ namespaceId, filter, retained, showDeleted: input.showDeleted, ascending: input.ascending, after, limit: limit + 1 });
      const { items, nextPageToken } = pageOf(rows, limit, (last) => encodePageToken(last, fp));
      const sessions = items.map(sessionOf);
      return { sessions, nextPageToken };
    },

    async update(input) {
      if (input.paths.length === 0) throw new InvalidInputError("update_mask", `name at least one of ${UPDATABLE_PATHS.join(", ")}`);
      for (const path of input.paths) {
        if (!(UPDATABLE_PATHS as readonly string[]).includes(path)) {
          throw new InvalidInputError("update_mask", `unknown or read-only field "${path.slice(0, 100)}"; updatable: ${UPDATABLE_PATHS.join(", ")}`);
        }
      }
      const has = (p: string) => input.paths.includes(p);
      const v = input.values;
      const changes = {
        data: has("data") ? checkData(v.data, "session.data") : undefined,
        labels: has("labels") ? checkLabels(v.labels, "session.labels") : undefined,
        user: has("user") ? checkText("session.user", v.user, 256) : undefined,
        workflowId: has("workflow") || has("workflow.id") ? checkText("session.workflow.id", v.workflow.id, 256) : undefined,
        workflowVersion: has("workflow") || has("workflow.version") ? checkText("session.workflow.version", v.workflow.version, 64) : undefined,
      };
      parseAddress(input.address, "session.");
      return told(
        await store.transaction(async (tx) => {
          const session = await loadSession(tx, input.address, { lock: true });
          checkEtag(session, input.etag, "session.etag");
          return sessionOf(await tx.update(session, changes));
        }),
      );
    },

    // One statement (the batch code, for one session) when the session's namespace is known by id and by
    // name: from the call, or seen by this process before. With an etag, the statement deletes only the
    // version the etag names; a stale etag, a malformed one, or an unknown namespace name take the
    // general path: a read (for the error's current etag, or the names), then that statement.
    async delete(address, etag) {
      const ref = parseAddress(address);
      const version = etag ? versionOfEtag(etag) : undefined;
      if (!etag || version !== undefined) {
        const key = await sessionKeyOf(store, ref);
        if (!key) throw notFoundOf(ref, address);
        const namespace = key.namespaceId === undefined ? undefined : (ref.namespace ?? store.knownNamespaceName(key.namespaceId));
        if (key.namespaceId !== undefined && namespace !== undefined) {
          const gone = await store.deleteByKey(key, version);
          if (!gone) throw notFoundOf(ref, address);
          if (!gone.stale) {
            changed(key.namespaceId, { uuid: gone.uuid }, true);
            return { id: encodeSessionId(key.namespaceId, gone.uuid), sessionId: gone.externalId, namespace, deleted: gone.counts };
          }
        }
      }
      const stored = await loadStored(store, address, { showDeleted: true });
      const session = sessionOf(stored);
      checkEtag(session, etag, "etag");
      const deleted = await store.delete(stored.uuid, stored.namespaceId, etag ? stored.version : undefined);
      changed(stored.namespaceId, { uuid: stored.uuid }, true);
      return { id: session.id, sessionId: session.sessionId, namespace: session.namespace, deleted };
    },

    softDelete: (address) =>
      store
        .transaction(async (tx) => {
          const session = await loadSession(tx, address, { lock: true, showDeleted: true });
          return session.deleteTime ? session : sessionOf(await tx.update(session, { deleteTime: "now" }));
        })
        .then(told),

    undelete: (address) =>
      store
        .transaction(async (tx) => {
          const session = await loadSession(tx, address, { lock: true, showDeleted: true });
          if (!session.deleteTime) throw new PreconditionError(`session ${session.id} is not deleted`);
          return sessionOf(await tx.update(session, { deleteTime: null }));
        })
        .then(told),

    truncate: (address) =>
      store
        .transaction(async (tx) => {
          const session = await loadSession(tx, address, { lock: true });
          const { session: truncated, ...counts } = await tx.truncate(session);
          return { session: sessionOf(truncated), ...counts };
        })
        .then((r) => ({ ...r, session: told(r.session) })),

    bulkDelete: (input, signal) => operations.bulkDelete(input, signal),

    cancel: (address) =>
      store
        .transaction(async (tx) => {
          const session = await loadSession(tx, address, { lock: true });
          return session.state === "cancelled" ? session : sessionOf(await tx.update(session, { state: "cancelled", clientSecretHash: null }));
        })
        .then(told),

    async refreshClientSecret(address, expiresAfterMs) {
      const ms = checkExpiresAfter(expiresAfterMs);
      return store.transaction(async (tx) => {
        const session = await loadSession(tx, address, { lock: true, showDeleted: true });
        if (session.state !== "active") throw new PreconditionError(`session ${session.id} is ${session.state === "cancelled" ? "cancelled" : "soft-deleted"}; its client secret cannot be refreshed`);
        const secret = newSecret("cs", session.uuid, session.namespaceId);
        const updated = sessionOf(await tx.update(session, { clientSecretHash: hashSecret(secret), expiresAfterMs: ms }));
        return { session: updated, clientSecret: { value: secret, expireTime: updated.expireTime } };
      }).then((r) => ({ ...r, session: told(r.session) }));
    },
  };
}
