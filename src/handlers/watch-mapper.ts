/** WatchSession / WatchSessions: domain watch events <-> protobuf. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  SessionChangeKind,
  SessionChangeSchema,
  WatchPositionSchema,
  WatchSessionResponseSchema,
  WatchSessionsResponseSchema,
  type SessionChange,
  type WatchSessionResponse,
  type WatchSessionsResponse,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { DeletedCountsSchema } from "../../gen/sessiond/v1/session_pb.js";
import { encodeSessionId } from "../domain/ids.js";
import { sessionOf } from "../domain/session-model.js";
import type { ChangeKind, FeedWatchEvent, SessionChange as DomainChange, SessionWatchEvent } from "../domain/watch-model.js";
import { compactionToProto, participantToProto, turnToProto } from "./conversation-mapper.js";
import { sessionToProto } from "./session-mapper.js";

const KIND_TO_PROTO: Record<ChangeKind, SessionChangeKind> = {
  created: SessionChangeKind.CREATED,
  updated: SessionChangeKind.UPDATED,
  cancelled: SessionChangeKind.CANCELLED,
  soft_deleted: SessionChangeKind.SOFT_DELETED,
  undeleted: SessionChangeKind.UNDELETED,
  truncated: SessionChangeKind.TRUNCATED,
  participant_bound: SessionChangeKind.PARTICIPANT_BOUND,
  participant_unbound: SessionChangeKind.PARTICIPANT_UNBOUND,
  compacted: SessionChangeKind.COMPACTED,
  deleted: SessionChangeKind.DELETED,
};

/** WatchSessionsRequest.kinds -> domain kinds. @throws ConnectError invalid_argument naming kinds[i] */
export function kindsFromProto(kinds: SessionChangeKind[]): ChangeKind[] {
  return kinds.map((k, i) => {
    const kind = (Object.keys(KIND_TO_PROTO) as ChangeKind[]).find((d) => KIND_TO_PROTO[d] === k);
    if (!kind) throw new ConnectError(`kinds[${i}]: not a kind of change (${k})`, Code.InvalidArgument);
    return kind;
  });
}

export function changeToProto(c: DomainChange): SessionChange {
  return create(SessionChangeSchema, {
    kind: KIND_TO_PROTO[c.kind],
    change: BigInt(c.change),
    changeTime: timestampFromDate(c.changeTime),
    session: c.session && sessionToProto(sessionOf(c.session)),
    participant: c.participant && participantToProto(c.participant),
    turnsDeleted: c.turnsDeleted ?? 0,
    seq: BigInt(c.atSeq),
    id: encodeSessionId(c.namespaceId, c.uuid),
    sessionId: c.externalId,
    deleted: c.deleted && create(DeletedCountsSchema, c.deleted),
    compaction: c.compaction && compactionToProto(c.compaction),
  });
}

/**
 * Messages of events that many watchers of a session receive as the same object (a turn or change of
 * the session's shared ring): made once, not once per watcher.
 */
const made = new WeakMap<SessionWatchEvent, WatchSessionResponse>();

export function sessionEventToProto(e: SessionWatchEvent): WatchSessionResponse {
  if (e.type !== "turn" && e.type !== "change") return toProto(e);
  let m = made.get(e);
  if (!m) made.set(e, (m = toProto(e)));
  return m;
}

function toProto(e: SessionWatchEvent): WatchSessionResponse {
  const position = create(WatchPositionSchema, { seq: BigInt(e.position.seq), change: BigInt(e.position.change) });
  switch (e.type) {
    case "snapshot":
      return create(WatchSessionResponseSchema, {
        position,
        event: { case: "snapshot", value: { session: sessionToProto(e.session), participants: e.participants.map(participantToProto), lastSeq: BigInt(e.lastSeq), resync: e.resync } },
      });
    case "turn":
      return create(WatchSessionResponseSchema, { position, event: { case: "turn", value: turnToProto(e.turn) } });
    case "change":
      return create(WatchSessionResponseSchema, { position, event: { case: "change", value: changeToProto(e.change) } });
    case "caught_up":
      return create(WatchSessionResponseSchema, { position, event: { case: "caughtUp", value: {} } });
    case "heartbeat":
      return create(WatchSessionResponseSchema, { position, event: { case: "heartbeat", value: { time: timestampFromDate(e.time) } } });
  }
}

export function feedEventToProto(e: FeedWatchEvent): WatchSessionsResponse {
  const position = create(WatchPositionSchema, { cursor: e.cursor });
  switch (e.type) {
    case "change":
      return create(WatchSessionsResponseSchema, { position, event: { case: "change", value: changeToProto(e.change) } });
    case "caught_up":
      return create(WatchSessionsResponseSchema, { position, event: { case: "caughtUp", value: {} } });
    case "heartbeat":
      return create(WatchSessionsResponseSchema, { position, event: { case: "heartbeat", value: { time: timestampFromDate(e.time) } } });
  }
}
