/** What WatchSession and WatchSessions read (implemented in db/repositories/watch-store.ts). */
import type { Participant, Turn } from "./conversation-model.js";
import type { StoredSession } from "./session-model.js";
import type { SessionChange } from "./watch-model.js";

/** A session's change number and last turn seq as of one read. */
export interface SessionHead {
  change: number;
  lastSeq: number;
}

export interface WatchStore {
  /** The session as it is, with its head and its participants (in bind order), read by one statement; undefined when it is gone. */
  snapshot(namespaceId: string, uuid: string): Promise<{ session: StoredSession; head: SessionHead; participants: Participant[] } | undefined>;
  /** The heads of these sessions (by `${namespaceId}/${uuid}`); a session that is gone is absent. */
  heads(keys: { namespaceId: string; uuid: string }[]): Promise<Map<string, SessionHead>>;
  /**
   * The session's head (undefined when it is gone) and its changes after `afterChange` in order (at
   * most `limit`), read by one statement: the turns up to head.lastSeq are committed.
   */
  changes(namespaceId: string, uuid: string, afterChange: number, limit: number): Promise<{ head?: SessionHead; changes: SessionChange[] }>;
  /** Turns with afterSeq < seq <= untilSeq, in order, at most `limit`. */
  turns(namespaceId: string, uuid: string, afterSeq: number, untilSeq: number, limit: number): Promise<Turn[]>;
  /**
   * Gives feed positions, in commit order, to the namespace's recorded changes that have none (at most
   * `limit`). Returns how many, and the cursor of the present read under the same lock (every position
   * given so far is at most it, every later one above it); undefined when another process is doing it
   * right now.
   */
  sequenceFeed(namespaceId: string, limit: number): Promise<{ count: number; head: bigint } | undefined>;
  /** The namespace's changes with a feed position after `after`, in feed order (at most `limit`; the watch filters them). */
  feed(namespaceId: string, after: bigint, limit: number): Promise<SessionChange[]>;
  /** The cursor of the present: the last feed position given in the namespace, or the clock's if later (µs since the epoch). */
  feedHead(namespaceId: string): Promise<bigint>;
  /** Deletes recorded changes older than `before`; returns how many. */
  prune(before: Date): Promise<number>;
}
