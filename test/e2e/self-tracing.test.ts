/**
 * sessiond's own traces, received by a collector that is another sessiond (its OTLP endpoint, in the
 * same process: tracing installs nothing process-wide). A traced sessiond, started with the standard
 * OTEL_* variables pointing at the collector, is called over gRPC, Connect and gRPC-Web with a
 * `traceparent` of the test's own; the collector's TraceService then shows a SERVER span per call under
 * the caller's span, with the RPC attributes, the database spans under it, the REMOTE integrator call
 * as a CLIENT span whose context reached the integrator, and no secret, id or content anywhere.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorService } from "../../gen/sessiond/v1/integrator_service_pb.js";
import { IntegratorKind } from "../../gen/sessiond/v1/memory_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { SpanKind, StatusCode, type Span } from "../../gen/sessiond/v1/trace_pb.js";
import { GetTraceResponseSchema, TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { startApp, type App } from "../../src/app.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { summarize } from "../../src/telemetry/sql-summary.js";
import { bearer, codeOf, TEST_ADMIN_KEY } from "../setup/auth.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport, useServer } from "../setup/server.js";

const collector = useServer();
/** The collector's namespace for the traced sessiond's spans. */
const NS = "sessiond-self";
/** What the traced sessiond's callers send: none of it may appear in a span. */
const TENANT = "tenant-zq7x";
const SESSION_ID = "chat-secret-id-81c4";
const USER = "user-secret-5fd2";
const CONTENT = "my card number is 4111 1111 1111 1111, keep it private";
const WRONG_KEY = "sk_wrong-key-never-valid-0123456789abcdef";
let writerSecret = "";

/** What to stop after the file, last started first (before the collector stops: hooks run in reverse). */
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A sessiond on a database of its own, started with `env` (the OTEL_* variables); stopped after the file. */
async function startTraced(env: Record<string, string>): Promise<{ app: App; url: string; logs: string[] }> {
  const db: TestDatabase = await createTestDatabase(inject("database"));
  const logs: string[] = [];
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: db.url, LOG_LEVEL: "info", SESSIOND_SHUTDOWN_GRACE_MS: "3000", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY, ...env });
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const app = await startApp(config, createLogger(config.logLevel, sink));
  cleanups.push(async () => {
    await app.stop();
    await db.close();
  });
  return { app, url: `http://127.0.0.1:${app.port}`, logs };
}

