/**
 * The storage participants and turns need (conversation-service.ts, integration-service.ts), declared by the domain
 * and implemented in db/.
 */
import type { AppendedTurn, ConversationState, NewTurn, Participant, ParticipantKind, ParticipantValues, Turn } from "./conversation-model.js";
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
  /** Turns in sequence order (descending with newestFirst). */
  turns(query: TurnQuery): Promise<Turn[]>;
}
