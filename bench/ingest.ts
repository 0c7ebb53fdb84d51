/**
 * bench:ingest — spans/s written by RecordSpans over gRPC/HTTP2 from 8 concurrent clients (a transport,
 * hence an HTTP/2 connection, each), each recording into a session of its own (made by CreateSession).
 * A call carries 500 spans: 5 traces of 100 (an "agent.run" root and children such as "llm.call" and
 * "tool.search", some nested, 3-6 small attributes each, status OK, an event on every tenth), with fresh
 * random trace and span ids on every call.
 *
 * The floor: the same 8 writers each doing ONE statement per call through a pg.Pool of the service's pool
 * size (10): a data-modifying CTE inserting the call's 5 traces (uuids made by the client) in one multi-row
 * INSERT, then the 500 spans in one multi-row INSERT into spans. Rows go as unnest arrays, one parameter a
 * column (15 in all), like the service does: a 500-row `VALUES` list of 12 parameters a row (6,020, under
 * Postgres's 65,535) measured ~16% fewer spans/s here, Postgres spending ~52 instead of ~33 us of CPU a span.
 * No transaction block, no ON CONFLICT, no counters or trace summaries, no validation, no protobuf.
 * Rounds alternate between the contenders after a warm-up; medians are compared. Target: ratio >= 0.5.
 *
 * The load generator (gRPC clients and baseline pg pool alike) runs in a worker thread, so the main
 * thread is the server alone, as it would be in production where clients are other machines.
 *
 * For scale, a third contender: a bare connect-node server (plain HTTP/2 port, no interceptors, no
 * validation) whose RecordSpans handler runs the baseline statement. It shows what gRPC itself costs on
 * this machine; RESULT reports the service against it as `vs_bare_grpc`.
 *
 * CPU: the main thread's own CPU time (process.threadCpuUsage) over each service and bare round, which
 * the worker marks (harness.ts cpuRound), divided by the round's spans: `cpu_us_per_row` (and per call of
 * 500 spans, `cpu_us_per_call`; the bare server's as `bare_cpu_*`). Target (issue 16): cpu_ratio <= 1.25
 * and vs_bare_grpc >= 0.85.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import pg from "pg";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { SpanKind, StatusCode } from "../gen/sessiond/v1/trace_pb.js";
import { TraceService } from "../gen/sessiond/v1/trace_service_pb.js";
import { decodeSessionId } from "../src/domain/ids.js";
import { cpuRound, grpcTransport, load, loadCounted, serveForWorker } from "./harness.js";

const CLIENTS = 8;
const TRACES = 5;
const PER_TRACE = 100;
const SPANS = TRACES * PER_TRACE;
const POOL = 10;
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NS = "bench";

/** A span as the generator makes it and the baseline stores it. */
type Row = { traceId: string; spanId: string; parent: string; name: string; kind: number; start: Date; end: Date; attributes: JsonObject; events: { name: string; time: Date; attributes: JsonObject }[] };

// The baseline statement: the call's traces and spans as unnest arrays (15 parameters), like the service.
const INSERT = `WITH t AS (INSERT INTO traces (id, namespace_id, session_id, otel_trace_id) SELECT u.id, $1, $2, u.otel FROM unnest($3::uuid[], $4::text[]) AS u(id, otel))
  INSERT INTO spans (namespace_id, trace_id, otel_span_id, otel_parent_span_id, name, kind, start_time, end_time, status_code, status_message, attributes, events)
  SELECT $1, x.* FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::smallint[], $10::timestamptz[], $11::timestamptz[], $12::smallint[], $13::text[], $14::jsonb[], $15::jsonb[]) AS x`;

/** Runs the baseline statement for one call's spans. */
function baselineInsert(pool: pg.Pool, namespaceId: string, sessionUuid: string, spans: Row[]) {
  const trace = new Map<string, string>();
  for (const s of spans) if (!trace.has(s.traceId)) trace.set(s.traceId, randomUUID());
  const col = (f: (s: Row) => unknown) => spans.map(f);
  return pool.query(INSERT, [namespaceId, sessionUuid, [...trace.values()], [...trace.keys()], col((s) => trace.get(s.traceId)), col((s) => s.spanId), col((s) => s.parent || null), col((s) => s.name), col((s) => s.kind),
    col((s) => s.start), col((s) => s.end), col(() => StatusCode.OK), col(() => ""), col((s) => JSON.stringify(s.attributes)), col((s) => JSON.stringify(s.events))]);
}

