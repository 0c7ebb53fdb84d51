/**
 * A session with everything it holds, as ExportSessions writes it and ImportSessions reads it (no
 * protobuf, no SQL), and the checks an imported record goes through: the same rules and limits as the
 * normal write paths (CreateSession, BindParticipant, AppendTurns, RecordSpans, Annotate), plus the
 * links inside the record (a turn's speaker is one of its participants, an annotation's trace is one
 * of its traces, and so on). Errors name the field from the record, e.g. record.turns[3].content.
 */
import type { Participant, ParticipantKind, ToolCall } from "./conversation-model.js";
import { checkParticipantId, MAX_CONTENT_BYTES, MAX_METADATA_BYTES, MAX_PARTICIPANTS, MAX_TOOL_CALLS } from "./conversation-model.js";
import { InvalidInputError } from "./errors.js";
import { decodeGlobalId, decodeSessionId } from "./ids.js";
import { checkData, checkLabels, checkNamespace, checkText, MAX_REQUESTS_PER_MINUTE, type JsonObject, type SessionStats } from "./session-model.js";
import { checkSpan, checkSpanId, checkTraceId, MAX_ANNOTATION_METADATA_BYTES, MAX_EXPLANATION_BYTES, type Annotation, type AnnotatorKind, type Span, type SpanInput } from "./trace-model.js";

/** The session itself, as a record holds it (never its client secret). */
export interface RecordSession {
  uuid: string;
  sessionId: string;
  /** The namespace it was exported from. */
  namespace: string;
  user: string;
  workflow: { id: string; version: string };
  data: JsonObject;
  labels: Record<string, string>;
  state: "active" | "cancelled";
  createTime: Date;
  updateTime: Date;
  lastActivityTime: Date;
  /** Set when soft-deleted. */
  deleteTime: Date | null;
  expireTime: Date;
  maxRequestsPerMinute: number;
  stats: RecordStats;
  /** The last sequence number given out (at least the last turn's). */
  lastTurnSeq: number;
}

/** The session's counters, the compaction ones included (on import: recomputed, see the store). */
export type RecordStats = Required<SessionStats>;

/** A participant as a record holds it: as bound to the session. */
export type RecordParticipant = Participant;

export interface RecordTurn {
  seq: number;
  participantId: string;
  role: string;
  content: string;
  toolCalls: ToolCall[];
  metadata: JsonObject;
  /** "" when none. */
  requestId: string;
  createTime: Date;
  /** Output only: seq <= the session's compacted_seq. */
  archived: boolean;
}

export interface RecordCompaction {
  firstSeq: number;
  upToSeq: number;
  turnsArchived: number;
  summary: string;
  summarizer: string;
  /** Memory uuids. */
  memoryUuids: string[];
  createTime: Date;
}

export interface RecordTrace {
  uuid: string;
  traceId: string;
  rootSpanName: string;
  startTime: Date | null;
  endTime: Date | null;
  statusCode: number;
  createTime: Date;
  spans: Span[];
}

export type RecordAnnotationTarget = { kind: "session" } | { kind: "trace"; traceId: string } | { kind: "span"; traceId: string; spanId: string };

/** An annotation as a record holds it: its target within the record (the session is the record's). */
export type RecordAnnotation = Omit<Annotation, "target"> & { target: RecordAnnotationTarget };

export interface RecordMemory {
  uuid: string;
  subjectParticipantId: string;
  subjectUser: string;
  content: string;
  metadata: JsonObject;
  integratedBy: string;
  createTime: Date;
}

/** One session with everything it holds. */
export interface SessionRecord {
  session: RecordSession;
  participants: RecordParticipant[];
  turns: RecordTurn[];
  compactions: RecordCompaction[];
  traces: RecordTrace[];
  annotations: RecordAnnotation[];
  memories: RecordMemory[];
}

/**
 * A record as it arrives, its ids still global ids and its times possibly missing (the handler's
 * mapper fills what it can; the domain checks the rest). Undefined times are errors named by field.
 */
