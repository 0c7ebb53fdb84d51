/**
 * What WatchSession and WatchSessions deliver: a session's changes other than turns (recorded by the
 * writers in session_changes, numbered per session), turns, and the positions to resume from.
 */
import type { Compaction, Participant, Turn } from "./conversation-model.js";
import type { DeletedCounts, Session, SessionFilter, StoredSession } from "./session-model.js";

/** Told of every write that committed (the watchers' signal): the session, and whether it is a recorded change (not turns appended). */
export type Changed = (namespaceId: string, session: { uuid: string } | { externalId: string }, change: boolean) => void;

/** Kinds of change, as recorded. */
export const CHANGE_KINDS = ["created", "updated", "cancelled", "soft_deleted", "undeleted", "truncated", "participant_bound", "participant_unbound", "compacted", "deleted"] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** WatchSessions' kinds when the call names none: every kind but the participant ones. */
export const DEFAULT_FEED_KINDS: readonly ChangeKind[] = CHANGE_KINDS.filter((k) => !k.startsWith("participant_"));

/** One recorded change of a session. */
export interface SessionChange {
  kind: ChangeKind;
  /** The session's change number (1: its creation). */
  change: number;
  changeTime: Date;
  /** The session's last turn seq when the change was made. */
  atSeq: number;
  namespaceId: string;
  uuid: string;
  externalId: string;
  /** The session as the change left it (not for participant changes). */
  session?: StoredSession;
  participant?: Participant;
  turnsDeleted?: number;
  deleted?: DeletedCounts & { memories: number };
  /** COMPACTED: the compaction. */
  compaction?: Compaction;
  /** The namespace feed's position (WatchSessions), once given. */
  feedPosition?: string;
}

/** Where a WatchSession stream stands: the last turn seq and the last change number delivered. */
export interface WatchPosition {
  seq: number;
  change: number;
}

/** One message of WatchSession, with the position after it. */
export type SessionWatchEvent = { position: WatchPosition } & (
  | { type: "snapshot"; session: Session; participants: Participant[]; lastSeq: number; resync: boolean }
  | { type: "turn"; turn: Turn }
  | { type: "change"; change: SessionChange }
  | { type: "caught_up" }
  | { type: "heartbeat"; time: Date }
);

/** One message of WatchSessions, with the cursor after it. */
export type FeedWatchEvent = { cursor: string } & ({ type: "change"; change: SessionChange } | { type: "caught_up" } | { type: "heartbeat"; time: Date });

/** Input of WatchSessions. */
export interface FeedWatchInput {
  namespace: string;
  filter: SessionFilter;
  after: string;
  kinds: ChangeKind[];
}

/** Whether `session` (as a change left it) matches `f` (as ListSessions would select it, soft-deleted sessions included unless the filter names a state). */
export function matchesFilter(session: StoredSession | undefined, f: SessionFilter): boolean {
  if (!session) return Object.keys(f).every((k) => (f as Record<string, unknown>)[k] === undefined);
  if (f.state && session.state !== f.state) return false;
  if (f.user !== undefined && session.user !== f.user) return false;
  if (f.workflowId !== undefined && session.workflow.id !== f.workflowId) return false;
  if (f.labels && Object.entries(f.labels).some(([k, v]) => !Object.hasOwn(session.labels, k) || session.labels[k] !== v)) return false;
  if (f.createTimeAfter && session.createTime < f.createTimeAfter) return false;
  if (f.createTimeBefore && session.createTime >= f.createTimeBefore) return false;
  if (f.activeAfter && session.lastActivityTime < f.activeAfter) return false;
  if (f.activeBefore && session.lastActivityTime >= f.activeBefore) return false;
  return true;
}
