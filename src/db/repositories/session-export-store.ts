/**
 * Storage of exports and imports (the domain's SessionExportStore). A page of records is read with one
 * statement per table for the whole page (never one per session or per row), in one REPEATABLE READ
 * transaction so that each record is a consistent picture; a record is written with one statement per
 * table (rows passed as one JSON document each) in one transaction. Every statement names namespace_id,
 * joins included.
 */
import type { DataSource, EntityManager } from "typeorm";
import type { BatchKeys } from "../../domain/bulk-delete-store.js";
import { AlreadyExistsError, NamespaceGoneError } from "../../domain/errors.js";
import { newUuid } from "../../domain/ids.js";
import type { ConflictMode, SessionExportStore, WriteOutcome } from "../../domain/session-export-store.js";
import type { RecordAnnotation, RecordTrace, SessionRecord } from "../../domain/session-record.js";
import { isForeignKeyViolation, isUniqueViolation } from "../errors.js";
import { sqlOf, type Sql } from "../sql.js";
import { deleteBatch } from "./bulk-delete-store.js";
import { recordChange } from "./session-changes.js";
import { annotationFields, toSpan } from "./trace-store.js";

/** Rows grouped by their session's uuid. */
function bySession<T>(rows: any[], map: (row: any) => T, key = "session_id"): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const list = out.get(r[key]) ?? [];
    list.push(map(r));
    out.set(r[key], list);
  }
  return out;
}

function toAnnotation(row: any): RecordAnnotation {
  const target: RecordAnnotation["target"] =
    row.target_kind === "span" ? { kind: "span", traceId: row.trace_otel_id, spanId: row.otel_span_id } : row.target_kind === "trace" ? { kind: "trace", traceId: row.trace_otel_id } : { kind: "session" };
  return { ...annotationFields(row), target };
}

