/**
 * Protobuf <-> domain conversions for ExportSessions and ImportSessions: SessionRecord both ways, the
 * export's events and the import's results. Reuses the participant, turn, span and annotation mappers.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { InvalidInputError } from "../domain/errors.js";
import { encodeGlobalId, encodeSessionId } from "../domain/ids.js";
import type { ExportEvent, ImportHeader, ImportSummary } from "../domain/session-export.js";
import type { RecordInput, SessionRecord as DomainRecord } from "../domain/session-record.js";
import { MemorySchema, type Memory } from "../../gen/sessiond/v1/memory_pb.js";
import { SessionSchema, SessionState, WorkflowSchema } from "../../gen/sessiond/v1/session_pb.js";
import { SessionRecordSchema, TraceRecordSchema, type SessionRecord } from "../../gen/sessiond/v1/session_record_pb.js";
import {
  ExportSessionsResponseSchema,
  ImportConflictMode,
  ImportOutcome,
  ImportSessionsResponseSchema,
  type ExportSessionsResponse,
  type ImportSessionsRequest,
  type ImportSessionsResponse,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceSchema, type StatusCode } from "../../gen/sessiond/v1/trace_pb.js";
import { compactionToProto, kindFromProto, participantToProto, turnToProto } from "./conversation-mapper.js";
import { statsToProto } from "./session-mapper.js";
import { annotationToProto, annotatorFromProto, spanFromProto, spanToProto, targetFromProto } from "./trace-mapper.js";

/** The first instants of years 1 and 10000 (ms since the epoch). */
const YEAR_1 = new Date("0001-01-01T00:00:00Z").getTime();
const YEAR_10000 = new Date("+010000-01-01T00:00:00Z").getTime();

function time(t: Timestamp | undefined, field: string): Date | undefined {
  if (!t) return undefined;
  const d = timestampDate(t);
  const ms = d.getTime();
  if (!(ms >= YEAR_1 && ms < YEAR_10000)) throw new InvalidInputError(field, "must be a valid time between years 1 and 9999");
  return d;
}

