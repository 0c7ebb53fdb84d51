/**
 * Participants and turns: binding, leaving, appending and reading. Rules and transactions live here;
 * SQL lives in the stores, protobuf in the handlers.
 */
import type { Changed } from "./watch-model.js";
import {
  checkParticipant,
  checkParticipantId,
  checkRequestId,
  checkTurns,
  DEFAULT_TURN_PAGE,
  MAX_PARTICIPANTS,
  ROLE_OF_KIND,
  turnsFingerprint,
  type AppendedTurn,
  type ConversationState,
  type NewParticipant,
  type NewTurn,
  type Participant,
  type Turn,
} from "./conversation-model.js";
import { AlreadyExistsError, InvalidInputError, NotFoundError, PreconditionError } from "./errors.js";
import { decodeSeqToken, encodeSeqToken, fingerprint, pageOf } from "./page-token.js";
import { checkPageSize, type Session } from "./session-model.js";
import { loadSession, namespacedKeyOf, parseAddress, sessionKeyOf, type SessionAddress } from "./session-service.js";
import type { Stores } from "./stores.js";

/** Input of {@link ConversationService.bind}. */
export interface BindInput extends NewParticipant {
  address: SessionAddress;
}

/** Input of {@link ConversationService.listTurns}. */
export interface ListTurnsInput {
  address: SessionAddress;
  participantId: string;
  afterSeq: number;
  pageSize: number;
  pageToken: string;
  /** Descending seq order: the first page holds the newest turns. */
  newestFirst?: boolean;
  /** Also archived turns and earlier summaries. */
  includeArchived?: boolean;
}

/** What AppendTurns returns: each turn's seq, role and time, and where the session stands after it. */
export interface AppendResult extends ConversationState {
  turns: AppendedTurn[];
  /** The request_id matched an earlier call: its turns, nothing appended. */
  replayed: boolean;
}

/** Participant and turn operations. */
export interface ConversationService {
  bind(input: BindInput): Promise<{ participant: Participant; created: boolean }>;
  unbind(address: SessionAddress, participantId: string): Promise<Participant>;
  participants(address: SessionAddress): Promise<Participant[]>;
  append(address: SessionAddress, turns: NewTurn[], requestId: string): Promise<AppendResult>;
  listTurns(input: ListTurnsInput): Promise<{ turns: Turn[]; nextPageToken: string }>;
}

/** Refuses writes to a session that is not active. */
function checkWritable(session: Session, what: string) {
  if (session.state !== "active") throw new PreconditionError(`session ${session.id} is ${session.state === "cancelled" ? "cancelled" : "deleted"}; ${what} is not allowed`);
}