/** Reads the records of a page of sessions (see SessionExportStore.readRecords). */
async function readRecords(q: Sql, namespaceId: string, namespace: string, keys: BatchKeys): Promise<SessionRecord[]> {
  const sessions = await q(
    keys.kind === "uuid"
      ? "SELECT s.* FROM sessions s WHERE s.namespace_id = $1 AND s.id = ANY($2::uuid[])"
      : "SELECT s.* FROM sessions s WHERE s.namespace_id = $1 AND s.external_id = ANY($2::text[])",
    [namespaceId, keys.values],
  );
  if (!sessions.length) return [];
  const ids = [namespaceId, sessions.map((s) => s.id)];
  const participants = bySession(
    await q(
      `SELECT p.session_id, p.participant_id, p.kind, p.display_name, p.metadata, p.insights, p.last_integrated_seq, p.bound_time, p.left_time
       FROM participants p WHERE p.namespace_id = $1 AND p.session_id = ANY($2::uuid[]) ORDER BY p.bound_time, p.participant_id`,
      ids,
    ),
    (r) => ({ participantId: r.participant_id, kind: r.kind, displayName: r.display_name, metadata: r.metadata, insights: r.insights, lastIntegratedSeq: Number(r.last_integrated_seq), bindTime: r.bound_time, leaveTime: r.left_time }),
  );
  const turns = bySession(
    await q(
      `SELECT t.session_id, t.seq, p.participant_id, t.role, t.content, t.tool_calls, t.metadata, t.request_id, t.create_time
       FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
       WHERE t.namespace_id = $1 AND t.session_id = ANY($2::uuid[]) ORDER BY t.seq`,
      ids,
    ),
    (r) => ({ seq: Number(r.seq), participantId: r.participant_id, role: r.role, content: r.content, toolCalls: r.tool_calls, metadata: r.metadata, requestId: r.request_id ?? "", createTime: r.create_time, archived: false }),
  );
  const compactions = bySession(
    await q("SELECT c.* FROM session_compactions c WHERE c.namespace_id = $1 AND c.session_id = ANY($2::uuid[]) ORDER BY c.up_to_seq", ids),
    (r) => ({ firstSeq: Number(r.first_seq), upToSeq: Number(r.up_to_seq), turnsArchived: r.turns_archived, summary: r.summary, summarizer: r.summarizer, memoryUuids: r.memory_ids, createTime: r.create_time }),
  );
  const spans = bySession(
    await q(
      `SELECT sp.*, t.otel_trace_id AS trace_otel_id FROM spans sp JOIN traces t ON t.namespace_id = sp.namespace_id AND t.id = sp.trace_id
       WHERE sp.namespace_id = $1 AND t.namespace_id = $1 AND t.session_id = ANY($2::uuid[]) ORDER BY sp.start_time, sp.otel_span_id`,
      ids,
    ),
    toSpan,
    "trace_id",
  );
  const traces = bySession(
    await q("SELECT t.* FROM traces t WHERE t.namespace_id = $1 AND t.session_id = ANY($2::uuid[]) ORDER BY t.create_time, t.id", ids),
    (r): RecordTrace => ({ uuid: r.id, traceId: r.otel_trace_id, rootSpanName: r.root_name, startTime: r.start_time, endTime: r.end_time, statusCode: r.status_code, createTime: r.create_time, spans: spans.get(r.id) ?? [] }),
  );
  const annotations = bySession(
    await q(
      `SELECT a.*, t.otel_trace_id AS trace_otel_id, sp.otel_span_id FROM annotations a
       LEFT JOIN traces t ON t.namespace_id = a.namespace_id AND t.id = a.trace_id
       LEFT JOIN spans sp ON sp.namespace_id = a.namespace_id AND sp.id = a.span_id
       WHERE a.namespace_id = $1 AND a.session_id = ANY($2::uuid[]) ORDER BY a.create_time, a.id`,
      ids,
    ),
    toAnnotation,
  );
  const memories = bySession(
    await q("SELECT m.* FROM memories m WHERE m.namespace_id = $1 AND m.source_session_id = ANY($2::uuid[]) ORDER BY m.create_time, m.id", ids),
    (r) => ({ uuid: r.id, subjectParticipantId: r.subject_participant_id, subjectUser: r.subject_user, content: r.content, metadata: r.metadata, integratedBy: r.integrated_by, createTime: r.create_time }),
    "source_session_id",
  );
  return sessions.map((s): SessionRecord => {
    const compactedSeq = Number(s.compacted_seq);
    return {
      session: {
        uuid: s.id,
        sessionId: s.external_id,
        namespace,
        user: s.user_id,
        workflow: { id: s.workflow_id, version: s.workflow_version },
        data: s.data,
        labels: s.labels,
        state: s.state,
        createTime: s.create_time,
        updateTime: s.update_time,
        lastActivityTime: s.last_activity_time,
        deleteTime: s.delete_time,
        expireTime: s.expire_time,
        maxRequestsPerMinute: s.max_requests_per_minute,
        lastTurnSeq: Number(s.last_turn_seq),
        stats: {
          participantCount: s.participant_count,
          turnCount: s.turn_count,
          traceCount: s.trace_count,
          spanCount: s.span_count,
          memoriesExtracted: s.memories_extracted,
          integrationCount: s.integration_count,
          compactionCount: s.compaction_count,
          archivedTurnCount: s.archived_turn_count,
          compactedSeq,
        },
      },
      participants: participants.get(s.id) ?? [],
      turns: (turns.get(s.id) ?? []).map((t) => ({ ...t, archived: t.seq <= compactedSeq })),
      compactions: compactions.get(s.id) ?? [],
      traces: traces.get(s.id) ?? [],
      annotations: annotations.get(s.id) ?? [],
      memories: memories.get(s.id) ?? [],
    };
  });
}

/** What a trace's row says of its spans (as RecordSpans computes it: see trace-store.ts summarize). */
function traceSummary(t: RecordTrace) {
  let first: Date | null = null;
  let last: Date | null = null;
  let status = 0;
  let root = "";
  let rootStart = Infinity;
  for (const s of t.spans) {
    if (!first || s.startTime < first) first = s.startTime;
    if (!last || s.endTime > last) last = s.endTime;
    if (s.statusCode > status) status = s.statusCode;
    if (!s.parentSpanId && s.startTime.getTime() < rootStart) {
      root = s.name;
      rootStart = s.startTime.getTime();
    }
  }
  return { id: t.uuid, otel: t.traceId, root, start: first, end: last, n: t.spans.length, status, created: t.createTime };
}

