/**
 * Storage of traces, spans and annotations (the domain's TraceStore). Every statement is scoped by
 * namespace_id, joins included (the keys are (namespace_id, id)).
 *
 * Lock order: the session a call names (RecordSpans, Annotate on a session: locked first, so a
 * concurrent cancel or delete waits or wins cleanly), then trace rows (in trace-id order, taken by the
 * trace upsert), then the other sessions whose counters change (in id order, at the end). A deadlock
 * between unusual interleavings is detected by Postgres and retried by the domain. Session
 * counters (trace_count, span_count, annotation_count) change in the same transaction as the rows they
 * count (see the INVARIANT on SessionEntity).
 */
import type { EntityManager } from "typeorm";
import type { Annotation, Span, Trace } from "../../domain/trace-model.js";
import type { TraceStore } from "../../domain/trace-store.js";
import { arrayLiteral, sqlOf } from "../sql.js";

/** GetTrace returns at most this many spans (the earliest); Trace.span_count tells the total. */
export const MAX_TRACE_SPANS_READ = 10_000;

const TRACE_COLUMNS = "t.id, t.namespace_id, t.otel_trace_id, t.session_id, t.root_name, t.span_count, t.start_time, t.end_time, t.status_code, t.create_time";

function toTrace(row: any): Trace {
  return {
    uuid: row.id,
    namespaceId: row.namespace_id,
    traceId: row.otel_trace_id,
    sessionUuid: row.session_id,
    rootSpanName: row.root_name,
    spanCount: row.span_count,
    startTime: row.start_time,
    endTime: row.end_time,
    statusCode: row.status_code,
  };
}

/** A span row (with its trace's OTel id as trace_otel_id) -> the domain's. */
export function toSpan(row: any): Span {
  return {
    traceId: row.trace_otel_id,
    spanId: row.otel_span_id,
    parentSpanId: row.otel_parent_span_id ?? "",
    name: row.name,
    kind: row.kind,
    startTime: row.start_time,
    endTime: row.end_time,
    statusCode: row.status_code,
    statusMessage: row.status_message,
    attributes: row.attributes,
    events: (row.events as { name: string; time: string; attributes: Record<string, unknown> }[]).map((e) => ({ name: e.name, time: new Date(e.time), attributes: e.attributes as never })),
  };
}

function toAnnotation(row: any): Annotation {
  const target: Annotation["target"] =
    row.target_kind === "span"
      ? { kind: "span", traceId: row.trace_otel_id, spanId: row.otel_span_id }
      : row.target_kind === "trace"
        ? { kind: "trace", traceId: row.trace_otel_id }
        : { kind: "session", namespaceId: row.namespace_id, sessionUuid: row.session_id };
  return { ...annotationFields(row), target };
}

