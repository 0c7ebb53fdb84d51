/**
 * The storage ExportSessions and ImportSessions need (session-export.ts), declared by the domain and
 * implemented in db/: a page of session records read in one REPEATABLE READ transaction, and one record
 * written in one transaction of its own.
 */
import type { BatchKeys } from "./bulk-delete-store.js";
import type { SessionRecord } from "./session-record.js";

/** What to do with a record whose session exists in the target namespace. */
export type ConflictMode = "skip" | "replace" | "fail";

/** What writing one record did. */
export type WriteOutcome = { outcome: "imported" | "replaced" } | { outcome: "exists" };

/** The storage of exports and imports. */
export interface SessionExportStore {
  /**
   * The records of the sessions named by `keys` that exist in the namespace (soft-deleted ones
   * included), read in one REPEATABLE READ transaction with one statement per table for the whole
   * page; absent ones are left out.
   */
  readRecords(namespaceId: string, namespace: string, keys: BatchKeys): Promise<SessionRecord[]>;
  /**
   * Writes one checked record into the namespace in one transaction, keeping its ids and times and
   * computing the session's counters from what was written; records a CREATED change. A session with
   * the record's session_id or uuid already there: `exists` (nothing done) unless `mode` is replace,
   * which deletes it (with its cascade) first. @throws AlreadyExistsError (a trace id, annotation or
   * memory the namespace holds for another session), NamespaceGoneError
   */
  writeRecord(namespaceId: string, record: SessionRecord, mode: ConflictMode): Promise<WriteOutcome>;
}