/** The standard variables that point a sessiond at the collector. */
function otelEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${writerSecret},sessiond-namespace=${NS}`,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    ...extra,
  };
}

/** A caller's span: a fresh trace id and span id, and the `traceparent` (sampled) that carries them. */
function callerSpan() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  const traceparent: Interceptor = (next) => (req) => {
    req.header.set("traceparent", `00-${traceId}-${spanId}-01`);
    return next(req);
  };
  return { traceId, spanId, traceparent };
}

/** The spans the collector holds for `traceId`, once `ready` accepts them (polled: export is batched). */
async function spansOf(traceId: string, ready: (spans: Span[]) => boolean = (s) => s.length > 0): Promise<Span[]> {
  const traces = createClient(TraceService, grpcTransport(collector.url));
  let last: Span[] = [];
  for (const started = Date.now(); Date.now() - started < 60_000; await new Promise((r) => setTimeout(r, 50))) {
    const got = await traces.getTrace({ namespace: NS, traceId }).catch(() => undefined);
    last = got?.spans.map((s) => s.span!) ?? [];
    if (ready(last)) return last;
  }
  throw new Error(`trace ${traceId} did not arrive as expected; it holds ${JSON.stringify(last.map((s) => s.name))}`);
}

const serverSpan = (spans: Span[], name: string) => spans.find((s) => s.kind === SpanKind.SERVER && s.name === name);
/**
 * The SERVER span `name` of `traceId`, once it has arrived. A call's database spans end before it does and
 * may be exported in an earlier batch, so "some span arrived" does not mean the SERVER span has.
 */
const serverSpanOf = async (traceId: string, name: string) => serverSpan(await spansOf(traceId, (s) => !!serverSpan(s, name)), name)!;
const attrs = (s: Span | undefined) => (s?.attributes ?? {}) as Record<string, unknown>;

beforeAll(async () => {
  const admin = createClient(AdminService, grpcTransport(collector.url));
  await admin.createNamespace({ name: NS });
  ({ secret: writerSecret } = await admin.createApiKey({ displayName: "traced sessiond", role: Role.WRITER, namespace: NS }));
});

describe("a sessiond with OTEL_EXPORTER_OTLP_ENDPOINT (http/protobuf)", () => {
  let traced: { app: App; url: string; logs: string[] };
  const remote = { server: undefined as http.Server | undefined, url: "", traceparents: [] as string[] };
  beforeAll(async () => {
    traced = await startTraced(otelEnv({ OTEL_SERVICE_NAME: "sessiond-under-test" }));
    // A team's IntegratorService, recording the trace context it receives.
    remote.server = http.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(IntegratorService, {
            integrate: (_req, context) => {
              remote.traceparents.push(context.requestHeader.get("traceparent") ?? "");
              return { insights: [], memories: [] };
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => remote.server!.listen(0, "127.0.0.1", resolve));
    remote.url = `http://127.0.0.1:${(remote.server!.address() as AddressInfo).port}`;
    cleanups.push(() => new Promise<void>((resolve) => remote.server!.close(() => resolve())));
  });

  const as = (transport: (baseUrl: string, interceptors: Interceptor[]) => Transport, caller: Interceptor, secret = TEST_ADMIN_KEY) =>
    createClient(SessionService, transport(traced.url, [bearer(secret), caller]));
  const grpc = (baseUrl: string, interceptors: Interceptor[]) => createGrpcTransport({ baseUrl, interceptors });
  const connect = (baseUrl: string, interceptors: Interceptor[]) => createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
  const grpcWeb = (baseUrl: string, interceptors: Interceptor[]) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });

  it("sends a SERVER span per call (gRPC, Connect, gRPC-Web) under the caller's span, with its database spans inside", async () => {
    const created = callerSpan();
    await as(grpc, created.traceparent).createSession({ namespace: TENANT, sessionId: SESSION_ID, user: USER, data: { note: CONTENT } });
    const read = callerSpan();
    await as(connect, read.traceparent).getSession({ namespace: TENANT, sessionId: SESSION_ID });
    const missing = callerSpan();
    expect(await codeOf(as(grpcWeb, missing.traceparent).getSession({ namespace: TENANT, sessionId: "never-existed" }))).toBe(Code.NotFound);

    const spans = await spansOf(created.traceId, (s) => !!serverSpan(s, "sessiond.v1.SessionService/CreateSession") && s.length > 1);
    const server = serverSpan(spans, "sessiond.v1.SessionService/CreateSession")!;
    expect(server).toMatchObject({ traceId: created.traceId, parentSpanId: created.spanId, statusCode: StatusCode.UNSPECIFIED });
    expect(attrs(server)).toEqual({ "rpc.system.name": "grpc", "rpc.method": "sessiond.v1.SessionService/CreateSession", "rpc.status_code": "OK" });
    // The database work of the call, as CLIENT spans under it, named by statement summary.
    const db = spans.filter((s) => s.parentSpanId === server.spanId);
    expect(db.length).toBeGreaterThan(0);
    for (const s of db) {
      expect(s.kind).toBe(SpanKind.CLIENT);
      expect(attrs(s)).toMatchObject({ "db.system.name": "postgresql", "db.namespace": expect.any(String), "server.address": expect.any(String) });
      expect(s.name).toBe(attrs(s)["db.query.summary"]);
    }
    // The insert is `WITH s AS (INSERT INTO sessions ...), e AS (INSERT INTO session_changes ... FROM s)
    // SELECT ... FROM s JOIN namespaces ...` (the session and its CREATED change, one statement).
    expect(db.map((s) => s.name)).toContain("INSERT sessions INSERT session_changes SELECT s SELECT s namespaces");

    const got = await serverSpanOf(read.traceId, "sessiond.v1.SessionService/GetSession");
    expect(got).toMatchObject({ traceId: read.traceId, parentSpanId: read.spanId, statusCode: StatusCode.UNSPECIFIED });
    // Connect has no code for success.
    expect(attrs(got)).toEqual({ "rpc.system.name": "connectrpc", "rpc.method": "sessiond.v1.SessionService/GetSession" });

    // A client's error is recorded with its code, and is not an error of the server.
    const notFound = await serverSpanOf(missing.traceId, "sessiond.v1.SessionService/GetSession");
    expect(notFound).toMatchObject({ parentSpanId: missing.spanId, statusCode: StatusCode.UNSPECIFIED });
    expect(attrs(notFound)).toEqual({ "rpc.system.name": "grpc", "rpc.method": "sessiond.v1.SessionService/GetSession", "rpc.status_code": "NOT_FOUND" });
  });

  it("gives a call refused by the credential check its span, with UNAUTHENTICATED", async () => {
    const refused = callerSpan();
    expect(await codeOf(as(grpc, refused.traceparent, WRONG_KEY).getSession({ namespace: TENANT, sessionId: SESSION_ID }))).toBe(Code.Unauthenticated);
    const span = await serverSpanOf(refused.traceId, "sessiond.v1.SessionService/GetSession");
    expect(span).toMatchObject({ parentSpanId: refused.spanId, statusCode: StatusCode.UNSPECIFIED });
    expect(attrs(span)).toMatchObject({ "rpc.system.name": "grpc", "rpc.status_code": "UNAUTHENTICATED" });
  });

  it("ends a server stream's span when the stream ends, with the stream's database spans inside it", async () => {
    await as(grpc, callerSpan().traceparent).createSession({ namespace: TENANT, sessionId: "to-delete" });
    const bulk = callerSpan();
    const messages = [];
    for await (const m of as(grpc, bulk.traceparent).bulkDeleteSessions({ namespace: TENANT, selector: { case: "sessionIds", value: { values: ["to-delete"] } } })) messages.push(m);
    expect(messages.length).toBeGreaterThan(0);
    // The batch is one call of sessiond_delete_sessions() (a SELECT), made while the stream is open.
    const isQuery = (x: Span) => attrs(x)["db.system.name"] === "postgresql";
    const spans = await spansOf(bulk.traceId, (s) => !!serverSpan(s, "sessiond.v1.SessionService/BulkDeleteSessions") && s.some(isQuery));
    const server = serverSpan(spans, "sessiond.v1.SessionService/BulkDeleteSessions")!;
    expect(attrs(server)).toMatchObject({ "rpc.status_code": "OK" });
    const queries = spans.filter(isQuery);
    expect(queries.length).toBeGreaterThan(0);
    expect(queries.every((s) => s.parentSpanId === server.spanId)).toBe(true);
  });

  it("traces the REMOTE integrator call as a CLIENT span and sends its context in traceparent", async () => {
    const memories = createClient(MemoryService, grpcTransport(traced.url));
    await memories.updateIntegratorConfig({ namespace: "integrated", config: { kind: IntegratorKind.REMOTE, url: remote.url } });
    const sessions = as(grpc, callerSpan().traceparent);
    const { session } = await sessions.createSession({ namespace: "integrated", sessionId: "s" });
    await sessions.bindParticipant({ id: session!.id, participantId: "bot", kind: ParticipantKind.AGENT });
    await sessions.appendTurns({ id: session!.id, turns: [{ participantId: "bot", content: CONTENT }] });
    const caller = callerSpan();
    remote.traceparents = [];
    await as(grpc, caller.traceparent).integrateSession({ id: session!.id });

    const spans = await spansOf(caller.traceId, (s) => !!serverSpan(s, "sessiond.v1.SessionService/IntegrateSession"));
    const server = serverSpan(spans, "sessiond.v1.SessionService/IntegrateSession")!;
    const client = spans.find((s) => s.name === "sessiond.v1.IntegratorService/Integrate")!;
    expect(client).toMatchObject({ kind: SpanKind.CLIENT, parentSpanId: server.spanId, statusCode: StatusCode.UNSPECIFIED });
    expect(attrs(client)).toEqual({
      "rpc.system.name": "connectrpc",
      "rpc.method": "sessiond.v1.IntegratorService/Integrate",
      "server.address": "127.0.0.1",
      "server.port": Number(new URL(remote.url).port),
    });
    expect(remote.traceparents).toEqual([`00-${caller.traceId}-${client.spanId}-01`]);
  });

  it("records no secret, id, namespace or content in any span", async () => {
    // Everything the collector holds of the traced sessiond, read once every test above has exported.
    const traces = createClient(TraceService, grpcTransport(collector.url));
    const { traces: all } = await traces.listTraces({ namespace: NS, withoutSession: true, pageSize: 1000 });
    expect(all.length).toBeGreaterThanOrEqual(5);
    let dump = "";
    for (const t of all) dump += toJsonString(GetTraceResponseSchema, await traces.getTrace({ namespace: NS, traceId: t.traceId }));
    const { session } = await as(grpc, callerSpan().traceparent).getSession({ namespace: TENANT, sessionId: SESSION_ID });
    for (const secret of [TEST_ADMIN_KEY, WRONG_KEY, writerSecret, TENANT, SESSION_ID, USER, CONTENT, session!.id, "integrated"]) expect(dump).not.toContain(secret);
    expect(dump).toContain("sessiond.v1.SessionService/CreateSession");
    // Export failures would be logged; none happened.
    expect(traced.logs.join("")).not.toContain("exporting sessiond's traces failed");
  });
});