/** Writes one record (see SessionExportStore.writeRecord); `q` runs in the record's transaction. */
async function writeRecord(q: Sql, db: EntityManager, namespaceId: string, r: SessionRecord, mode: ConflictMode): Promise<WriteOutcome> {
  const s = r.session;
  // Each key through its own index, in a statement of its own: a combined condition plans as a scan of
  // the namespace's sessions on tables the planner knows little of.
  const byKey = await q("SELECT s.id FROM sessions s WHERE s.namespace_id = $1 AND s.external_id = $2 FOR UPDATE", [namespaceId, s.sessionId]);
  const byId = byKey.some((e) => e.id === s.uuid) ? [] : await q("SELECT s.id FROM sessions s WHERE s.namespace_id = $1 AND s.id = $2 FOR UPDATE", [namespaceId, s.uuid]);
  const existing = [...byKey, ...byId];
  if (existing.length) {
    if (mode !== "replace") return { outcome: "exists" };
    await deleteBatch(db, namespaceId, { kind: "uuid", values: existing.map((e) => e.id) }, { dryRun: false, purgeMemories: false });
  }
  await q(
    `INSERT INTO sessions (id, namespace_id, external_id, user_id, workflow_id, workflow_version, data, labels, state, create_time, update_time,
       last_activity_time, delete_time, expire_time, max_requests_per_minute, client_secret_hash, integration_count, memories_extracted, change_seq)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, $16, $17, 0)`,
    [s.uuid, namespaceId, s.sessionId, s.user, s.workflow.id, s.workflow.version, s.data, s.labels, s.state, s.createTime, s.updateTime, s.lastActivityTime, s.deleteTime, s.expireTime, s.maxRequestsPerMinute, s.stats.integrationCount, s.stats.memoriesExtracted],
  );
  const refs = new Map(r.participants.map((p) => [p.participantId, newUuid()]));
  if (r.participants.length) {
    await q(
      `INSERT INTO participants (id, namespace_id, session_id, participant_id, kind, display_name, metadata, insights, last_integrated_seq, bound_time, left_time)
       SELECT x.id, $1, $2, x.participant_id, x.kind, x.display_name, x.metadata, x.insights, x.last_integrated_seq, x.bound_time, x.left_time
       FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, participant_id text, kind text, display_name text, metadata jsonb, insights jsonb, last_integrated_seq bigint, bound_time timestamptz, left_time timestamptz)`,
      [namespaceId, s.uuid, JSON.stringify(r.participants.map((p) => ({ id: refs.get(p.participantId), participant_id: p.participantId, kind: p.kind, display_name: p.displayName, metadata: p.metadata, insights: p.insights, last_integrated_seq: p.lastIntegratedSeq, bound_time: p.bindTime, left_time: p.leaveTime })))],
    );
  }
  if (r.turns.length) {
    await q(
      `INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id, create_time)
       SELECT $1, $2, x.ref, x.seq, x.role, x.content, x.tool_calls, x.metadata, x.request_id, x.create_time
       FROM jsonb_to_recordset($3::jsonb) AS x(ref uuid, seq bigint, role text, content text, tool_calls jsonb, metadata jsonb, request_id text, create_time timestamptz)`,
      [namespaceId, s.uuid, JSON.stringify(r.turns.map((t) => ({ ref: refs.get(t.participantId), seq: t.seq, role: t.role, content: t.content, tool_calls: t.toolCalls, metadata: t.metadata, request_id: t.requestId || null, create_time: t.createTime })))],
    );
  }
  if (r.compactions.length) {
    await q(
      `INSERT INTO session_compactions (namespace_id, session_id, up_to_seq, first_seq, turns_archived, summary, summarizer, memory_ids, create_time)
       SELECT $1, $2, x.up_to_seq, x.first_seq, x.turns_archived, x.summary, x.summarizer, ARRAY(SELECT jsonb_array_elements_text(x.memory_ids))::uuid[], x.create_time
       FROM jsonb_to_recordset($3::jsonb) AS x(up_to_seq bigint, first_seq bigint, turns_archived integer, summary text, summarizer text, memory_ids jsonb, create_time timestamptz)`,
      [namespaceId, s.uuid, JSON.stringify(r.compactions.map((c) => ({ up_to_seq: c.upToSeq, first_seq: c.firstSeq, turns_archived: c.turnsArchived, summary: c.summary, summarizer: c.summarizer, memory_ids: c.memoryUuids, create_time: c.createTime })))],
    );
  }
  const spanRows = new Map<string, string>();
  if (r.traces.length) {
    const taken = await q("SELECT t.otel_trace_id FROM traces t WHERE t.namespace_id = $1 AND t.otel_trace_id = ANY($2::text[]) LIMIT 1", [namespaceId, r.traces.map((t) => t.traceId)]);
    if (taken.length) throw new AlreadyExistsError(`trace ${taken[0].otel_trace_id} exists in the namespace already (under another session or none)`);
    await q(
      `INSERT INTO traces (id, namespace_id, session_id, otel_trace_id, root_name, start_time, end_time, span_count, status_code, create_time)
       SELECT x.id, $1, $2, x.otel, x.root, x.start, x."end", x.n, x.status, x.created
       FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, otel text, root text, start timestamptz, "end" timestamptz, n integer, status smallint, created timestamptz)`,
      [namespaceId, s.uuid, JSON.stringify(r.traces.map(traceSummary))],
    );
    const spans = r.traces.flatMap((t) =>
      t.spans.map((sp) => ({
        trace: t.uuid,
        id: sp.spanId,
        parent: sp.parentSpanId || null,
        name: sp.name,
        kind: sp.kind,
        start: sp.startTime,
        end: sp.endTime,
        status: sp.statusCode,
        message: sp.statusMessage,
        attributes: sp.attributes,
        events: sp.events,
      })),
    );
    if (spans.length) {
      const rows = await q(
        `INSERT INTO spans (namespace_id, trace_id, otel_span_id, otel_parent_span_id, name, kind, start_time, end_time, status_code, status_message, attributes, events)
         SELECT $1, x.trace, x.id, x.parent, x.name, x.kind, x.start, x."end", x.status, x.message, x.attributes, x.events
         FROM jsonb_to_recordset($2::jsonb) AS x(trace uuid, id text, parent text, name text, kind smallint, start timestamptz, "end" timestamptz, status smallint, message text, attributes jsonb, events jsonb)
         RETURNING id, trace_id, otel_span_id`,
        [namespaceId, JSON.stringify(spans)],
      );
      for (const row of rows) spanRows.set(`${row.trace_id}/${row.otel_span_id}`, String(row.id));
    }
  }
  if (r.annotations.length) {
    const traceUuid = new Map(r.traces.map((t) => [t.traceId, t.uuid]));
    const rows = r.annotations.map((a) => {
      const trace = a.target.kind === "session" ? null : traceUuid.get(a.target.traceId)!;
      const span = a.target.kind === "span" ? spanRows.get(`${trace}/${a.target.spanId}`)! : null;
      const key = a.target.kind === "session" ? `session:${s.uuid}` : a.target.kind === "trace" ? `trace:${trace}` : `span:${span}`;
      return { id: a.uuid, trace, span, kind: a.target.kind, key, name: a.name, annotator: a.annotatorKind, label: a.label, score: a.score, explanation: a.explanation, metadata: a.metadata, identifier: a.identifier, created: a.createTime, updated: a.updateTime };
    });
    await q(
      `INSERT INTO annotations (id, namespace_id, session_id, trace_id, span_id, target_kind, target_key, name, annotator_kind, label, score, explanation, metadata, identifier, create_time, update_time)
       SELECT x.id, $1, $2, x.trace, x.span, x.kind, x.key, x.name, x.annotator, x.label, x.score, x.explanation, x.metadata, x.identifier, x.created, x.updated
       FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, trace uuid, span bigint, kind text, key text, name text, annotator text, label text, score double precision, explanation text, metadata jsonb, identifier text, created timestamptz, updated timestamptz)`,
      [namespaceId, s.uuid, JSON.stringify(rows)],
    );
  }
  if (r.memories.length) {
    // A memory kept after its session was deleted (its source emptied) is linked again; one of another
    // session stays as it is, and the record fails.
    const linked = await q(
      `INSERT INTO memories AS m (id, namespace_id, source_session_id, subject_participant_id, subject_user, content, integrated_by, metadata, create_time)
       SELECT x.id, $1, $2, x.subject_participant_id, x.subject_user, x.content, x.integrated_by, x.metadata, x.create_time
       FROM jsonb_to_recordset($3::jsonb) AS x(id uuid, subject_participant_id text, subject_user text, content text, integrated_by text, metadata jsonb, create_time timestamptz)
       ON CONFLICT (namespace_id, id) DO UPDATE SET source_session_id = EXCLUDED.source_session_id, subject_participant_id = EXCLUDED.subject_participant_id,
         subject_user = EXCLUDED.subject_user, content = EXCLUDED.content, integrated_by = EXCLUDED.integrated_by, metadata = EXCLUDED.metadata, create_time = EXCLUDED.create_time
       WHERE m.source_session_id IS NULL
       RETURNING m.id`,
      [
        namespaceId,
        s.uuid,
        JSON.stringify(r.memories.map((m) => ({ id: m.uuid, subject_participant_id: m.subjectParticipantId, subject_user: m.subjectUser, content: m.content, integrated_by: m.integratedBy, metadata: m.metadata, create_time: m.createTime }))),
      ],
    );
    if (linked.length < r.memories.length) {
      const got = new Set(linked.map((l) => l.id));
      const other = r.memories.find((m) => !got.has(m.uuid))!;
      throw new AlreadyExistsError(`memory ${other.uuid} exists in the namespace already, from another session`);
    }
  }
  // The counters from the rows just written (not from the record), then the CREATED change with the
  // session as it now is.
  await q(
    `WITH s AS (
       UPDATE sessions s SET
         participant_count = (SELECT count(*) FROM participants p WHERE p.namespace_id = $1 AND p.session_id = $2)::int,
         turn_count = (SELECT count(*) FROM turns t WHERE t.namespace_id = $1 AND t.session_id = $2)::int,
         trace_count = (SELECT count(*) FROM traces t WHERE t.namespace_id = $1 AND t.session_id = $2)::int,
         span_count = (SELECT coalesce(sum(t.span_count), 0) FROM traces t WHERE t.namespace_id = $1 AND t.session_id = $2)::int,
         annotation_count = (SELECT count(*) FROM annotations a WHERE a.namespace_id = $1 AND a.session_id = $2)::int,
         last_turn_seq = greatest($3::bigint, (SELECT coalesce(max(t.seq), 0) FROM turns t WHERE t.namespace_id = $1 AND t.session_id = $2)),
         compacted_seq = (SELECT coalesce(max(c.up_to_seq), 0) FROM session_compactions c WHERE c.namespace_id = $1 AND c.session_id = $2),
         compaction_count = (SELECT count(*) FROM session_compactions c WHERE c.namespace_id = $1 AND c.session_id = $2)::int,
         archived_turn_count = (SELECT count(*) FROM turns t WHERE t.namespace_id = $1 AND t.session_id = $2
           AND t.seq <= (SELECT coalesce(max(c.up_to_seq), 0) FROM session_compactions c WHERE c.namespace_id = $1 AND c.session_id = $2))::int,
         memories_extracted = greatest(s.memories_extracted, (SELECT count(*) FROM memories m WHERE m.namespace_id = $1 AND m.source_session_id = $2)::int),
         -- A session deleted and imported again keeps its uuid: its changes go on after those kept of
         -- its earlier life (the outbox keeps them for a while), so a change number is never reused.
         change_seq = 1 + (SELECT coalesce(max(c.change), 0) FROM session_changes c WHERE c.namespace_id = $1 AND c.session_id = $2)
       WHERE s.namespace_id = $1 AND s.id = $2 RETURNING s.*),
     ${recordChange("created")}
     SELECT s.id FROM s`,
    [namespaceId, s.uuid, s.lastTurnSeq],
  );
  return { outcome: existing.length ? "replaced" : "imported" };
}

/** The export/import store over `dataSource`. */
export function createSessionExportStore(dataSource: DataSource): SessionExportStore {
  return {
    readRecords: (namespaceId, namespace, keys) => dataSource.transaction("REPEATABLE READ", (m) => readRecords(sqlOf(m), namespaceId, namespace, keys)),
    async writeRecord(namespaceId, record, mode) {
      try {
        return await dataSource.transaction((m) => writeRecord(sqlOf(m), m, namespaceId, record, mode));
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError("a row of the record (a session, trace, annotation identifier or memory) exists in the namespace already");
        if (isForeignKeyViolation(err)) throw new NamespaceGoneError("the namespace was deleted meanwhile");
        throw err;
      }
    },
  };
}