/** The bare gRPC contender: RecordSpans as the baseline statement, namespaces of sessions cached. */
function bareRoutes(pool: pg.Pool) {
  const namespaceOf = new Map<string, string>();
  return (router: ConnectRouter) =>
    router.service(TraceService, {
      async recordSpans(req) {
        const uuid = decodeSessionId(req.session).uuid;
        if (!namespaceOf.has(uuid)) namespaceOf.set(uuid, (await pool.query("SELECT namespace_id FROM sessions WHERE id = $1", [uuid])).rows[0].namespace_id);
        const rows = req.spans.map((s): Row => ({ traceId: s.traceId, spanId: s.spanId, parent: s.parentSpanId, name: s.name, kind: s.kind, start: timestampDate(s.startTime!), end: timestampDate(s.endTime!),
          attributes: s.attributes ?? {}, events: s.events.map((e) => ({ name: e.name, time: timestampDate(e.time!), attributes: e.attributes ?? {} })) }));
        await baselineInsert(pool, namespaceOf.get(uuid)!, uuid, rows);
        return { spansRecorded: rows.length, tracesCreated: TRACES };
      },
    });
}

if (isMainThread) {
  const { service: s, baseline: b, bare: g, cpuUsPerCall: cpu, bareCpuUsPerCall: bareCpu } = await serveForWorker(new URL(import.meta.url), POOL, bareRoutes);
  console.log(
    `RESULT ingest ratio=${(s / b).toFixed(3)} service_sps=${s.toFixed(0)} baseline_sps=${b.toFixed(0)} bare_grpc_sps=${g.toFixed(0)} vs_bare_grpc=${(s / g).toFixed(3)}` +
      ` cpu_us_per_row=${(cpu / SPANS).toFixed(1)} bare_cpu_us_per_row=${(bareCpu / SPANS).toFixed(1)} cpu_us_per_call=${cpu.toFixed(0)} bare_cpu_us_per_call=${bareCpu.toFixed(0)} cpu_ratio=${(cpu / bareCpu).toFixed(3)}`,
  );
  process.exit(0);
}

// The load generator.
const { url, bareUrl, dbUrl } = workerData as { url: string; bareUrl: string; dbUrl: string };
const clients = Array.from({ length: CLIENTS }, () => createClient(TraceService, grpcTransport(url)));
const bareClients = Array.from({ length: CLIENTS }, () => createClient(TraceService, grpcTransport(bareUrl)));
const sessionClient = createClient(SessionService, grpcTransport(url));
const pool = new pg.Pool({ connectionString: dbUrl, max: POOL });

const CHILDREN = ["llm.call", "tool.search", "retriever.query", "llm.call", "tool.http_get", "embedding.create", "tool.code_exec", "memory.lookup"];
const MODELS = ["gpt-x", "gpt-x-mini", "gpt-x-large"];

/** One call's spans: TRACES traces of PER_TRACE spans, fresh random ids. */
function batch(call: number, sessionRef: string): Row[] {
  const hex = randomBytes(TRACES * (16 + PER_TRACE * 8)).toString("hex");
  let at = 0;
  const take = (n: number) => hex.slice(at, (at += n));
  const t0 = Date.now() - 60_000;
  const rows: Row[] = [];
  for (let t = 0; t < TRACES; t++) {
    const traceId = take(32);
    const root = take(16);
    let previous = root;
    for (let k = 0; k < PER_TRACE; k++) {
      const spanId = k === 0 ? root : take(16);
      const name = k === 0 ? "agent.run" : CHILDREN[(call + k) % CHILDREN.length];
      const start = new Date(t0 + t * 1000 + k * 9);
      const n = call * SPANS + t * PER_TRACE + k;
      const attributes: JsonObject =
        k === 0
          ? { "session.id": sessionRef, "agent.name": "support-bot", "agent.version": "1.4.2" }
          : name === "llm.call"
            ? { "llm.model": MODELS[n % 3], "llm.tokens.prompt": 100 + (n % 900), "llm.tokens.completion": 20 + (n % 300), "llm.temperature": 0.2, "session.id": sessionRef }
            : { "tool.name": name.slice(name.indexOf(".") + 1), "tool.query": `order status #${100000 + (n % 899999)}`, "tool.results": n % 7, "session.id": sessionRef };
      const events = k % 10 === 5 ? [{ name: name === "llm.call" ? "llm.first_token" : "tool.result", time: new Date(start.getTime() + 3), attributes: { "latency_ms": 3 } }] : [];
      const kind = k === 0 ? SpanKind.SERVER : name === "llm.call" ? SpanKind.CLIENT : SpanKind.INTERNAL;
      rows.push({ traceId, spanId, parent: k === 0 ? "" : k % 4 === 3 ? previous : root, name, kind, start, end: new Date(start.getTime() + (k === 0 ? 999 : 8)), attributes, events });
      previous = spanId;
    }
  }
  return rows;
}
const toProto = (s: Row) => ({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parent, name: s.name, kind: s.kind, startTime: timestampFromDate(s.start), endTime: timestampFromDate(s.end),
  statusCode: StatusCode.OK, attributes: s.attributes, events: s.events.map((e) => ({ name: e.name, time: timestampFromDate(e.time), attributes: e.attributes })) });