describe("a sessiond exporting over OTLP/gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc)", () => {
  it("sends its spans to the gRPC endpoint with the headers as metadata", async () => {
    const traced = await startTraced(otelEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }));
    const caller = callerSpan();
    await createClient(SessionService, createGrpcTransport({ baseUrl: traced.url, interceptors: [bearer(TEST_ADMIN_KEY), caller.traceparent] })).createSession({ namespace: TENANT, sessionId: "over-grpc" });
    const span = await serverSpanOf(caller.traceId, "sessiond.v1.SessionService/CreateSession");
    expect(span).toMatchObject({ parentSpanId: caller.spanId });
  });
});

describe("a receiver that refuses the spans", () => {
  it("logs that exports fail, once, with the endpoint and never the headers", async () => {
    const traced = await startTraced(otelEnv({ OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${WRONG_KEY},sessiond-namespace=${NS}` }));
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: traced.url, interceptors: [bearer(TEST_ADMIN_KEY)] }));
    await client.createSession({ namespace: TENANT, sessionId: "refused-1" });
    const failures = () => traced.logs.filter((l) => l.includes("exporting sessiond's traces failed"));
    for (const started = Date.now(); failures().length === 0 && Date.now() - started < 60_000; ) await new Promise((r) => setTimeout(r, 50));
    // The receiver refuses a second export (its own log counts the refusals) before the count is read.
    const refusals = () => collector.logs.join("").split("\n").filter((l) => l.includes('"rpc rejected"') && l.includes("TraceService/Export")).length;
    const before = refusals();
    await client.createSession({ namespace: TENANT, sessionId: "refused-2" });
    for (const started = Date.now(); refusals() === before && Date.now() - started < 60_000; ) await new Promise((r) => setTimeout(r, 50));
    expect(refusals()).toBeGreaterThan(before);
    expect(failures()).toHaveLength(1);
    expect(JSON.parse(failures()[0])).toMatchObject({ level: 40, endpoint: `${collector.url}/v1/traces`, protocol: "http/protobuf" });
    expect(traced.logs.join("")).not.toContain(WRONG_KEY);
  });
});

describe("tracing off", () => {
  it("is off without an endpoint, and with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none", () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: "a=b", OTEL_SERVICE_NAME: "x" }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_TRACES_EXPORTER: "none" }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }).tracing).toMatchObject({ url: "http://collector:4318/v1/traces" });
  });

  it("exports nothing when disabled, though an endpoint is set", async () => {
    const off = await startTraced(otelEnv({ OTEL_SDK_DISABLED: "true" }));
    const on = await startTraced(otelEnv());
    const untraced = callerSpan();
    await createClient(SessionService, createGrpcTransport({ baseUrl: off.url, interceptors: [bearer(TEST_ADMIN_KEY), untraced.traceparent] })).createSession({ namespace: TENANT, sessionId: "off" });
    // A traced call made afterwards has arrived: had the first been exported, it would be there too.
    const traced = callerSpan();
    await createClient(SessionService, createGrpcTransport({ baseUrl: on.url, interceptors: [bearer(TEST_ADMIN_KEY), traced.traceparent] })).createSession({ namespace: TENANT, sessionId: "on" });
    await spansOf(traced.traceId);
    const traces = createClient(TraceService, grpcTransport(collector.url));
    expect(await codeOf(traces.getTrace({ namespace: NS, traceId: untraced.traceId }))).toBe(Code.NotFound);
  });
});

describe("tracing settings", () => {
  const config = (env: Record<string, string>) => () => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", ...env });

  it("follow the specification's defaults and precedence", () => {
    expect(config({})().tracing).toEqual({
      protocol: "http/protobuf",
      url: "http://collector:4318/v1/traces",
      headers: {},
      timeoutMs: 10_000,
      compression: "none",
      serviceName: "sessiond",
      resourceAttributes: {},
      sampler: "parentbased_always_on",
      samplerRatio: 1,
      batch: { scheduledDelayMs: 5000, exportTimeoutMs: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 },
    });
    expect(
      config({
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20k,x-a=1",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-a=2",
        OTEL_RESOURCE_ATTRIBUTES: "service.name=from-resource,deployment.environment.name=prod",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
      })().tracing,
    ).toMatchObject({
      protocol: "grpc",
      url: "http://collector:4318",
      headers: { authorization: "Bearer k", "x-a": "2" },
      serviceName: "from-resource",
      resourceAttributes: { "deployment.environment.name": "prod" },
      sampler: "parentbased_traceidratio",
      samplerRatio: 0.25,
    });
    expect(config({ OTEL_SERVICE_NAME: "svc", OTEL_RESOURCE_ATTRIBUTES: "service.name=other" })().tracing?.serviceName).toBe("svc");
  });

  it("refuse what cannot work, naming the variable and never echoing a header", () => {
    expect(config({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toThrow(ConfigError);
    expect(config({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toThrow(/^OTEL_EXPORTER_OTLP_PROTOCOL: expected http\/protobuf or grpc, got "http\/json"/);
    expect(config({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "thrift" })).toThrow(/^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: /);
    expect(config({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(/^OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/);
    expect(config({ OTEL_TRACES_EXPORTER: "zipkin" })).toThrow(/^OTEL_TRACES_EXPORTER: /);
    expect(config({ OTEL_BSP_SCHEDULE_DELAY: "soon" })).toThrow(/^OTEL_BSP_SCHEDULE_DELAY: /);
    expect(config({ OTEL_BSP_MAX_QUEUE_SIZE: "10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "20" })).toThrow(/^OTEL_BSP_MAX_EXPORT_BATCH_SIZE: /);
    expect(config({ OTEL_TRACES_SAMPLER_ARG: "2", OTEL_TRACES_SAMPLER: "traceidratio" })).toThrow(/^OTEL_TRACES_SAMPLER_ARG: /);
    const secret = "Bearer sk_live_do-not-print";
    for (const headers of [`authorization${secret}`, `authorization=${secret}%0A`, `authorization=%E0${secret}`]) {
      let message = "";
      try {
        config({ OTEL_EXPORTER_OTLP_HEADERS: headers })();
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^OTEL_EXPORTER_OTLP_HEADERS: entry 1 /);
      expect(message).not.toContain("sk_live");
    }
  });
});

describe("db.query.summary", () => {
  it("keeps operations and tables, never literals, parameters or columns", () => {
    expect(summarize(`SELECT "S"."id" AS "S_id" FROM "sessions" "S" LEFT JOIN "participants" "p" ON "p"."session_id" = "S"."id" WHERE "S"."user" = 'alice'`)).toBe("SELECT sessions participants");
    expect(summarize(`INSERT INTO "turns"("namespace_id", "content") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "content" = 'x' RETURNING "id"`)).toBe("INSERT turns");
    expect(summarize("WITH d AS (DELETE FROM memories WHERE id = ANY($1::uuid[]) RETURNING id) SELECT count(*) FROM d")).toBe("DELETE memories SELECT d");
    expect(summarize("SELECT id FROM sessions WHERE namespace_id = $1 FOR NO KEY UPDATE")).toBe("SELECT sessions");
    expect(summarize("SELECT * FROM unnest($1::uuid[]) u JOIN public.sessions s ON s.id = u.id")).toBe("SELECT public.sessions");
    expect(summarize("SELECT a FROM x, y AS z WHERE $$FROM secret$$ = 'FROM it''s' -- FROM comment")).toBe("SELECT x y");
    expect(summarize("START TRANSACTION")).toBe("START");
    expect(summarize("select sessiond_append_turns($1)")).toBe("select");
  });
});
