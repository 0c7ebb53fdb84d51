/**
 * The storage participants and turns need (conversation-service.ts, integration-service.ts), declared by the domain
 * and implemented in db/.
 */
import type { AppendedTurn, Compaction, ConversationState, NewTurn, Participant, ParticipantKind, ParticipantValues, Turn } from "./conversation-model.js";
import type { StoredSession } from "./session-model.js";
import type { NamespacedSessionKey, SessionRow } from "./session-store.js";

/** Values of a participant to bind. */
export interface BindValues {
  namespaceId: string;
  sessionUuid: string;
  participantId: string;
  kind: ParticipantKind;
  displayName: string;
  metadata: Record<string, unknown>;
}

/** What an append writes besides the turns. */
export interface AppendOptions {
  /** The role a turn given without one gets, by its speaker's kind (the domain's ROLE_OF_KIND). */
  defaultRoles: Record<ParticipantKind, string>;
  /** The call's request_id and the fingerprint of its turns, recorded so that a retry is recognized. */
  request?: { id: string; fingerprint: string };
}

/** Outcome of one AppendTurns statement. */
export type AppendOutcome =
  /** `session`: the session's counters and last seq as the statement left them. */
  | { ok: true; turns: AppendedTurn[]; session: ConversationState }
  /** The session is no longer active (cancelled, soft-deleted or gone). */
  | { ok: false; reason: "session" }
  /** A speaker is not bound, or has left. */
  | { ok: false; reason: "participant" }
  /** The request_id was used before. */
  | { ok: false; reason: "request"; previous: PreviousRequest };

/** An earlier AppendTurns call with a request_id. */
export interface PreviousRequest {
  namespaceId: string;
  sessionUuid: string;
  firstSeq: number;
  count: number;
  fingerprint: string;
  /** The session's counters and last seq now (read with the request). */
  session: ConversationState;
}

/** A turn page query. */
export interface TurnQuery {
  session: SessionRow;
  participantId?: string;
  afterSeq: number;
  /** Inclusive upper bound of seq, when set. */
  untilSeq?: number;
  /** Descending seq order (the newest first) instead of ascending. */
  newestFirst?: boolean;
  limit: number;
  /**
   * Only if the session exists and is not soft-deleted, checked by the same statement (so a read by
   * global id needs no read of the session first); without it the caller has checked.
   */
  ifVisible?: boolean;
}

/**
 * A page of ListTurns: turns and compactions' summary turns in the order of their key, 2 × seq for a
 * turn and 2 × up_to_seq + 1 for a summary (right after the last turn it archived).
 */
export interface TurnPageQuery {
  session: SessionRow;
  participantId?: string;
  /** Keys greater than this. */
  afterKey: number;
  /** Keys at most this, when set. */
  untilKey?: number;
  newestFirst: boolean;
  /** Also the archived turns and the earlier summaries (else: turns after compacted_seq and the newest summary). */
  includeArchived: boolean;
  limit: number;
  /** As in TurnQuery. */
  ifVisible?: boolean;
}

/** A turn of a page with its key. */
export type PagedTurn = Turn & { key: number };

/** A compaction to record (CompactSession). */
export interface CompactionWrite {
  upToSeq: number;
  summary: string;
  summarizer: string;
  memoryIds: string[];
}

/** Outcome of a compaction's write. */
export type CompactOutcome =
  | { ok: true; compaction: Compaction; session: StoredSession }
  /** Already compacted up to upToSeq (`compaction`: that one, if it is still there). */
  | { ok: false; reason: "already"; compaction?: Compaction }
  /** The session was deleted meanwhile. */
  | { ok: false; reason: "gone" }
  /** The session is cancelled or soft-deleted (by now). */
  | { ok: false; reason: "inactive" }
  /** upToSeq is below compacted_seq, past the last turn, or no turn is left to archive. */
  | { ok: false; reason: "below" | "beyond" | "empty"; compactedSeq: number; lastSeq: number };

/** Participant and turn storage bound to one connection or transaction. */
export interface ConversationStore {
  participants(session: SessionRow, opts?: { activeOnly?: boolean }): Promise<Participant[]>;
  participant(session: SessionRow, participantId: string): Promise<Participant | undefined>;
  /** Inserts or re-binds; counts a new participant on the session. Call with the session row locked. */
  bind(values: BindValues): Promise<{ participant: Participant; created: boolean }>;
  /**
   * Binds participants to a session that has none yet (one just inserted, in the same transaction, with
   * SessionStore.insert's `participantCount` set to their number, which counts them), in this order and
   * in one statement. Returns them in the same order.
   */
  bindNew(session: SessionRow, participants: ParticipantValues[]): Promise<Participant[]>;
  /** Marks a participant as left (keeps an earlier leave time). */
  unbind(session: SessionRow, participantId: string): Promise<Participant | undefined>;
  /**
   * Appends turns in one statement (one round trip): finds the session, takes its row lock, numbers the
   * turns after its last sequence number, bumps the counters and records the request_id. Nothing is
   * written unless all of it is.
   */
  append(target: NamespacedSessionKey, turns: NewTurn[], opts: AppendOptions): Promise<AppendOutcome>;
  /** The AppendTurns call made earlier with `requestId` on the target session, if any. */
  previousRequest(target: NamespacedSessionKey, requestId: string): Promise<PreviousRequest | undefined>;
  /** The roles and times of turns seq in [from, from + count). */
  appended(session: SessionRow, from: number, count: number): Promise<AppendedTurn[]>;
  /** Turns in sequence order (descending with newestFirst), archived ones included, without summaries. */
  turns(query: TurnQuery): Promise<Turn[]>;
  /** A ListTurns page (see TurnPageQuery). */
  page(query: TurnPageQuery): Promise<PagedTurn[]>;
  /** The session's compaction up to `upToSeq`, if there is one. */
  compaction(session: SessionRow, upToSeq: number): Promise<Compaction | undefined>;
  /**
   * Archives the turns after the session's compacted_seq up to w.upToSeq: locks the session, checks the
   * bounds, records the compaction and its COMPACTED change, and moves the counters. Call in a transaction.
   */
  compact(session: SessionRow, w: CompactionWrite): Promise<CompactOutcome>;
}