/** Creates the service over the stores. */
export function createConversationService(stores: Stores, changed: Changed = () => {}): ConversationService {
  /** Explains why an append wrote nothing, as the error the caller gets. */
  async function appendRefusal(address: SessionAddress, turns: NewTurn[], reason: "session" | "participant"): Promise<Error> {
    const session = await loadSession(stores.sessions, address, { showDeleted: true });
    if (reason === "session") {
      checkWritable(session, "appending turns");
      return new PreconditionError(`session ${session.id} changed during the call; retry`);
    }
    const bound = new Map((await stores.conversations.participants(session)).map((p) => [p.participantId, p]));
    const i = turns.findIndex((t) => !bound.get(t.participantId) || bound.get(t.participantId)!.leaveTime);
    const id = turns[Math.max(i, 0)].participantId;
    return new PreconditionError(`turns[${Math.max(i, 0)}].participant_id: participant "${id}" ${bound.has(id) ? "has left the session" : "is not bound to the session"}`);
  }

  return {
    async bind(input) {
      const { participantId, kind, displayName, metadata } = checkParticipant(input);
      return stores.transaction(async (tx) => {
        const session = await loadSession(tx.sessions, input.address, { lock: true, showDeleted: true });
        checkWritable(session, "binding participants");
        const existing = await tx.conversations.participant(session, participantId);
        if (existing && existing.kind !== kind) throw new AlreadyExistsError(`participant "${participantId}" is bound as ${existing.kind.toUpperCase()}, not ${kind.toUpperCase()}`);
        if (!existing && session.stats.participantCount >= MAX_PARTICIPANTS) throw new PreconditionError(`session ${session.id} has ${MAX_PARTICIPANTS} participants, the most it can hold`);
        const bound = await tx.conversations.bind({ namespaceId: session.namespaceId, sessionUuid: session.uuid, participantId, kind, displayName, metadata });
        return { bound, session };
      }).then(({ bound, session }) => {
        changed(session.namespaceId, { uuid: session.uuid }, true);
        return bound;
      });
    },

    async unbind(address, participantId) {
      checkParticipantId(participantId);
      const session = await loadSession(stores.sessions, address);
      const participant = await stores.conversations.unbind(session, participantId);
      if (!participant) throw new NotFoundError(`participant "${participantId}" not found in session ${session.id}`);
      changed(session.namespaceId, { uuid: session.uuid }, true);
      return participant;
    },

    async participants(address) {
      const session = await loadSession(stores.sessions, address);
      return stores.conversations.participants(session);
    },

    async append(address, turns, requestId) {
      checkTurns(turns);
      const request = checkRequestId(requestId) ? { id: requestId, fingerprint: turnsFingerprint(turns) } : undefined;
      // One round trip when all is well: the statement finds the session itself; only a refusal pays
      // for the lookups that explain it.
      // The namespace comes from the call or the global id (a namespace-less id of the old form costs a
      // lookup first), so that the statement names it.
      const target = await namespacedKeyOf(stores.sessions, parseAddress(address));
      if (!target) throw await appendRefusal(address, turns, "session");
      const outcome = await stores.conversations.append(target, turns, { defaultRoles: ROLE_OF_KIND, request });
      if (outcome.ok) {
        changed(target.namespaceId, "uuid" in target ? { uuid: target.uuid } : { externalId: target.externalId }, false);
        return { turns: outcome.turns, replayed: false, ...outcome.session };
      }
      // A retry of a call that succeeded is answered as the first time, even if the session has been
      // cancelled or soft-deleted since.
      const prev = outcome.reason === "request" ? outcome.previous : request && (await stores.conversations.previousRequest(target, request.id));
      if (!prev) throw await appendRefusal(address, turns, outcome.reason === "request" ? "session" : outcome.reason);
      if (prev.fingerprint !== request!.fingerprint) throw new AlreadyExistsError(`request_id "${requestId}" was already used for different turns in this session`);
      return { turns: await stores.conversations.appended({ namespaceId: prev.namespaceId, uuid: prev.sessionUuid }, prev.firstSeq, prev.count), replayed: true, ...prev.session };
    },

    async listTurns(input) {
      const limit = checkPageSize(input.pageSize, DEFAULT_TURN_PAGE);
      if (input.afterSeq < 0 || !Number.isSafeInteger(input.afterSeq)) throw new InvalidInputError("after_seq", `must be between 0 and ${Number.MAX_SAFE_INTEGER}`);
      if (input.participantId) checkParticipantId(input.participantId);
      const newestFirst = input.newestFirst === true;
      // By a global id (what UIs and client secrets hold; a namespace named beside it, as the scope
      // fills in for keys of one namespace and client secrets, is resolved from the cache), the turns are
      // read at once, with the session's existence checked in the same statement; the session is read
      // only when no turn came back, to tell an empty page from a missing session.
      const ref = parseAddress(input.address);
      const key = ref.kind === "uuid" ? await sessionKeyOf(stores.sessions, ref) : undefined;
      const direct = key?.namespaceId !== undefined && "uuid" in key ? { namespaceId: key.namespaceId, uuid: key.uuid } : undefined;
      const session = direct ?? (await loadSession(stores.sessions, input.address));
      // `newest` only when set, so tokens of the ascending order keep the fingerprint they always had;
      // a token of one order is stale in the other.
      const archived = input.includeArchived === true;
      const fp = fingerprint({ session: session.uuid, participant: input.participantId, after: input.afterSeq, newest: newestFirst || undefined, archived: archived || undefined });
      const cursor = input.pageToken ? decodeSeqToken(input.pageToken, fp, "the session, participant_id, after_seq, newest_first and include_archived") : undefined;
      // Pages are keyed by 2 × seq (a turn) and 2 × seq + 1 (a summary, right after the last turn it
      // archived). The live list has one item per seq, so its tokens hold the seq (as before summaries
      // existed); with include_archived a turn and a summary share a seq, so they hold the key.
      // Ascending, a page starts after the last item served; descending, below it (down to after_seq).
      const lastKey = cursor === undefined ? undefined : archived ? cursor : newestFirst ? 2 * cursor : 2 * cursor + 1;
      const afterKey = 2 * input.afterSeq + 1;
      const range = newestFirst ? { afterKey, untilKey: lastKey === undefined ? undefined : lastKey - 1 } : { afterKey: lastKey ?? afterKey };
      const rows = await stores.conversations.page({
        session,
        participantId: input.participantId || undefined,
        ...range,
        newestFirst,
        includeArchived: archived,
        limit: limit + 1,
        ifVisible: direct !== undefined,
      });
      if (direct && !rows.length) await loadSession(stores.sessions, input.address);
      const page = pageOf(rows, limit, (last) => encodeSeqToken(archived ? last.key : last.seq, fp));
      return { turns: page.items.map(({ key: _, ...turn }) => turn), nextPageToken: page.nextPageToken };
    },
  };
}
