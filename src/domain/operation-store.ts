/**
 * The storage durable operations need (operations.ts), declared by the domain and implemented in db/:
 * operations with their lease, and the batches they commit. A batch's deletion, its record and the
 * operation's new cursor and counters commit in one transaction that first checks the lease, so a
 * batch is recorded exactly when its sessions go, and a process that lost its lease cannot record
 * anything more.
 */
import type { BatchKeys, BatchOptions, DeletedSession } from "./bulk-delete-store.js";
import type { ErasureStepResult, ErasureWork } from "./erasure.js";
import { DomainError } from "./errors.js";
import type { RetentionCutoffs } from "./retention.js";

export type OperationKind = "bulk_delete_sessions" | "delete_namespace" | "retention_sweep" | "forget_subject";
export type OperationState = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export const ENDED_STATES: readonly OperationState[] = ["succeeded", "failed", "cancelled"];

/**
 * An operation as stored. `request`, `cursor`, `progress` and `result` are the executor's JSON; the
 * request's list of identifiers is left out except where the operation is claimed. A request's
 * top-level `private` member (what only the work may keep, e.g. an erasure's subject id) is dropped
 * when the operation ends, whichever way it ends.
 */
export interface OperationRecord {
  uuid: string;
  namespaceId: string;
  namespace: string;
  kind: OperationKind;
  state: OperationState;
  request: unknown;
  cursor: unknown;
  progress: unknown;
  result: unknown;
  batches: number;
  detach: boolean;
  actor: string;
  error: string;
  cancelRequested: boolean;
  leaseOwner: string | null;
  attempts: number;
  createTime: Date;
  startTime: Date | null;
  updateTime: Date;
  endTime: Date | null;
}

/** What a new operation starts with. */
export interface NewOperation {
  namespaceId: string;
  namespace: string;
  kind: OperationKind;
  request: unknown;
  cursor: unknown;
  progress: unknown;
  detach: boolean;
  actor: string;
}

/** A process's claim on a running operation. */
export interface Lease {
  uuid: string;
  owner: string;
}

/** What one committed batch records. */
export interface BatchRecord {
  /** Its results and counters, as WatchOperation replays them. */
  batch: unknown;
  /** Where the next batch starts. */
  cursor: unknown;
  /** The operation's counters after it. */
  progress: unknown;
}

/** A deletion to run inside a batch's transaction. */
export interface BatchDeletion {
  namespaceId: string;
  keys: BatchKeys;
  opts: BatchOptions;
  /** Only the sessions still past these cutoffs once row-locked (a retention sweep). */
  recheck?: RetentionCutoffs;
}

/** Which operations a list shows. */
export interface OperationQuery {
  /** The namespace by id, or, for a namespace that no longer exists, by the name it had. */
  namespace: { id: string } | { name: string };
  kind?: OperationKind;
  state?: OperationState;
}

/** The process no longer holds the operation's lease: another one took it over, or it ended. */
export class LeaseLostError extends DomainError {}

/** Operations in the database. */
export interface OperationStore {
  insert(op: NewOperation): Promise<OperationRecord>;
  /** Inserts a retention sweep unless one of the namespace is queued or running (then undefined). */
  insertSweep(op: NewOperation): Promise<OperationRecord | undefined>;
  /** Queued operations of a namespace (to bound how many may wait). */
  countQueued(namespaceId: string): Promise<number>;
  find(uuid: string): Promise<OperationRecord | undefined>;
  /** The whole request of an operation (records leave its list of identifiers out). */
  request(uuid: string): Promise<unknown>;
  /** Newest first, after the (create_time, uuid) position when given. */
  list(query: OperationQuery, after: { createTime: Date; uuid: string } | undefined, limit: number): Promise<OperationRecord[]>;
  /**
   * Claims the oldest operation that is queued, or running under a lease that ran out (its process
   * died), for `owner` until `leaseMs` from now; with `uuid`, only that one; never one of `skip` (those
   * this process runs). The lease's owner (leaseOwner of the result) names the process and the claim.
   * Never waits for a row another process is locking.
   */
  claim(owner: string, leaseMs: number, uuid?: string, skip?: string[]): Promise<OperationRecord | undefined>;
  /** Extends the lease; whether it was still held, and whether a cancellation was asked for. */
  renew(lease: Lease, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }>;
  /**
   * In one transaction: checks the lease (LeaseLostError when lost), runs the deletion if any, asks
   * `record` for what to record with the sessions it found, records the batch as number `number` and
   * moves the operation on. Returns whether a cancellation was asked for.
   */
  commitBatch(lease: Lease, leaseMs: number, number: number, deletion: BatchDeletion | undefined, record: (found: DeletedSession[]) => BatchRecord): Promise<{ cancelRequested: boolean }>;
  /**
   * In one transaction, like commitBatch: checks the lease, runs one step of an erasure (erasure.ts),
   * asks `record` for what to record with what the step did, records the batch and moves the operation on.
   */
  commitErasure(lease: Lease, leaseMs: number, number: number, work: ErasureWork, record: (done: ErasureStepResult) => BatchRecord): Promise<{ cancelRequested: boolean }>;
  /** Ends the operation (when the lease is still held); `result` is kept for watchers, the request's `private` dropped. */
  end(lease: Lease, state: "succeeded" | "failed" | "cancelled", error: string, result: unknown): Promise<boolean>;
  /** Gives the operation back (queued, no lease) for another process to go on with. */
  release(lease: Lease): Promise<void>;
  /**
   * Asks an operation to stop: a queued one ends cancelled at once (its request's `private` dropped), a running one gets
   * cancel_requested. Returns it after the change (unchanged when it had ended).
   */
  requestCancel(uuid: string): Promise<OperationRecord | undefined>;
  /** How many operations there are, by kind and state. */
  counts(): Promise<{ kind: OperationKind; state: OperationState; count: number }[]>;
  /** Its committed batches after number `after`, in order, at most `limit`. */
  batches(uuid: string, after: number, limit: number): Promise<{ number: number; batch: unknown }[]>;
}