export interface RecordInput {
  session: Omit<RecordSession, "uuid" | "createTime" | "updateTime" | "lastActivityTime" | "expireTime" | "state" | "stats"> & {
    /** The global id. */
    id: string;
    /** undefined: an unknown state; "soft_deleted" needs deleteTime. */
    state: "active" | "cancelled" | "soft_deleted" | undefined;
    createTime?: Date;
    updateTime?: Date;
    lastActivityTime?: Date;
    expireTime?: Date;
    integrationCount: number;
    memoriesExtracted: number;
  };
  participants: (Omit<RecordParticipant, "kind" | "bindTime"> & { kind: ParticipantKind | undefined; bindTime?: Date })[];
  turns: (Omit<RecordTurn, "createTime" | "archived"> & { createTime?: Date })[];
  compactions: (Omit<RecordCompaction, "memoryUuids" | "createTime"> & { memoryIds: string[]; createTime?: Date })[];
  traces: { id: string; traceId: string; createTime?: Date; spans: SpanInput[] }[];
  annotations: (Omit<RecordAnnotation, "uuid" | "target" | "annotatorKind" | "createTime" | "updateTime"> & {
    id: string;
    target: { kind: "session"; id: string } | { kind: "trace"; traceId: string } | { kind: "span"; traceId: string; spanId: string } | { kind: "none" };
    annotatorKind: AnnotatorKind | undefined;
    createTime?: Date;
    updateTime?: Date;
  })[];
  memories: (Omit<RecordMemory, "uuid" | "createTime"> & { id: string; createTime?: Date })[];
}

export const MAX_MEMORY_CONTENT_BYTES = 8 * 1024;
/** Insights a participant keeps (as integration keeps them). */
export const MAX_INSIGHTS = 1000;
const ROLE = /^[a-z0-9_-]{1,32}$/;

function required(t: Date | undefined, field: string): Date {
  if (!t) throw new InvalidInputError(field, "is required");
  return t;
}

function count(n: number, field: string, max = 2 ** 31 - 1): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new InvalidInputError(field, `must be an integer between 0 and ${max}`);
  return n;
}

function bytesAtMost(value: string, max: number, field: string): void {
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > max) throw new InvalidInputError(field, `must be at most ${max} bytes, got ${bytes}`);
}

/**
 * Checks a record to import: every field as the normal write paths check it, and the links inside the
 * record. `source` is the namespace the records must come from. Returns it with database uuids.
 * @throws InvalidInputError naming the field (record.session.session_id, record.turns[2].role, ...)
 */
