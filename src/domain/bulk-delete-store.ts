/**
 * The storage BulkDeleteSessions and DeleteNamespace need (bulk-delete.ts), declared by the domain and
 * implemented in db/: batches that each run in a transaction of their own, and a snapshot of the
 * sessions a filter matched that holds no connection between its pages.
 */
import type { Admission } from "./bulk-admission.js";
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
 * The sessions that matched a filter when a call began, read page by page in the order they were
 * created. Holds no connection between pages: each `next` is one statement.
 */
export interface SessionSnapshot {
  /** How many sessions matched when the call began. */
  total: number;
  /** The next `limit` session uuids; empty when done. */
  next(limit: number): Promise<string[]>;
  /** Releases what the snapshot holds (nothing today; kept so a store may hold state). */
  close(): Promise<void>;
}

/** The storage a bulk delete needs, and the slots that bound how much of it long work may take. */
export interface BulkDeleteStore {
  namespaceId(name: string, create: boolean): Promise<string | undefined>;
  /** When set, every bulk delete holds one of its slots from its first event to its end. */
  admission?: Admission;
  /**
   * Deletes (or counts, in a dry run) the sessions of one batch that exist, in a transaction of its
   * own; sessions already gone are absent from the result.
   */
  deleteBatch(namespaceId: string, keys: BatchKeys, opts: BatchOptions): Promise<DeletedSession[]>;
  /** The sessions matching `filter` as the call begins; must not hold a connection between pages. */
  openSnapshot(namespaceId: string, filter: SessionFilter, includeDeleted: boolean): Promise<SessionSnapshot>;
}
