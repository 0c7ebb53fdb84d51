/**
 * Protobuf <-> domain conversions for sessions. Small and explicit: nothing else crosses the boundary.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Session as DomainSession, SessionFilter as DomainFilter, SessionState as DomainState, JsonObject, DeletedCounts as DomainCounts, SessionStats } from "../domain/session-model.js";
import { InvalidInputError } from "../domain/errors.js";
import type { ClientSecret as DomainClientSecret } from "../domain/session-service.js";
import { ClientSecretSchema, type ClientSecret } from "../../gen/sessiond/v1/session_service_pb.js";
import {
  DeletedCountsSchema,
  SessionSchema,
  SessionState,
  SessionStatsSchema,
  WorkflowSchema,
  type DeletedCounts,
  type Session,
  type SessionStats as ProtoSessionStats,
  type SessionFilter,
} from "../../gen/sessiond/v1/session_pb.js";

const STATE_TO_PROTO: Record<DomainState, SessionState> = {
  active: SessionState.ACTIVE,
  cancelled: SessionState.CANCELLED,
  soft_deleted: SessionState.SOFT_DELETED,
};

/** Domain session -> protobuf Session. */
export function sessionToProto(s: DomainSession): Session {
  return create(SessionSchema, {
    id: s.id,
    sessionId: s.sessionId,
    namespace: s.namespace,
    user: s.user,
    workflow: create(WorkflowSchema, s.workflow),
    data: s.data,
    labels: s.labels,
    state: STATE_TO_PROTO[s.state],
    createTime: timestampFromDate(s.createTime),
    updateTime: timestampFromDate(s.updateTime),
    lastActivityTime: timestampFromDate(s.lastActivityTime),
    deleteTime: s.deleteTime ? timestampFromDate(s.deleteTime) : undefined,
    expireTime: timestampFromDate(s.expireTime),
    etag: s.etag,
    stats: statsToProto(s.stats),
    maxRequestsPerMinute: s.maxRequestsPerMinute,
  });
}

/** Domain cascade counts -> protobuf DeletedCounts. */
export function deletedCountsToProto(c: DomainCounts): DeletedCounts {
  return create(DeletedCountsSchema, c);
}

/** protobuf Duration -> ms; undefined when unset. */
export function durationToMs(d: Duration | undefined, field: string): number | undefined {
  if (!d) return undefined;
  if (d.seconds < 0n || d.nanos < 0) throw new InvalidInputError(field, "must be positive");
  return durationMs(d);
}

/** A protobuf time -> Date (undefined when unset). @throws InvalidInputError naming `field` for a time out of years 1–9999 */
export function timeFromProto(t: Timestamp | undefined, field: string): Date | undefined {
  return time(t, field);
}

function time(t: Timestamp | undefined, field: string): Date | undefined {
  if (!t) return undefined;
  const date = timestampDate(t);
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1 || year > 9999) throw new InvalidInputError(field, "must be a valid time between years 1 and 9999");
  return date;
}

/** A client secret as issued -> protobuf. */
export function clientSecretToProto(c: DomainClientSecret): ClientSecret {
  return create(ClientSecretSchema, { value: c.value, expireTime: timestampFromDate(c.expireTime) });
}

/** protobuf SessionFilter -> domain filter (unset fields dropped). */
export function filterFromProto(f: SessionFilter | undefined, field = "filter"): DomainFilter {
  if (!f) return {};
  let state: DomainState | undefined;
  switch (f.state) {
    case SessionState.UNSPECIFIED:
      break;
    case SessionState.ACTIVE:
      state = "active";
      break;
    case SessionState.CANCELLED:
      state = "cancelled";
      break;
    case SessionState.SOFT_DELETED:
      state = "soft_deleted";
      break;
    default:
      throw new InvalidInputError(`${field}.state`, `unknown state ${f.state}`);
  }
  return {
    user: f.user || undefined,
    state,
    workflowId: f.workflowId || undefined,
    labels: Object.keys(f.labels).length ? f.labels : undefined,
    createTimeAfter: time(f.createTimeAfter, `${field}.create_time_after`),
    createTimeBefore: time(f.createTimeBefore, `${field}.create_time_before`),
    activeAfter: time(f.activeAfter, `${field}.active_after`),
    activeBefore: time(f.activeBefore, `${field}.active_before`),
  };
}

/** Struct field value -> domain JSON object ({} when unset). */
export function dataFromProto(data: JsonObject | undefined): JsonObject {
  return data ?? {};
}

/** Domain counters -> SessionStats (compaction counters 0 where the statement did not read them). */
export function statsToProto(stats: SessionStats): ProtoSessionStats {
  const { compactedSeq, ...counts } = stats;
  return create(SessionStatsSchema, { ...counts, compactedSeq: BigInt(compactedSeq ?? 0) });
}