export function checkRecord(input: RecordInput, source: string): SessionRecord {
  const s = input.session;
  const at = "record.session";
  if (checkNamespace(s.namespace, `${at}.namespace`) !== source) throw new InvalidInputError(`${at}.namespace`, `is "${s.namespace || "default"}", not the source namespace "${source}"`);
  const uuid = decodeSessionId(s.id, `${at}.id`).uuid;
  const sessionId = checkText(`${at}.session_id`, s.sessionId, 256, { required: true, id: true });
  if (!s.state) throw new InvalidInputError(`${at}.state`, "must be ACTIVE, CANCELLED or SOFT_DELETED");
  if (s.state === "soft_deleted" && !s.deleteTime) throw new InvalidInputError(`${at}.delete_time`, "is required for a soft-deleted session");
  if (s.maxRequestsPerMinute < 1 || s.maxRequestsPerMinute > MAX_REQUESTS_PER_MINUTE) throw new InvalidInputError(`${at}.max_requests_per_minute`, `must be between 1 and ${MAX_REQUESTS_PER_MINUTE}`);
  const session: RecordSession = {
    uuid,
    sessionId,
    namespace: source,
    user: checkText(`${at}.user`, s.user, 256),
    workflow: { id: checkText(`${at}.workflow.id`, s.workflow.id, 256), version: checkText(`${at}.workflow.version`, s.workflow.version, 64) },
    data: checkData(s.data, `${at}.data`),
    labels: checkLabels(s.labels, `${at}.labels`),
    // A soft-deleted session keeps the state it had under its delete_time; the export says only
    // SOFT_DELETED, so it comes back active (UndeleteSession would make it so).
    state: s.state === "cancelled" ? "cancelled" : "active",
    createTime: required(s.createTime, `${at}.create_time`),
    updateTime: required(s.updateTime, `${at}.update_time`),
    lastActivityTime: required(s.lastActivityTime, `${at}.last_activity_time`),
    deleteTime: s.deleteTime,
    expireTime: required(s.expireTime, `${at}.expire_time`),
    maxRequestsPerMinute: s.maxRequestsPerMinute,
    lastTurnSeq: count(s.lastTurnSeq, "record.last_turn_seq", Number.MAX_SAFE_INTEGER),
    stats: {
      participantCount: 0,
      turnCount: 0,
      traceCount: 0,
      spanCount: 0,
      compactionCount: 0,
      archivedTurnCount: 0,
      compactedSeq: 0,
      integrationCount: count(s.integrationCount, `${at}.stats.integration_count`),
      memoriesExtracted: count(s.memoriesExtracted, `${at}.stats.memories_extracted`),
    },
  };

  if (input.participants.length > MAX_PARTICIPANTS) throw new InvalidInputError("record.participants", `at most ${MAX_PARTICIPANTS}, got ${input.participants.length}`);
  const speakers = new Set<string>();
  const participants = input.participants.map((p, i): RecordParticipant => {
    const pat = `record.participants[${i}]`;
    const participantId = checkParticipantId(p.participantId, `${pat}.participant_id`);
    if (speakers.has(participantId)) throw new InvalidInputError(`${pat}.participant_id`, `"${participantId}" is given twice`);
    speakers.add(participantId);
    if (!p.kind) throw new InvalidInputError(`${pat}.kind`, "is required: USER, AGENT, SYSTEM or TOOL");
    if (p.insights.length > MAX_INSIGHTS) throw new InvalidInputError(`${pat}.insights`, `at most ${MAX_INSIGHTS}, got ${p.insights.length}`);
    p.insights.forEach((x, j) => checkText(`${pat}.insights[${j}]`, x, MAX_CONTENT_BYTES));
    return {
      participantId,
      kind: p.kind,
      displayName: checkText(`${pat}.display_name`, p.displayName, 256),
      metadata: checkData(p.metadata, `${pat}.metadata`, MAX_METADATA_BYTES),
      insights: p.insights,
      lastIntegratedSeq: count(p.lastIntegratedSeq, `${pat}.last_integrated_seq`, Number.MAX_SAFE_INTEGER),
      bindTime: required(p.bindTime, `${pat}.bind_time`),
      leaveTime: p.leaveTime,
    };
  });

  let lastSeq = 0;
  const turns = input.turns.map((t, i): RecordTurn => {
    const tat = `record.turns[${i}]`;
    if (!Number.isSafeInteger(t.seq) || t.seq <= lastSeq) throw new InvalidInputError(`${tat}.seq`, `must be positive and above the previous turn's (${lastSeq})`);
    lastSeq = t.seq;
    if (!speakers.has(t.participantId)) throw new InvalidInputError(`${tat}.participant_id`, `"${t.participantId.slice(0, 80)}" is not one of the record's participants`);
    if (!ROLE.test(t.role)) throw new InvalidInputError(`${tat}.role`, "must be 1 to 32 characters of [a-z0-9_-]");
    if (t.content === "") throw new InvalidInputError(`${tat}.content`, "must not be empty");
    bytesAtMost(t.content, MAX_CONTENT_BYTES, `${tat}.content`);
    checkText(`${tat}.content`, t.content, Infinity);
    if (t.toolCalls.length > MAX_TOOL_CALLS) throw new InvalidInputError(`${tat}.tool_calls`, `at most ${MAX_TOOL_CALLS}, got ${t.toolCalls.length}`);
    t.toolCalls.forEach((c, j) => {
      checkText(`${tat}.tool_calls[${j}].id`, c.id, 256, { id: true });
      checkText(`${tat}.tool_calls[${j}].name`, c.name, 256, { required: true, id: true });
      checkData(c.arguments, `${tat}.tool_calls[${j}].arguments`, MAX_CONTENT_BYTES);
    });
    return {
      seq: t.seq,
      participantId: t.participantId,
      role: t.role,
      content: t.content,
      toolCalls: t.toolCalls,
      metadata: checkData(t.metadata, `${tat}.metadata`, MAX_METADATA_BYTES),
      requestId: checkText(`${tat}.request_id`, t.requestId, 128, { id: true }),
      createTime: required(t.createTime, `${tat}.create_time`),
      archived: false,
    };
  });
  if (session.lastTurnSeq < lastSeq) session.lastTurnSeq = lastSeq;

  let lastUpTo = 0;
  const compactions = input.compactions.map((c, i): RecordCompaction => {
    const cat = `record.compactions[${i}]`;
    if (!Number.isSafeInteger(c.upToSeq) || c.upToSeq <= lastUpTo) throw new InvalidInputError(`${cat}.up_to_seq`, `must be positive and above the previous compaction's (${lastUpTo})`);
    if (!Number.isSafeInteger(c.firstSeq) || c.firstSeq < 1 || c.firstSeq > c.upToSeq) throw new InvalidInputError(`${cat}.first_seq`, "must be between 1 and up_to_seq");
    if (c.upToSeq > session.lastTurnSeq) throw new InvalidInputError(`${cat}.up_to_seq`, `must not be past the session's last turn (${session.lastTurnSeq})`);
    lastUpTo = c.upToSeq;
    bytesAtMost(c.summary, MAX_CONTENT_BYTES, `${cat}.summary`);
    checkText(`${cat}.summary`, c.summary, Infinity);
    return {
      firstSeq: c.firstSeq,
      upToSeq: c.upToSeq,
      turnsArchived: count(c.turnsArchived, `${cat}.turns_archived`),
      summary: c.summary,
      summarizer: checkText(`${cat}.summarizer`, c.summarizer, 64, { required: true, id: true }),
      memoryUuids: c.memoryIds.map((m, j) => decodeGlobalId("Memory", m, `${cat}.memory_ids[${j}]`)),
      createTime: required(c.createTime, `${cat}.create_time`),
    };
  });
  for (const t of turns) t.archived = t.seq <= lastUpTo;

  const traceIds = new Set<string>();
  const spanKeys = new Set<string>();
  const traces = input.traces.map((t, i): RecordTrace => {
    const tat = `record.traces[${i}]`;
    const traceId = checkTraceId(t.traceId, `${tat}.trace.trace_id`);
    if (traceIds.has(traceId)) throw new InvalidInputError(`${tat}.trace.trace_id`, `${traceId} is given twice`);
    traceIds.add(traceId);
    const spans = t.spans.map((s, j) => {
      const span = checkSpan(s, `${tat}.spans[${j}]`);
      if (span.traceId !== traceId) throw new InvalidInputError(`${tat}.spans[${j}].trace_id`, `must be the trace's (${traceId})`);
      const key = `${traceId}/${span.spanId}`;
      if (spanKeys.has(key)) throw new InvalidInputError(`${tat}.spans[${j}].span_id`, `${span.spanId} is given twice`);
      spanKeys.add(key);
      return span;
    });
    return { uuid: decodeGlobalId("Trace", t.id, `${tat}.trace.id`), traceId, rootSpanName: "", startTime: null, endTime: null, statusCode: 0, createTime: required(t.createTime, `${tat}.create_time`), spans };
  });

  const annotations = input.annotations.map((a, i): RecordAnnotation => {
    const aat = `record.annotations[${i}]`;
    let target: RecordAnnotationTarget;
    const tg = a.target;
    if (tg.kind === "session") {
      if (decodeSessionId(tg.id, `${aat}.target.session`).uuid !== uuid) throw new InvalidInputError(`${aat}.target.session`, "must be the record's session");
      target = { kind: "session" };
    } else if (tg.kind === "trace" || tg.kind === "span") {
      const traceId = checkTraceId(tg.traceId, `${aat}.target.trace_id`);
      if (!traceIds.has(traceId)) throw new InvalidInputError(`${aat}.target`, `trace ${traceId} is not one of the record's traces`);
      if (tg.kind === "span") {
        const spanId = checkSpanId(tg.spanId, `${aat}.target.span.span_id`);
        if (!spanKeys.has(`${traceId}/${spanId}`)) throw new InvalidInputError(`${aat}.target.span`, `span ${spanId} is not one of the trace's spans`);
        target = { kind: "span", traceId, spanId };
      } else target = { kind: "trace", traceId };
    } else throw new InvalidInputError(`${aat}.target`, "is required");
    if (!a.annotatorKind) throw new InvalidInputError(`${aat}.annotator_kind`, "is required: HUMAN, LLM or CODE");
    if (a.score !== null && !Number.isFinite(a.score)) throw new InvalidInputError(`${aat}.score`, "must be a finite number");
    bytesAtMost(a.explanation, MAX_EXPLANATION_BYTES, `${aat}.explanation`);
    return {
      uuid: decodeGlobalId("Annotation", a.id, `${aat}.id`),
      target,
      name: checkText(`${aat}.name`, a.name, 256, { required: true }),
      annotatorKind: a.annotatorKind,
      label: checkText(`${aat}.label`, a.label, 256),
      score: a.score,
      explanation: checkText(`${aat}.explanation`, a.explanation, Infinity),
      metadata: checkData(a.metadata, `${aat}.metadata`, MAX_ANNOTATION_METADATA_BYTES),
      identifier: checkText(`${aat}.identifier`, a.identifier, 256, { id: true }),
      createTime: required(a.createTime, `${aat}.create_time`),
      updateTime: required(a.updateTime, `${aat}.update_time`),
    };
  });

  const memories = input.memories.map((m, i): RecordMemory => {
    const mat = `record.memories[${i}]`;
    if (m.content === "") throw new InvalidInputError(`${mat}.content`, "must not be empty");
    bytesAtMost(m.content, MAX_MEMORY_CONTENT_BYTES, `${mat}.content`);
    return {
      uuid: decodeGlobalId("Memory", m.id, `${mat}.id`),
      subjectParticipantId: checkText(`${mat}.subject_participant_id`, m.subjectParticipantId, 256, { id: true }),
      subjectUser: checkText(`${mat}.subject_user`, m.subjectUser, 256),
      content: checkText(`${mat}.content`, m.content, Infinity),
      metadata: checkData(m.metadata, `${mat}.metadata`, MAX_METADATA_BYTES),
      integratedBy: checkText(`${mat}.integrated_by`, m.integratedBy, 256),
      createTime: required(m.createTime, `${mat}.create_time`),
    };
  });
  return { session, participants, turns, compactions, traces, annotations, memories };
}