/** Creates CLIENTS sessions through CreateSession; returns their global ids, uuids and namespace. */
async function sessions(prefix: string) {
  return Promise.all(
    Array.from({ length: CLIENTS }, async (_, w) => {
      const { session } = await sessionClient.createSession({ namespace: NS, sessionId: `${prefix}-${w}` });
      const uuid = decodeSessionId(session!.id).uuid;
      const { rows } = await pool.query("SELECT namespace_id FROM sessions WHERE id = $1", [uuid]);
      return { id: session!.id, uuid, namespaceId: rows[0].namespace_id as string };
    }),
  );
}
const [svc, raw, bareSessions] = [await sessions("svc"), await sessions("raw"), await sessions("bare")];

let serviceCalls = 0;
const serviceCall = async (i: number) => {
  const s = svc[i % CLIENTS];
  const res = await clients[i % CLIENTS].recordSpans({ namespace: NS, session: s.id, spans: batch(i, s.id).map(toProto) });
  if (res.spansRecorded !== SPANS || res.tracesCreated !== TRACES) throw new Error(`RecordSpans recorded ${res.spansRecorded} spans, ${res.tracesCreated} traces`);
  serviceCalls++;
};
const baselineCall = async (i: number) => {
  const s = raw[i % CLIENTS];
  await baselineInsert(pool, s.namespaceId, s.uuid, batch(i, s.id));
};
const bareCall = async (i: number) => {
  const s = bareSessions[i % CLIENTS];
  const res = await bareClients[i % CLIENTS].recordSpans({ namespace: NS, session: s.id, spans: batch(i, s.id).map(toProto) });
  if (res.spansRecorded !== SPANS) throw new Error(`bare RecordSpans recorded ${res.spansRecorded} spans`);
};

// Warm up every path (connections, JIT, plans), then alternate rounds.
for (const call of [serviceCall, baselineCall, bareCall]) await load(CLIENTS, 1500, call);
const [service, baseline, bare]: number[][] = [[], [], []];
for (let round = 0; round < ROUNDS; round++) {
  service.push((await cpuRound("service", () => loadCounted(CLIENTS, ROUND_MS, serviceCall))) * SPANS);
  baseline.push((await load(CLIENTS, ROUND_MS, baselineCall)) * SPANS);
  bare.push((await cpuRound("bare", () => loadCounted(CLIENTS, ROUND_MS, bareCall))) * SPANS);
  console.log(`round ${round + 1}: service ${service.at(-1)!.toFixed(0)} spans/s, baseline ${baseline.at(-1)!.toFixed(0)} spans/s, bare gRPC ${bare.at(-1)!.toFixed(0)} spans/s`);
}

// The service really stored what it acknowledged, and counted it on the sessions.
const [stored] = (
  await pool.query(
    `SELECT (SELECT count(*) FROM spans WHERE trace_id IN (SELECT id FROM traces WHERE session_id = ANY($1)))::int AS spans,
            (SELECT sum(span_count) FROM sessions WHERE id = ANY($1))::int AS counted`,
    [svc.map((s) => s.uuid)],
  )
).rows;
if (stored.spans !== serviceCalls * SPANS || stored.counted !== serviceCalls * SPANS) {
  throw new Error(`service acknowledged ${serviceCalls * SPANS} spans but stored ${stored.spans} (session counters say ${stored.counted})`);
}
console.log(`verified: ${serviceCalls} RecordSpans calls, ${stored.spans} spans stored in the service sessions' traces`);

await pool.end();
parentPort!.postMessage({ service, baseline, bare });