/** An annotation row's fields but its target (which its reader names in its own terms). */
export function annotationFields(row: any): Omit<Annotation, "target"> {
  return {
    uuid: row.id,
    name: row.name,
    annotatorKind: row.annotator_kind,
    label: row.label,
    score: row.score,
    explanation: row.explanation,
    metadata: row.metadata,
    identifier: row.identifier,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}

/** What a set of spans adds to a trace's summary. */
interface Summary {
  n: number;
  first: Date;
  last: Date;
  status: number;
  root: string;
  rootStart: number;
}

/** Per trace (by OpenTelemetry id), what the spans add to its summary. */
function summarize(spans: Span[]) {
  const out = new Map<string, Summary>();
  for (const s of spans) {
    let agg = out.get(s.traceId);
    if (!agg) out.set(s.traceId, (agg = { n: 0, first: s.startTime, last: s.endTime, status: 0, root: "", rootStart: Infinity }));
    agg.n++;
    if (s.startTime < agg.first) agg.first = s.startTime;
    if (s.endTime > agg.last) agg.last = s.endTime;
    if (s.statusCode > agg.status) agg.status = s.statusCode;
    if (!s.parentSpanId && s.startTime.getTime() < agg.rootStart) {
      agg.root = s.name;
      agg.rootStart = s.startTime.getTime();
    }
  }
  return out;
}

/** Epoch milliseconds; null for an unrepresentable time (the NOT NULL column then refuses it). */
function ms(d: Date): number | null {
  const t = d.getTime();
  return Number.isFinite(t) ? t : null;
}

/** The stored state of the session a RecordSpans call names, as sessiond_record_spans() reports it. */
type SessionState = "missing" | "active" | "cancelled" | "soft_deleted";

/** The spans with the first of each (trace id, span id) pair: a span sent twice in one call is stored once. */
function firstOfEach(spans: Span[]): Span[] {
  const seen = new Set<string>();
  const out: Span[] = [];
  for (const s of spans) {
    const key = s.traceId + s.spanId;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(s);
  }
  return out;
}

/** Adds to the counters of several sessions, one statement per session in id order (the lock order). */
async function bumpSessions(db: EntityManager, namespaceId: string, deltas: Map<string, { traces: number; spans: number; annotations: number }>) {
  for (const id of [...deltas.keys()].sort()) {
    const d = deltas.get(id)!;
    if (!d.traces && !d.spans && !d.annotations) continue;
    await db.query("UPDATE sessions SET trace_count = trace_count + $3, span_count = span_count + $4, annotation_count = annotation_count + $5 WHERE namespace_id = $1 AND id = $2", [
      namespaceId,
      id,
      d.traces,
      d.spans,
      d.annotations,
    ]);
  }
}

/** Trace storage bound to a transaction's EntityManager (or the DataSource's manager for reads). */
export function createTraceStore(db: EntityManager): TraceStore {
  const q = sqlOf(db);

  const store: TraceStore = {
    /**
     * Stores spans in one statement, sessiond_record_spans() (migration RecordSpansFunction, which says
     * what it does): the session (when given) locked and checked first, nothing written unless it is
     * active. Spans named twice in the call are dropped here, the first kept; the traces' summaries of
     * what the call holds are computed here too.
     */
    async record(namespaceId, sessionUuid, spans) {
      const unique = firstOfEach(spans);
      const batch = summarize(unique);
      const ids = [...batch.keys()];
      const summaries = [...batch.values()];
      const ints = (f: (a: Summary) => number | null) => `{${summaries.map((a) => f(a) ?? "NULL").join(",")}}`;
      // The spans as one JSON document (one parameter, whatever the count), its text built here around
      // the attributes and events already serialized by checkSpan: node-postgres's array parameters
      // escaped every element in JavaScript (with a column of 500 jsonb texts, 5-8 % of the server's CPU
      // under the bench:ingest load). Times travel as epoch milliseconds.
      const json = unique.map(
        (s) =>
          `{"t":"${s.traceId}","s":"${s.spanId}","p":"${s.parentSpanId}","n":${JSON.stringify(s.name)},"k":${s.kind},"st":${ms(s.startTime)},"et":${ms(s.endTime)},"c":${s.statusCode},"m":${JSON.stringify(s.statusMessage)},"a":${s.attributesJson ?? JSON.stringify(s.attributes)},"e":${s.eventsJson ?? JSON.stringify(s.events)}}`,
      );
      const [row]: { session_state: SessionState | null; recorded: number; traces_created: number }[] = await q(
        `SELECT session_state, recorded, traces_created FROM sessiond_record_spans($1::uuid, $2::uuid, $3::text[], $4::integer[], $5::bigint[], $6::bigint[], $7::smallint[], $8::text[], $9::json)`,
        [namespaceId, sessionUuid, arrayLiteral(ids), ints((a) => a.n), ints((a) => ms(a.first)), ints((a) => ms(a.last)), ints((a) => a.status), arrayLiteral(summaries.map((a) => a.root)), `[${json.join(",")}]`],
        // Prepared: one text whatever the call holds, planned once per connection.
        { prepare: true },
      );
      if (row.session_state !== null && row.session_state !== "active") return { refused: row.session_state };
      return { recorded: row.recorded, duplicate: spans.length - row.recorded, tracesCreated: row.traces_created };
    },

    /** One page of a session's traces (or those under no session), newest first. */
    async list(namespaceId, sessionUuid, after, limit) {
      const params: unknown[] = [namespaceId];
      let where = "t.namespace_id = $1";
      if (sessionUuid) {
        params.push(sessionUuid);
        where += ` AND t.session_id = $${params.length}`;
      } else {
        where += " AND t.session_id IS NULL";
      }
      if (after) {
        params.push(after.createTime, after.uuid);
        where += ` AND (t.create_time, t.id) < ($${params.length - 1}, $${params.length})`;
      }
      params.push(limit);
      const rows = await q(`SELECT ${TRACE_COLUMNS} FROM traces t WHERE ${where} ORDER BY t.create_time DESC, t.id DESC LIMIT $${params.length}`, params);
      return rows.map((r) => ({ ...toTrace(r), createTime: r.create_time }));
    },

    /** A trace by OpenTelemetry id, with its spans. */
    async get(namespaceId, traceId) {
      const [row] = await q(`SELECT ${TRACE_COLUMNS} FROM traces t WHERE t.namespace_id = $1 AND t.otel_trace_id = $2`, [namespaceId, traceId]);
      if (!row) return undefined;
      const spans = await q("SELECT s.*, $3::text AS trace_otel_id FROM spans s WHERE s.namespace_id = $1 AND s.trace_id = $2 ORDER BY s.start_time, s.otel_span_id LIMIT $4", [
        namespaceId,
        row.id,
        traceId,
        MAX_TRACE_SPANS_READ,
      ]);
      return { trace: toTrace(row), spans: spans.map(toSpan) };
    },

    /** Deletes traces (call inside a transaction); spans and annotations go by cascade and are counted. */
    async delete(namespaceId, traceIds) {
      // Lock first, count after: spans and annotations reference their trace, so none can be added once
      // the trace rows are locked, and a statement started after the lock sees every committed one.
      const locked: { id: string; session_id: string | null; span_count: number }[] = await q(
        "SELECT t.id, t.session_id, t.span_count FROM traces t WHERE t.namespace_id = $1 AND t.otel_trace_id = ANY($2::text[]) ORDER BY t.otel_trace_id FOR UPDATE",
        [namespaceId, traceIds],
      );
      if (!locked.length) return { traces: 0, spans: 0, annotations: 0 };
      const counted: { id: string; n: number }[] = await q("SELECT trace_id AS id, count(*)::int AS n FROM annotations WHERE namespace_id = $1 AND trace_id = ANY($2::uuid[]) GROUP BY 1", [
        namespaceId,
        locked.map((r) => r.id),
      ]);
      const annotationsOf = new Map(counted.map((c) => [c.id, c.n]));
      const rows = locked.map((r) => ({ ...r, annotations: annotationsOf.get(r.id) ?? 0 }));
      await q("DELETE FROM traces WHERE namespace_id = $1 AND id = ANY($2::uuid[])", [namespaceId, rows.map((r) => r.id)]);
      const deltas = new Map<string, { traces: number; spans: number; annotations: number }>();
      for (const r of rows) {
        if (!r.session_id) continue;
        const d = deltas.get(r.session_id) ?? { traces: 0, spans: 0, annotations: 0 };
        d.traces--;
        d.spans -= r.span_count;
        d.annotations -= r.annotations;
        deltas.set(r.session_id, d);
      }
      await bumpSessions(db, namespaceId, deltas);
      return { traces: rows.length, spans: rows.reduce((a, r) => a + r.span_count, 0), annotations: rows.reduce((a, r) => a + r.annotations, 0) };
    },

    /**
     * Resolves a trace or span target; undefined when it does not exist in the namespace. In a
     * transaction it keeps the rows from being deleted until commit (FOR KEY SHARE), so an annotation
     * inserted next cannot lose its target.
     */
    async resolve(namespaceId, traceId, spanId) {
      const [t] = await q("SELECT id, session_id FROM traces WHERE namespace_id = $1 AND otel_trace_id = $2 FOR KEY SHARE", [namespaceId, traceId]);
      if (!t) return undefined;
      if (spanId === undefined) return { kind: "trace", sessionUuid: t.session_id, traceUuid: t.id, spanRowId: null, otelTraceId: traceId, otelSpanId: null, key: `trace:${t.id}` };
      const [s] = await q("SELECT id FROM spans WHERE namespace_id = $1 AND trace_id = $2 AND otel_span_id = $3 FOR KEY SHARE", [namespaceId, t.id, spanId]);
      return s ? { kind: "span", sessionUuid: t.session_id, traceUuid: t.id, spanRowId: String(s.id), otelTraceId: traceId, otelSpanId: spanId, key: `span:${s.id}` } : undefined;
    },

    /** Inserts, or with an identifier upserts, an annotation (call inside a transaction); counts new ones on the session. */
    async annotate(namespaceId, target, v) {
      // The target's OpenTelemetry ids come from resolve(), not a join: one statement on one shard.
      const params = [namespaceId, target.sessionUuid, target.traceUuid, target.spanRowId, target.kind, target.key, v.name, v.annotatorKind, v.label, v.score, v.explanation, v.metadata, v.identifier, target.otelTraceId, target.otelSpanId];
      const [row] = await q(
        `INSERT INTO annotations AS a (namespace_id, session_id, trace_id, span_id, target_kind, target_key, name, annotator_kind, label, score, explanation, metadata, identifier)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (namespace_id, target_key, name, identifier) WHERE identifier <> ''
         DO UPDATE SET annotator_kind = EXCLUDED.annotator_kind, label = EXCLUDED.label, score = EXCLUDED.score,
           explanation = EXCLUDED.explanation, metadata = EXCLUDED.metadata, update_time = EXCLUDED.update_time
         RETURNING a.*, (xmax = 0) AS created, $14::text AS trace_otel_id, $15::text AS otel_span_id`,
        params,
      );
      // A new annotation is counted on the session; a new or changed one is activity there.
      if (target.sessionUuid) {
        await q("UPDATE sessions SET annotation_count = annotation_count + $3, last_activity_time = now() WHERE namespace_id = $1 AND id = $2", [namespaceId, target.sessionUuid, row.created ? 1 : 0]);
      }
      return { annotation: toAnnotation(row), created: row.created };
    },

    /** One page of a target's annotations, newest first. */
    async annotations(namespaceId, key, after, limit) {
      const params: unknown[] = [namespaceId, key];
      let where = "a.namespace_id = $1 AND a.target_key = $2";
      if (after) {
        params.push(after.createTime, after.uuid);
        where += ` AND (a.create_time, a.id) < ($3, $4)`;
      }
      params.push(limit);
      const rows = await q(
        `SELECT a.*, t.otel_trace_id AS trace_otel_id, s.otel_span_id FROM annotations a
         LEFT JOIN traces t ON t.namespace_id = a.namespace_id AND t.id = a.trace_id
         LEFT JOIN spans s ON s.namespace_id = a.namespace_id AND s.id = a.span_id
         WHERE ${where} ORDER BY a.create_time DESC, a.id DESC LIMIT $${params.length}`,
        params,
      );
      return rows.map(toAnnotation);
    },
  };
  return store;
}