/** An int64 as a number; past 2^53 it is out of every bound the domain checks (so it fails there). */
function num(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

/** A domain record (of the namespace `namespaceId`) -> protobuf SessionRecord. */
export function recordToProto(r: DomainRecord, namespaceId: string): SessionRecord {
  const s = r.session;
  const sessionRef = encodeSessionId(namespaceId, s.uuid);
  return create(SessionRecordSchema, {
    session: create(SessionSchema, {
      id: sessionRef,
      sessionId: s.sessionId,
      namespace: s.namespace,
      user: s.user,
      workflow: create(WorkflowSchema, s.workflow),
      data: s.data,
      labels: s.labels,
      state: s.deleteTime ? SessionState.SOFT_DELETED : s.state === "cancelled" ? SessionState.CANCELLED : SessionState.ACTIVE,
      createTime: timestampFromDate(s.createTime),
      updateTime: timestampFromDate(s.updateTime),
      lastActivityTime: timestampFromDate(s.lastActivityTime),
      deleteTime: s.deleteTime ? timestampFromDate(s.deleteTime) : undefined,
      expireTime: timestampFromDate(s.expireTime),
      stats: statsToProto(s.stats),
      maxRequestsPerMinute: s.maxRequestsPerMinute,
    }),
    lastTurnSeq: BigInt(s.lastTurnSeq),
    participants: r.participants.map(participantToProto),
    turns: r.turns.map(turnToProto),
    compactions: r.compactions.map(({ memoryUuids, ...c }) => compactionToProto({ ...c, memoryIds: memoryUuids })),
    traces: r.traces.map((t) =>
      create(TraceRecordSchema, {
        trace: create(TraceSchema, {
          id: encodeGlobalId("Trace", t.uuid),
          traceId: t.traceId,
          session: sessionRef,
          rootSpanName: t.rootSpanName,
          spanCount: t.spans.length,
          startTime: t.startTime ? timestampFromDate(t.startTime) : undefined,
          duration: t.startTime && t.endTime ? durationFromMs(t.endTime.getTime() - t.startTime.getTime()) : undefined,
          statusCode: t.statusCode as StatusCode,
        }),
        createTime: timestampFromDate(t.createTime),
        spans: t.spans.map(spanToProto),
      }),
    ),
    annotations: r.annotations.map((a) =>
      annotationToProto({ ...a, target: a.target.kind === "session" ? { kind: "session", namespaceId, sessionUuid: s.uuid } : a.target }),
    ),
    memories: r.memories.map((m) =>
      create(MemorySchema, {
        id: encodeGlobalId("Memory", m.uuid),
        namespace: s.namespace,
        sourceSession: sessionRef,
        subjectParticipantId: m.subjectParticipantId,
        subjectUser: m.subjectUser,
        content: m.content,
        metadata: m.metadata as Memory["metadata"],
        integratedBy: m.integratedBy,
        createTime: timestampFromDate(m.createTime),
      }),
    ),
  });
}

/** An export event -> protobuf. */
export function exportEventToProto(e: ExportEvent): ExportSessionsResponse {
  switch (e.type) {
    case "started":
      return create(ExportSessionsResponseSchema, { event: { case: "started", value: { total: BigInt(e.total) } } });
    case "record":
      return create(ExportSessionsResponseSchema, { event: { case: "record", value: recordToProto(e.record, e.namespaceId) } });
    case "summary":
      return create(ExportSessionsResponseSchema, { event: { case: "summary", value: { exported: BigInt(e.exported), notFound: e.notFound, missing: BigInt(e.missing) } } });
  }
}

const STATE: Partial<Record<SessionState, RecordInput["session"]["state"]>> = {
  [SessionState.ACTIVE]: "active",
  [SessionState.CANCELLED]: "cancelled",
  [SessionState.SOFT_DELETED]: "soft_deleted",
};

/** A protobuf SessionRecord -> domain input (checked by the domain). @throws InvalidInputError naming the field */
export function recordFromProto(r: SessionRecord): RecordInput {
  const s = r.session;
  if (!s) throw new InvalidInputError("record.session", "is required");
  const at = "record.session";
  return {
    session: {
      id: s.id,
      sessionId: s.sessionId,
      namespace: s.namespace,
      user: s.user,
      workflow: { id: s.workflow?.id ?? "", version: s.workflow?.version ?? "" },
      data: s.data ?? {},
      labels: s.labels,
      state: STATE[s.state],
      createTime: time(s.createTime, `${at}.create_time`),
      updateTime: time(s.updateTime, `${at}.update_time`),
      lastActivityTime: time(s.lastActivityTime, `${at}.last_activity_time`),
      deleteTime: time(s.deleteTime, `${at}.delete_time`) ?? null,
      expireTime: time(s.expireTime, `${at}.expire_time`),
      maxRequestsPerMinute: s.maxRequestsPerMinute,
      lastTurnSeq: num(r.lastTurnSeq),
      integrationCount: s.stats?.integrationCount ?? 0,
      memoriesExtracted: s.stats?.memoriesExtracted ?? 0,
    },
    participants: r.participants.map((p, i) => ({
      participantId: p.participantId,
      kind: kindFromProto(p.kind, `record.participants[${i}].kind`),
      displayName: p.displayName,
      metadata: p.metadata ?? {},
      insights: p.insights,
      lastIntegratedSeq: num(p.lastIntegratedSeq),
      bindTime: time(p.bindTime, `record.participants[${i}].bind_time`),
      leaveTime: time(p.leaveTime, `record.participants[${i}].leave_time`) ?? null,
    })),
    turns: r.turns.map((t, i) => ({
      seq: num(t.seq),
      participantId: t.participantId,
      role: t.role,
      content: t.content,
      toolCalls: t.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments ?? {} })),
      metadata: t.metadata ?? {},
      requestId: t.requestId,
      createTime: time(t.createTime, `record.turns[${i}].create_time`),
    })),
    compactions: r.compactions.map((c, i) => ({
      firstSeq: num(c.firstSeq),
      upToSeq: num(c.upToSeq),
      turnsArchived: c.turnsArchived,
      summary: c.summary,
      summarizer: c.summarizer,
      memoryIds: c.memoryIds,
      createTime: time(c.createTime, `record.compactions[${i}].create_time`),
    })),
    traces: r.traces.map((t, i) => ({
      id: t.trace?.id ?? "",
      traceId: t.trace?.traceId ?? "",
      createTime: time(t.createTime, `record.traces[${i}].create_time`),
      spans: t.spans.map((sp, j) => spanFromProto(sp, `record.traces[${i}].spans[${j}]`)),
    })),
    annotations: r.annotations.map((a, i) => {
      const target = targetFromProto(a.target);
      let annotatorKind;
      try {
        annotatorKind = annotatorFromProto(a.annotatorKind);
      } catch {
        throw new InvalidInputError(`record.annotations[${i}].annotator_kind`, `unknown kind ${a.annotatorKind}`);
      }
      return {
        id: a.id,
        target: target.kind === "sessionId" ? { kind: "none" as const } : target,
        name: a.name,
        annotatorKind,
        label: a.label,
        score: a.score ?? null,
        explanation: a.explanation,
        metadata: a.metadata ?? {},
        identifier: a.identifier,
        createTime: time(a.createTime, `record.annotations[${i}].create_time`),
        updateTime: time(a.updateTime, `record.annotations[${i}].update_time`),
      };
    }),
    memories: r.memories.map((m, i) => ({
      id: m.id,
      subjectParticipantId: m.subjectParticipantId,
      subjectUser: m.subjectUser,
      content: m.content,
      metadata: m.metadata ?? {},
      integratedBy: m.integratedBy,
      createTime: time(m.createTime, `record.memories[${i}].create_time`),
    })),
  };
}

const MODE: Partial<Record<ImportConflictMode, ImportHeader["onConflict"]>> = {
  [ImportConflictMode.UNSPECIFIED]: "fail",
  [ImportConflictMode.FAIL]: "fail",
  [ImportConflictMode.SKIP]: "skip",
  [ImportConflictMode.REPLACE]: "replace",
};

/** The first message of an import -> its header. */
export function importHeaderFromProto(m: ImportSessionsRequest | undefined): ImportHeader {
  return { namespace: m?.namespace ?? "", sourceNamespace: m?.sourceNamespace ?? "", onConflict: MODE[m?.onConflict ?? ImportConflictMode.UNSPECIFIED] };
}

const OUTCOME = {
  imported: ImportOutcome.IMPORTED,
  replaced: ImportOutcome.REPLACED,
  skipped: ImportOutcome.SKIPPED,
  invalid: ImportOutcome.INVALID,
  failed: ImportOutcome.FAILED,
} as const;

/** An import's summary -> protobuf. */
export function importSummaryToProto(s: ImportSummary): ImportSessionsResponse {
  return create(ImportSessionsResponseSchema, {
    results: s.results.map((r) => ({ index: BigInt(r.index), sessionId: r.sessionId, id: r.id, outcome: OUTCOME[r.outcome], error: r.error })),
    imported: BigInt(s.imported),
    replaced: BigInt(s.replaced),
    skipped: BigInt(s.skipped),
    failed: BigInt(s.failed),
  });
}
