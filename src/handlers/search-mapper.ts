/**
 * SearchTurns: domain hits -> protobuf.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { TurnHit as DomainHit } from "../domain/turn-search.js";
import { TurnHitSchema, type TurnHit } from "../../gen/sessiond/v1/session_service_pb.js";

/** A search hit -> protobuf. */
export function turnHitToProto(h: DomainHit): TurnHit {
  return create(TurnHitSchema, {
    id: h.id,
    sessionId: h.sessionId,
    seq: BigInt(h.seq),
    participantId: h.participantId,
    role: h.role,
    createTime: timestampFromDate(h.createTime),
    snippet: h.snippet,
    rank: h.rank,
    archived: h.archived,
  });
}
