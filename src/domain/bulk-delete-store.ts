/**
 * The storage BulkDeleteSessions and DeleteNamespace need (bulk-delete.ts), declared by the domain and
 * implemented in db/: batches that each run in a transaction of their own, and a snapshot of the
 * sessions a filter matched that holds no connection between its pages and can be resumed from a
 * persisted position by another process.
 */
import type { DeletedCounts, SessionFilter } from "./session-model.js";

/** Which sessions a batch names: database uuids, or caller ids in the namespace. */
export type BatchKeys = { kind: "uuid"; values: string[] } | { kind: "external"; values: string[] };

/** Options of a deletion batch. */
export interface BatchOptions {
  /** Only read what would be deleted. */
  dryRun: boolean;
  /** Delete the sessions' memories too (else they are kept, detached from the session). */
  purgeMemories: boolean;
}

/** What happened to one session of a batch that was found (and deleted, unless a dry run). */
export interface DeletedSession {
  uuid: string;
  externalId: string;
  counts: DeletedCounts;
  /** Memories deleted (purge) or detached (kept). */
  memories: number;
}

/**
 * A position in the (create_time, id) order of a namespace's sessions: create_time as ISO-8601 text
 * with milliseconds (the column's precision, so the position round-trips exactly through JSON).
 */
export interface SnapshotKey {
  createTime: string;
  id: string;
}

/** The sessions a filter matched when a call began: how many, and the last of them (the high-water mark). */
export interface SnapshotMark {
  total: number;
  /** Undefined when none matched. */
  mark?: SnapshotKey;
}

/** The storage a bulk delete needs. */
export interface BulkDeleteStore {
  namespaceId(name: string, create: boolean): Promise<string | undefined>;
  /**
   * Deletes (or counts, in a dry run) the sessions of one batch that exist, in a transaction of its
   * own; sessions already gone are absent from the result.
   */
  deleteBatch(namespaceId: string, keys: BatchKeys, opts: BatchOptions): Promise<DeletedSession[]>;
  /**
   * Fixes the sessions matching `filter` as a call begins: counts them and notes the last one. Holds
   * nothing: the pages are read later, each in a statement of its own, by snapshotPage.
   */
  markSnapshot(namespaceId: string, filter: SessionFilter, includeDeleted: boolean): Promise<SnapshotMark>;
  /**
   * The next `limit` sessions of the snapshot after `after` (from the first when undefined), up to the
   * mark, in (create_time, id) order; sessions deleted meanwhile, or that stopped matching, are skipped.
   */
  snapshotPage(namespaceId: string, filter: SessionFilter, includeDeleted: boolean, mark: SnapshotKey, after: SnapshotKey | undefined, limit: number): Promise<{ uuids: string[]; last?: SnapshotKey }>;
}
