/**
 * The storage the session lifecycle needs (session-service.ts), declared by the domain: db/ implements it
 * and returns sessions as stored (StoredSession); the domain derives their global ids and etags.
 */
import type { RetentionCutoffs, RetentionPolicies, StoredPolicy } from "./retention.js";
import type { Cursor } from "./page-token.js";
import type { DeletedCounts, JsonObject, SessionFilter, StoredSession } from "./session-model.js";

/** Values of a new session. */
export interface NewSession {
  /** Chosen by the caller: the client secret names it. */
  uuid: string;
  namespaceId: string;
  externalId: string;
  user: string;
  workflowId: string;
  workflowVersion: string;
  data: JsonObject;
  labels: Record<string, string>;
  expiresAfterMs: number;
  maxRequestsPerMinute: number;
  /** SHA-256 of the session's client secret; null for none (sessions created by OTLP export). */
  clientSecretHash: Buffer | null;
  /** The participants the same transaction binds next with ConversationStore.bindNew (counted here, at insert); 0 when omitted. */
  participantCount?: number;
}

/** Changes UpdateSession may make. */
export interface SessionChanges {
  data?: JsonObject;
  labels?: Record<string, string>;
  user?: string;
  workflowId?: string;
  workflowVersion?: string;
  state?: "active" | "cancelled";
  deleteTime?: Date | null | "now";
  /** A new client secret (its hash), or null to revoke the current one. */
  clientSecretHash?: Buffer | null;
  /** Moves expire_time to now + this many ms. */
  expiresAfterMs?: number;
}

/** A list query, already validated. */
export interface SessionListQuery {
  namespaceId: string;
  filter: SessionFilter;
  /** Only sessions within these retention cutoffs (the namespace's policy now); all when undefined. */
  retained?: RetentionCutoffs;
  showDeleted: boolean;
  ascending: boolean;
  after?: Cursor;
  limit: number;
}

/**
 * One stored session as every statement about it names it: by its namespace and uuid (the namespace
 * routes the statement to one shard when the tables are distributed by namespace_id). A Session or a
 * StoredSession is one.
 */
export interface SessionRow {
  namespaceId: string;
  uuid: string;
}

/**
 * Where to find one session in a known namespace: by uuid or by caller id. Every statement through it
 * names namespace_id, so it is routed to one shard when the tables are distributed by namespace.
 */
export type NamespacedSessionKey = { namespaceId: string; uuid: string } | { namespaceId: string; externalId: string };

/**
 * Where to find one session: in a known namespace, or by uuid alone. The latter is left only for a
 * global id of the old form (it carries no namespace) in a call that names no namespace; that lookup
 * reaches every shard.
 */
export type SessionKey = NamespacedSessionKey | { uuid: string; namespaceId?: undefined };

/** Session storage bound to one connection or transaction. */
export interface SessionStore {
  /** Id of the namespace `name`, creating it when `create` is set; undefined if absent. */
  namespaceId(name: string, create: boolean): Promise<string | undefined>;
  /** The retention policies in force (sessions past theirs are hidden); none: nothing is hidden. */
  readonly retention?: RetentionPolicies;
  /** A namespace's own retention policy, read through this store's connection (a transaction's, within one). */
  retentionPolicy(namespaceId: string): Promise<StoredPolicy | undefined>;
  /**
   * Inserts a session. @throws AlreadyExistsError when the external id is taken in the namespace,
   * NamespaceGoneError when the namespace was deleted meanwhile (resolve its name again)
   */
  insert(values: NewSession): Promise<StoredSession>;
  /** One session by key, soft-deleted included; `lock` takes a row lock in a transaction. */
  find(key: SessionKey, lock?: boolean): Promise<StoredSession | undefined>;
  /** One page (limit sessions) of a namespace's sessions in (create_time, uuid) order. */
  list(query: SessionListQuery): Promise<StoredSession[]>;
  /** Applies changes, bumps the version and the update time, returns the new state. */
  update(session: SessionRow, changes: SessionChanges): Promise<StoredSession>;
  /** Clears data, turns, insights and integration marks; returns the session and the turns deleted. */
  truncate(session: SessionRow): Promise<{ session: StoredSession } & TruncateCounts>;
  /**
   * Hard-deletes a session with everything it holds, atomically (no transaction needed); with `version`,
   * only while the session still has that version. Returns what went with it.
   * @throws NotFoundError when it is gone, ConflictError when its version is no longer `version`
   */
  delete(uuid: string, namespaceId: string, version?: number): Promise<DeletedCounts>;
  /**
   * Like {@link delete}, by either key, without throwing: undefined when no such session exists, `stale`
   * (nothing deleted) when its version is no longer `version`. One statement.
   */
  deleteByKey(key: NamespacedSessionKey, version?: number): Promise<{ uuid: string; externalId: string; counts: DeletedCounts; stale: boolean } | undefined>;
  /** The name of the namespace `namespaceId`, when this process has seen it (no database read). */
  knownNamespaceName(namespaceId: string): string | undefined;
  /** Runs `work` in one transaction, with a store bound to it (inside one already: in that one). */
  transaction<T>(work: (store: SessionStore) => Promise<T>): Promise<T>;
}

/** What a truncate removed: turns (archived ones included), of them the archived, and the compactions. */
export interface TruncateCounts {
  turnsDeleted: number;
  archivedTurnsDeleted: number;
  compactionsDeleted: number;
}
