/**
 * The storage the retention sweeper needs besides the operation and bulk-delete stores (sweeper.ts and the
 * RETENTION_SWEEP operations of operations.ts), declared by the domain and implemented in db/
 * (repositories/retention-store.ts).
 */
import type { SnapshotKey } from "./bulk-delete-store.js";
import type { RetentionCutoffs, RetentionPolicy } from "./retention.js";

/** What the sweeper needs of the database besides the operation and bulk-delete stores. */
export interface SweepStore {
  /** Up to `limit` expired sessions after `after`, in (create_time, id) order. */
  expiredPage(namespaceId: string, c: RetentionCutoffs, after: SnapshotKey | undefined, limit: number): Promise<{ uuids: string[]; last?: SnapshotKey }>;
  /** When the longest-expired session still present expired (undefined when none is). */
  oldestExpiry(namespaceId: string, policy: RetentionPolicy, c: RetentionCutoffs): Promise<Date | undefined>;
  /** Whether the namespace has sessionless traces created before `before`. */
  hasExpiredTraces(namespaceId: string, before: Date): Promise<boolean>;
  /** Deletes up to `limit` sessionless traces created before `before` (spans and annotations with them); how many went. */
  deleteSessionlessTraces(namespaceId: string, before: Date, limit: number): Promise<number>;
  /** Deletes client-secret request records older than `before` (their rate-limit window ended); how many went. */
  pruneClientRequests(before: Date): Promise<number>;
  /** Deletes operations that ended before `before`, with their batches; how many went. */
  pruneOperations(before: Date): Promise<number>;
}
