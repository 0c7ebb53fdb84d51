/**
 * OTLP trace ingestion end to end: the real OpenTelemetry JS SDK exporting over OTLP/gRPC and
 * OTLP/HTTP (protobuf), hand-written OTLP/JSON and gzipped protobuf bodies, the collector's gRPC
 * TraceService/Export called directly, and bad input of every kind. Spans are read back through
 * TraceService and SessionService, and rows are counted in the database.
 */
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { Metadata } from "@grpc/grpc-js";
import { context, SpanKind as OtelSpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter as OtlpGrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as OtlpProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  ExportTraceServiceRequestSchema,
  ExportTraceServiceResponseSchema,
  TraceService as OtlpTraceService,
} from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { KeyValueSchema } from "../../gen/opentelemetry/proto/common/v1/common_pb.js";
import { Span_SpanKind, Status_StatusCode, type SpanSchema as OtlpSpanSchema } from "../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { SessionState } from "../../gen/sessiond/v1/session_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { SpanKind, StatusCode } from "../../gen/sessiond/v1/trace_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer();

const NS_HEADER = "sessiond-namespace";
const EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const T0 = Date.parse("2025-03-01T12:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms);
const ts = (ms: number) => timestampFromDate(at(ms));
const nanos = (ms: number) => BigInt(T0 + ms) * 1_000_000n;
const traceHex = () => randomBytes(16).toString("hex");
const spanHex = () => randomBytes(8).toString("hex");
const hexBytes = (hex: string) => new Uint8Array(Buffer.from(hex, "hex"));

const clients = () => {
  const transport = transports(ctx.url)["grpc/http2"];
  return { traces: createClient(TraceService, transport), sessions: createClient(SessionService, transport) };
};

/** Rows of a namespace, straight from the tables (and the counters kept beside them). */
async function rows(ns: string): Promise<{ traces: number; spans: number; sessions: number; traceSpanCounters: number; sessionSpanCounters: number; sessionTraceCounters: number }> {
  const [r] = await ctx.db.sql(
    `SELECT (SELECT count(*)::int FROM traces t JOIN namespaces n ON n.id = t.namespace_id WHERE n.name = $1) AS traces,
            (SELECT count(*)::int FROM spans s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1) AS spans,
            (SELECT count(*)::int FROM sessions x JOIN namespaces n ON n.id = x.namespace_id WHERE n.name = $1) AS sessions,
            (SELECT coalesce(sum(t.span_count), 0)::int FROM traces t JOIN namespaces n ON n.id = t.namespace_id WHERE n.name = $1) AS "traceSpanCounters",
            (SELECT coalesce(sum(x.span_count), 0)::int FROM sessions x JOIN namespaces n ON n.id = x.namespace_id WHERE n.name = $1) AS "sessionSpanCounters",
            (SELECT coalesce(sum(x.trace_count), 0)::int FROM sessions x JOIN namespaces n ON n.id = x.namespace_id WHERE n.name = $1) AS "sessionTraceCounters"`,
    [ns],
  );
  return r;
}

// ---------------------------------------------------------------------------------------------------
// The OpenTelemetry SDK side.

type ExporterKind = "grpc" | "http/protobuf";

/** An OTLP exporter of `kind` pointed at the server; `ns` goes in the sessiond-namespace header (none when undefined). */
function otlpExporter(kind: ExporterKind, ns: string | undefined): SpanExporter {
  if (kind === "grpc") {
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${TEST_ADMIN_KEY}`);
    if (ns !== undefined) metadata.set(NS_HEADER, ns);
    return new OtlpGrpcExporter({ url: ctx.url, metadata, timeoutMillis: 10_000 });
  }
  return new OtlpProtoExporter({ url: `${ctx.url}/v1/traces`, headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...(ns === undefined ? {} : { [NS_HEADER]: ns }) }, timeoutMillis: 10_000 });
}

/** Runs `build` with a tracer of a fresh SDK provider and returns the finished spans (ReadableSpans). */
async function finishedSpans(build: (tracer: Tracer) => void, resource?: Resource): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)], ...(resource ? { resource } : {}) });
  build(provider.getTracer("sessiond-otlp-e2e", "1.0.0"));
  await provider.forceFlush();
  const spans = memory.getFinishedSpans();
  await provider.shutdown();
  return spans;
}

/** exporter.export as a promise of its result. */
const exportWith = (exporter: SpanExporter, spans: ReadableSpan[]) => new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));

/** Asserts an export succeeded, showing the exporter's error when it did not. */
function expectSuccess(result: ExportResult) {
  expect(result.error?.message).toBeUndefined();
  expect(result.code).toBe(ExportResultCode.SUCCESS);
}

/**
 * An agent run as an SDK would record it, every span with `session.id`:
 *   agent.run (SERVER, 0..100 ms)
 *     llm.plan (OK, 10..50)
 *       tool.search (CLIENT, ERROR "timeout", 20..40, event "retry" at 30)
 *     llm.answer (60..90)
 * and a second trace without session.id: cron.cleanup (200..300) > cron.sweep (210..220).
 */
function agentRun(tracer: Tracer, sessionId: string) {
  const sid = { "session.id": sessionId };
  const root = tracer.startSpan("agent.run", {
    kind: OtelSpanKind.SERVER,
    startTime: at(0),
    attributes: { ...sid, "user.tier": "gold", "llm.token_count": 42, "agent.streaming": true, "cost.usd": 0.25, tags: ["a", "b"] },
  });
  const rootCtx = trace.setSpan(context.active(), root);
  const plan = tracer.startSpan("llm.plan", { startTime: at(10), attributes: { ...sid, model: "m-1" } }, rootCtx);
  const tool = tracer.startSpan("tool.search", { kind: OtelSpanKind.CLIENT, startTime: at(20), attributes: { ...sid, query: "tea", hits: 0 } }, trace.setSpan(rootCtx, plan));
  tool.addEvent("retry", { attempt: 2 }, at(30));
  tool.setStatus({ code: SpanStatusCode.ERROR, message: "timeout" });
  tool.end(at(40));
  plan.setStatus({ code: SpanStatusCode.OK });
  plan.end(at(50));
  const answer = tracer.startSpan("llm.answer", { startTime: at(60), attributes: sid }, rootCtx);
  answer.end(at(90));
  root.end(at(100));

  const cron = tracer.startSpan("cron.cleanup", { startTime: at(200), attributes: { job: "cleanup" } });
  const sweep = tracer.startSpan("cron.sweep", { startTime: at(210) }, trace.setSpan(context.active(), cron));
  sweep.end(at(220));
  cron.end(at(300));

  const id = (s: { spanContext(): { spanId: string } }) => s.spanContext().spanId;
  return {
    traceId: root.spanContext().traceId,
    otherTraceId: cron.spanContext().traceId,
    ids: { root: id(root), plan: id(plan), tool: id(tool), answer: id(answer), cron: id(cron), sweep: id(sweep) },
  };
}

describe.each(["grpc", "http/protobuf"] as const)("the OpenTelemetry JS SDK exporting over OTLP %s", (kind) => {
  const tag = kind.replace(/[^a-z]/g, "");

  it("records a trace in the session named by session.id (created on the fly) as a tree, and a trace without session.id under no session", async () => {
    const ns = `otlp-sdk-${tag}-tree`;
    let run!: ReturnType<typeof agentRun>;
    const spans = await finishedSpans((tracer) => (run = agentRun(tracer, "chat-1")));
    expect(spans).toHaveLength(6);
    const { traces, sessions } = clients();
    await expect(sessions.getSession({ namespace: ns, sessionId: "chat-1" })).rejects.toMatchObject({ code: Code.NotFound });

    const exporter = otlpExporter(kind, ns);
    try {
      expectSuccess(await exportWith(exporter, spans));
    } finally {
      await exporter.shutdown();
    }

    const { session } = await sessions.getSession({ namespace: ns, sessionId: "chat-1" });
    expect(session).toMatchObject({ sessionId: "chat-1", namespace: ns, state: SessionState.ACTIVE, stats: { traceCount: 1, spanCount: 4 } });

    const listed = await traces.listTraces({ namespace: ns, sessionId: "chat-1" });
    expect(listed.traces).toHaveLength(1);
    expect(listed.traces[0]).toMatchObject({
      traceId: run.traceId,
      session: session!.id,
      rootSpanName: "agent.run",
      spanCount: 4,
      startTime: ts(0),
      duration: { seconds: 0n, nanos: 100_000_000 },
      statusCode: StatusCode.ERROR,
    });

    const got = await traces.getTrace({ namespace: ns, traceId: run.traceId });
    expect(got.trace).toMatchObject({ id: listed.traces[0].id, traceId: run.traceId, spanCount: 4 });
    expect(got.spans.map((s) => [s.span?.name, s.span?.spanId, s.span?.parentSpanId, s.depth])).toEqual([
      ["agent.run", run.ids.root, "", 0],
      ["llm.plan", run.ids.plan, run.ids.root, 1],
      ["tool.search", run.ids.tool, run.ids.plan, 2],
      ["llm.answer", run.ids.answer, run.ids.root, 1],
    ]);
    const [root, plan, tool, answer] = got.spans.map((s) => s.span!);
    expect(root).toMatchObject({ traceId: run.traceId, kind: SpanKind.SERVER, startTime: ts(0), endTime: ts(100), statusCode: StatusCode.UNSPECIFIED, events: [] });
    expect(root.attributes).toEqual({ "session.id": "chat-1", "user.tier": "gold", "llm.token_count": 42, "agent.streaming": true, "cost.usd": 0.25, tags: ["a", "b"] });
    expect(plan).toMatchObject({ kind: SpanKind.INTERNAL, statusCode: StatusCode.OK, attributes: { "session.id": "chat-1", model: "m-1" } });
    expect(tool).toMatchObject({
      kind: SpanKind.CLIENT,
      startTime: ts(20),
      endTime: ts(40),
      statusCode: StatusCode.ERROR,
      statusMessage: "timeout",
      attributes: { "session.id": "chat-1", query: "tea", hits: 0 },
      events: [expect.objectContaining({ name: "retry", time: ts(30), attributes: { attempt: 2 } })],
    });
    expect(answer).toMatchObject({ kind: SpanKind.INTERNAL, startTime: ts(60), endTime: ts(90), statusCode: StatusCode.UNSPECIFIED });

    const orphans = await traces.listTraces({ namespace: ns, withoutSession: true });
    expect(orphans.traces).toEqual([
      expect.objectContaining({ traceId: run.otherTraceId, session: "", rootSpanName: "cron.cleanup", spanCount: 2, startTime: ts(200), duration: expect.objectContaining({ seconds: 0n, nanos: 100_000_000 }) }),
    ]);
    const other = await traces.getTrace({ namespace: ns, traceId: run.otherTraceId });
    expect(other.spans.map((s) => [s.span?.spanId, s.depth])).toEqual([
      [run.ids.cron, 0],
      [run.ids.sweep, 1],
    ]);
    expect(other.spans[0].span?.attributes).toEqual({ job: "cleanup" });

    // Nothing leaked into the default namespace or elsewhere: exactly what was exported is stored.
    await expect(traces.getTrace({ namespace: "", traceId: run.traceId })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await rows(ns)).toEqual({ traces: 2, spans: 6, sessions: 1, traceSpanCounters: 6, sessionSpanCounters: 4, sessionTraceCounters: 1 });
  });

  it("completes a trace whose root arrives in a later export and stores nothing twice when the same spans are exported again", async () => {
    const ns = `otlp-sdk-${tag}-again`;
    let run!: ReturnType<typeof agentRun>;
    const spans = await finishedSpans((tracer) => (run = agentRun(tracer, "chat-2")));
    const sessionSpans = spans.filter((s) => s.spanContext().traceId === run.traceId);
    const children = sessionSpans.filter((s) => s.name !== "agent.run");
    expect(children).toHaveLength(3);
    const { traces, sessions } = clients();

    const exporter = otlpExporter(kind, ns);
    try {
      expectSuccess(await exportWith(exporter, children));
      const early = await traces.listTraces({ namespace: ns, sessionId: "chat-2" });
      expect(early.traces).toEqual([expect.objectContaining({ traceId: run.traceId, rootSpanName: "", spanCount: 3, startTime: ts(10), duration: expect.objectContaining({ seconds: 0n, nanos: 80_000_000 }) })]);
      // The parent has not arrived: llm.plan and llm.answer are roots for now.
      expect((await traces.getTrace({ namespace: ns, traceId: run.traceId })).spans.map((s) => [s.span?.name, s.depth])).toEqual([
        ["llm.plan", 0],
        ["tool.search", 1],
        ["llm.answer", 0],
      ]);

      expectSuccess(await exportWith(exporter, spans));
      const complete = await traces.listTraces({ namespace: ns, sessionId: "chat-2" });
      expect(complete.traces).toEqual([expect.objectContaining({ traceId: run.traceId, rootSpanName: "agent.run", spanCount: 4, startTime: ts(0), duration: expect.objectContaining({ seconds: 0n, nanos: 100_000_000 }) })]);
      expect((await traces.getTrace({ namespace: ns, traceId: run.traceId })).spans.map((s) => [s.span?.name, s.depth])).toEqual([
        ["agent.run", 0],
        ["llm.plan", 1],
        ["tool.search", 2],
        ["llm.answer", 1],
      ]);

      expectSuccess(await exportWith(exporter, spans));
      expectSuccess(await exportWith(exporter, spans));
    } finally {
      await exporter.shutdown();
    }
    const again = await traces.listTraces({ namespace: ns, sessionId: "chat-2" });
    expect(again.traces).toEqual([expect.objectContaining({ traceId: run.traceId, rootSpanName: "agent.run", spanCount: 4, statusCode: StatusCode.ERROR })]);
    expect((await traces.getTrace({ namespace: ns, traceId: run.traceId })).spans).toHaveLength(4);
    expect((await traces.listTraces({ namespace: ns, withoutSession: true })).traces).toEqual([expect.objectContaining({ traceId: run.otherTraceId, spanCount: 2 })]);
    const { session } = await sessions.getSession({ namespace: ns, sessionId: "chat-2" });
    expect(session?.stats).toMatchObject({ traceCount: 1, spanCount: 4 });
    expect(await rows(ns)).toEqual({ traces: 2, spans: 6, sessions: 1, traceSpanCounters: 6, sessionSpanCounters: 4, sessionTraceCounters: 1 });
  });

  it("takes session.id from the resource when a span has none (the span's own wins), through a BatchSpanProcessor, into the default namespace without the header", async () => {
    const resSession = `res-${tag}-${spanHex()}`;
    const spanSession = `span-${tag}-${spanHex()}`;
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": "otlp-e2e", "session.id": resSession }),
      spanProcessors: [new BatchSpanProcessor(otlpExporter(kind, undefined), { scheduledDelayMillis: 60_000 })],
    });
    const tracer = provider.getTracer("sessiond-otlp-e2e");
    const a = tracer.startSpan("from.resource", { startTime: at(0) });
    a.end(at(5));
    const b = tracer.startSpan("from.span", { startTime: at(0), attributes: { "session.id": spanSession } });
    b.end(at(7));
    try {
      await provider.forceFlush();
    } finally {
      await provider.shutdown();
    }

    const { traces, sessions } = clients();
    const byResource = await traces.listTraces({ namespace: "default", sessionId: resSession });
    expect(byResource.traces).toEqual([expect.objectContaining({ traceId: a.spanContext().traceId, rootSpanName: "from.resource", spanCount: 1 })]);
    const bySpan = await traces.listTraces({ sessionId: spanSession });
    expect(bySpan.traces).toEqual([expect.objectContaining({ traceId: b.spanContext().traceId, rootSpanName: "from.span", spanCount: 1 })]);
    // Resource attributes are not copied onto the span.
    expect((await traces.getTrace({ traceId: a.spanContext().traceId })).spans[0].span?.attributes).toEqual({});
    expect((await sessions.getSession({ namespace: "default", sessionId: resSession })).session?.stats).toMatchObject({ traceCount: 1, spanCount: 1 });
    expect((await sessions.getSession({ namespace: "default", sessionId: spanSession })).session?.stats).toMatchObject({ traceCount: 1, spanCount: 1 });
  });
});

// ---------------------------------------------------------------------------------------------------
// Hand-built OTLP requests.

type KV = MessageInitShape<typeof KeyValueSchema>;
const str = (key: string, value: string): KV => ({ key, value: { value: { case: "stringValue", value } } });
const int = (key: string, value: bigint): KV => ({ key, value: { value: { case: "intValue", value } } });

/** An OTLP protobuf span (ids as hex); `over` replaces fields. */
function pbSpan(traceId: string, over: MessageInitShape<typeof OtlpSpanSchema> = {}): MessageInitShape<typeof OtlpSpanSchema> {
  return {
    traceId: hexBytes(traceId),
    spanId: hexBytes(spanHex()),
    name: "step",
    kind: Span_SpanKind.INTERNAL,
    startTimeUnixNano: nanos(0),
    endTimeUnixNano: nanos(10),
    ...over,
  };
}

const pbRequest = (spans: MessageInitShape<typeof OtlpSpanSchema>[], resourceAttributes: KV[] = []): MessageInitShape<typeof ExportTraceServiceRequestSchema> => ({
  resourceSpans: [{ resource: { attributes: resourceAttributes }, scopeSpans: [{ scope: { name: "e2e" }, spans }] }],
});

/** An OTLP/JSON span as the specification writes it: hex ids, int64 as strings, enums as integers. */
function jsonSpan(traceId: string, spanId: string, over: Record<string, unknown> = {}) {
  return {
    traceId,
    spanId,
    parentSpanId: "",
    name: "json.step",
    kind: 1,
    startTimeUnixNano: nanos(0).toString(),
    endTimeUnixNano: nanos(10).toString(),
    attributes: [] as unknown[],
    ...over,
  };
}

const jsonRequest = (spans: unknown[]) => ({
  resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "json-client" } }] }, scopeSpans: [{ scope: { name: "hand" }, spans }] }],
});

/** POST /v1/traces. */
const post = (body: string | Uint8Array, headers: Record<string, string>, method = "POST") =>
  fetch(`${ctx.url}/v1/traces`, { method, headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...headers }, body: method === "GET" || method === "HEAD" ? undefined : body });

describe("OTLP/HTTP POST /v1/traces", () => {
  it("accepts a hand-written OTLP/JSON body (hex ids, string nanos) and answers with a JSON ExportTraceServiceResponse", async () => {
    const ns = "otlp-http-json";
    const t = traceHex();
    const [root, child] = [spanHex(), spanHex()];
    const body = jsonRequest([
      jsonSpan(t, child, {
        parentSpanId: root,
        name: "json.child",
        kind: 3,
        startTimeUnixNano: nanos(20).toString(),
        endTimeUnixNano: nanos(80).toString(),
        attributes: [
          { key: "session.id", value: { stringValue: "json-1" } },
          { key: "http.status_code", value: { intValue: "503" } },
          { key: "retried", value: { boolValue: true } },
          { key: "ratio", value: { doubleValue: 0.5 } },
        ],
        status: { code: 2, message: "upstream failed" },
        events: [{ timeUnixNano: nanos(50).toString(), name: "exception", attributes: [{ key: "exception.type", value: { stringValue: "Timeout" } }] }],
      }),
      jsonSpan(t, root, { name: "json.root", kind: 2, startTimeUnixNano: nanos(0).toString(), endTimeUnixNano: nanos(100).toString(), attributes: [{ key: "session.id", value: { stringValue: "json-1" } }], status: { code: 1 } }),
    ]);
    const res = await post(JSON.stringify(body), { "content-type": "application/json", [NS_HEADER]: ns });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({});

    const { traces, sessions } = clients();
    const got = await traces.getTrace({ namespace: ns, traceId: t });
    expect(got.trace).toMatchObject({ traceId: t, rootSpanName: "json.root", spanCount: 2, statusCode: StatusCode.ERROR, startTime: ts(0), duration: { seconds: 0n, nanos: 100_000_000 } });
    expect(got.spans.map((s) => [s.span?.spanId, s.depth])).toEqual([
      [root, 0],
      [child, 1],
    ]);
    expect(got.spans[0].span).toMatchObject({ name: "json.root", kind: SpanKind.SERVER, statusCode: StatusCode.OK });
    expect(got.spans[1].span).toMatchObject({
      traceId: t,
      spanId: child,
      parentSpanId: root,
      name: "json.child",
      kind: SpanKind.CLIENT,
      startTime: ts(20),
      endTime: ts(80),
      statusCode: StatusCode.ERROR,
      statusMessage: "upstream failed",
      events: [expect.objectContaining({ name: "exception", time: ts(50), attributes: { "exception.type": "Timeout" } })],
    });
    expect(got.spans[1].span?.attributes).toEqual({ "session.id": "json-1", "http.status_code": 503, retried: true, ratio: 0.5 });
    const { session } = await sessions.getSession({ namespace: ns, sessionId: "json-1" });
    expect(session?.stats).toMatchObject({ traceCount: 1, spanCount: 2 });
    expect(got.trace?.session).toBe(session!.id);
  });

  it("accepts a gzipped protobuf body and answers with a protobuf ExportTraceServiceResponse", async () => {
    const ns = "otlp-http-gzip";
    const t = traceHex();
    const request = create(ExportTraceServiceRequestSchema, pbRequest([pbSpan(t, { name: "zipped", attributes: [str("session.id", "gz-1"), int("n", 7n)] })]));
    const res = await post(gzipSync(toBinary(ExportTraceServiceRequestSchema, request)), { "content-type": "application/x-protobuf", "content-encoding": "gzip", [NS_HEADER]: ns });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-protobuf");
    const response = fromBinary(ExportTraceServiceResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect(response.partialSuccess).toBeUndefined();
    const got = await clients().traces.getTrace({ namespace: ns, traceId: t });
    expect(got.spans.map((s) => [s.span?.name, s.span?.attributes])).toEqual([["zipped", { "session.id": "gz-1", n: 7 }]]);
    expect((await clients().traces.listTraces({ namespace: ns, sessionId: "gz-1" })).traces.map((x) => x.traceId)).toEqual([t]);
  });

  it("answers a body that does not decode with 400 and a google.rpc.Status in the request's format, storing nothing", async () => {
    const ns = "otlp-http-garbage";
    const headers = (type: string, extra: Record<string, string> = {}) => ({ "content-type": type, [NS_HEADER]: ns, ...extra });

    // Field 1 (resource_spans) claiming 16 bytes, followed by one.
    const garbage = await post(Uint8Array.of(0x0a, 0x10, 0x01), headers("application/x-protobuf"));
    expect(garbage.status).toBe(400);
    expect(garbage.headers.get("content-type")).toBe("application/x-protobuf");
    const status = fromBinary(StatusSchema, new Uint8Array(await garbage.arrayBuffer()));
    expect(status.code).toBe(Code.InvalidArgument);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/^the body is not a valid OTLP ExportTraceServiceRequest \(protobuf\): ./);

    const badJson = await post("{not json", headers("application/json; charset=utf-8"));
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get("content-type")).toMatch(/^application\/json/);
    const jsonStatus = await badJson.json();
    expect(jsonStatus).toEqual({ code: 3, message: expect.stringMatching(/^the body is not a valid OTLP ExportTraceServiceRequest \(JSON\): ./) });

    const wrongShape = await post(JSON.stringify({ resourceSpans: 5 }), headers("application/json"));
    expect(wrongShape.status).toBe(400);
    expect(await wrongShape.json()).toEqual({ code: 3, message: expect.stringMatching(/\(JSON\)/) });

    // Valid protobuf, but announced as gzip without being gzipped.
    const t = traceHex();
    const plain = toBinary(ExportTraceServiceRequestSchema, create(ExportTraceServiceRequestSchema, pbRequest([pbSpan(t, { attributes: [str("session.id", "never")] })])));
    const notGzip = await post(plain, headers("application/x-protobuf", { "content-encoding": "gzip" }));
    expect(notGzip.status).toBe(400);
    expect(fromBinary(StatusSchema, new Uint8Array(await notGzip.arrayBuffer())).code).toBe(Code.InvalidArgument);

    await expect(clients().traces.getTrace({ namespace: ns, traceId: t })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await rows(ns)).toMatchObject({ traces: 0, spans: 0, sessions: 0 });
  });

  it("answers other content types with 415 and other methods with 405", async () => {
    const ns = "otlp-http-method";
    const t = traceHex();
    const body = JSON.stringify(jsonRequest([jsonSpan(t, spanHex())]));
    const text = await post(body, { "content-type": "text/plain", [NS_HEADER]: ns });
    expect(text.status).toBe(415);
    expect(await text.text()).toMatch(/application\/x-protobuf or application\/json/);
    const none = await post(body, { [NS_HEADER]: ns });
    expect(none.status).toBe(415);
    await none.arrayBuffer();

    const get = await post("", { [NS_HEADER]: ns }, "GET");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    await get.arrayBuffer();
    const put = await post(body, { "content-type": "application/json", [NS_HEADER]: ns }, "PUT");
    expect(put.status).toBe(405);
    await put.arrayBuffer();

    await expect(clients().traces.getTrace({ namespace: ns, traceId: t })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await rows(ns)).toMatchObject({ traces: 0, spans: 0 });
  });

  it("rejects a span that ends before it starts alone, reporting it in partialSuccess, and stores only the valid span", async () => {
    const ns = "otlp-http-partial";
    const { traces, sessions } = clients();

    // OTLP/JSON: the valid span and the bad one share a trace and a session.
    const t = traceHex();
    const [good, bad] = [spanHex(), spanHex()];
    const sid = { key: "session.id", value: { stringValue: "partial-json" } };
    const res = await post(
      JSON.stringify(jsonRequest([jsonSpan(t, good, { name: "good", attributes: [sid] }), jsonSpan(t, bad, { name: "backwards", startTimeUnixNano: nanos(50).toString(), endTimeUnixNano: nanos(40).toString(), attributes: [sid] })])),
      { "content-type": "application/json", [NS_HEADER]: ns },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ partialSuccess: { rejectedSpans: "1", errorMessage: expect.stringMatching(/end_time: must not be before start_time/) } });
    const got = await traces.getTrace({ namespace: ns, traceId: t });
    expect(got.trace).toMatchObject({ spanCount: 1, rootSpanName: "good" });
    expect(got.spans.map((s) => s.span?.spanId)).toEqual([good]);
    expect((await sessions.getSession({ namespace: ns, sessionId: "partial-json" })).session?.stats).toMatchObject({ traceCount: 1, spanCount: 1 });

    // Protobuf: a trace whose only span is bad is not created, nor is its session.
    const t2 = traceHex();
    const t3 = traceHex();
    const request = create(
      ExportTraceServiceRequestSchema,
      pbRequest([
        pbSpan(t2, { name: "only-bad", startTimeUnixNano: nanos(10), endTimeUnixNano: nanos(9), attributes: [str("session.id", "partial-pb-ghost")] }),
        pbSpan(t3, { name: "fine", attributes: [str("session.id", "partial-pb")] }),
      ]),
    );
    const res2 = await post(toBinary(ExportTraceServiceRequestSchema, request), { "content-type": "application/x-protobuf", [NS_HEADER]: ns });
    expect(res2.status).toBe(200);
    const response = fromBinary(ExportTraceServiceResponseSchema, new Uint8Array(await res2.arrayBuffer()));
    expect(response.partialSuccess?.rejectedSpans).toBe(1n);
    expect(response.partialSuccess?.errorMessage).toMatch(/end_time: must not be before start_time/);
    await expect(traces.getTrace({ namespace: ns, traceId: t2 })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(sessions.getSession({ namespace: ns, sessionId: "partial-pb-ghost" })).rejects.toMatchObject({ code: Code.NotFound });
    expect((await traces.getTrace({ namespace: ns, traceId: t3 })).spans.map((s) => s.span?.name)).toEqual(["fine"]);

    expect(await rows(ns)).toEqual({ traces: 2, spans: 2, sessions: 2, traceSpanCounters: 2, sessionSpanCounters: 2, sessionTraceCounters: 2 });
  });

  it("rejects the whole export with 400 when the sessiond-namespace header is not a valid namespace", async () => {
    const t = traceHex();
    const res = await post(JSON.stringify(jsonRequest([jsonSpan(t, spanHex())])), { "content-type": "application/json", [NS_HEADER]: "Not A Namespace!" });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: 3, message: expect.stringMatching(/^namespace: /) });
    expect(await ctx.db.sql("SELECT 1 FROM traces WHERE otel_trace_id = $1", [t])).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// The collector's gRPC service, called directly.

/** Sends a raw gRPC request (one length-prefixed message of `payload`) and returns the gRPC status. */
async function rawGrpc(path: string, payload: Uint8Array, headers: Record<string, string>): Promise<{ status: string; message: string }> {
  const session = http2.connect(ctx.url);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${TEST_ADMIN_KEY}`, ...headers });
      let head: http2.IncomingHttpHeaders = {};
      let tail: http2.IncomingHttpHeaders = {};
      req.on("response", (h) => (head = h));
      req.on("trailers", (t) => (tail = t));
      req.on("error", reject);
      req.on("end", () => {
        const get = (k: string) => String(tail[k] ?? head[k] ?? "");
        resolve({ status: get("grpc-status"), message: decodeURIComponent(get("grpc-message")) });
      });
      req.resume();
      const frame = Buffer.alloc(5 + payload.length);
      frame.writeUInt32BE(payload.length, 1);
      frame.set(payload, 5);
      req.end(frame);
    });
  } finally {
    session.close();
  }
}

describe("the collector's gRPC TraceService/Export", () => {
  const otlp = () => createClient(OtlpTraceService, grpcTransport(ctx.url));
  const nsHeader = (ns: string) => ({ headers: { [NS_HEADER]: ns } });

  it("gives a trace the session its spans name even when its root, listed first, names none", async () => {
    const ns = "otlp-grpc-root-first";
    const t = traceHex();
    const root = spanHex();
    await otlp().export(
      pbRequest([pbSpan(t, { spanId: hexBytes(root), name: "root" }), pbSpan(t, { parentSpanId: hexBytes(root), name: "child", attributes: [str("session.id", "chat-7")] })]),
      nsHeader(ns),
    );
    const { traces } = clients();
    const inSession = await traces.listTraces({ namespace: ns, sessionId: "chat-7" });
    expect(inSession.traces.map((x) => [x.traceId, x.spanCount, x.rootSpanName])).toEqual([[t, 2, "root"]]);
    expect((await traces.listTraces({ namespace: ns, withoutSession: true })).traces).toEqual([]);
  });

  it("rejects malformed spans alone, reports them in partial_success, and creates no session for spans it rejected", async () => {
    const ns = "otlp-grpc-malformed";
    const t = traceHex();
    const good = spanHex();
    const response = await otlp().export(
      pbRequest([
        pbSpan(t, { traceId: Uint8Array.of(1, 2, 3), name: "short-trace-id", attributes: [str("session.id", "ghost-1")] }),
        pbSpan(t, { spanId: hexBytes(good), name: "good", attributes: [str("session.id", "real")] }),
        pbSpan(t, { spanId: Uint8Array.of(9), name: "short-span-id", attributes: [str("session.id", "real")] }),
        pbSpan(t, { name: "backwards", startTimeUnixNano: nanos(5), endTimeUnixNano: nanos(4), attributes: [str("session.id", "real")] }),
        pbSpan(t, { name: "no-start", startTimeUnixNano: 0n, attributes: [str("session.id", "real")] }),
        pbSpan(t, { name: "", attributes: [str("session.id", "real")] }),
        pbSpan(t, { name: "numeric-session", attributes: [int("session.id", 7n)] }),
        pbSpan(t, { name: "empty-session", attributes: [str("session.id", "")] }),
        pbSpan(t, { name: "long-session", attributes: [str("session.id", "s".repeat(257))] }),
        pbSpan(t, { name: "bad-status", status: { code: 9 as Status_StatusCode }, attributes: [str("session.id", "ghost-2")] }),
      ]),
      nsHeader(ns),
    );
    expect(response.partialSuccess?.rejectedSpans).toBe(9n);
    expect(response.partialSuccess?.errorMessage).toMatch(/^span\.trace_id: must be 32 hex characters/);

    const { traces, sessions } = clients();
    const got = await traces.getTrace({ namespace: ns, traceId: t });
    expect(got.spans.map((s) => [s.span?.spanId, s.span?.name])).toEqual([[good, "good"]]);
    expect((await sessions.getSession({ namespace: ns, sessionId: "real" })).session?.stats).toMatchObject({ traceCount: 1, spanCount: 1 });
    for (const ghost of ["ghost-1", "ghost-2", "7"]) {
      await expect(sessions.getSession({ namespace: ns, sessionId: ghost })).rejects.toMatchObject({ code: Code.NotFound });
    }
    expect(await rows(ns)).toEqual({ traces: 1, spans: 1, sessions: 1, traceSpanCounters: 1, sessionSpanCounters: 1, sessionTraceCounters: 1 });
  });

  it("answers a fully valid export with no partial_success, and an export of nothing with success", async () => {
    const ns = "otlp-grpc-valid";
    const t = traceHex();
    const ok = await otlp().export(pbRequest([pbSpan(t, { status: { code: Status_StatusCode.OK } })], [str("session.id", "from-resource")]), nsHeader(ns));
    expect(ok.partialSuccess).toBeUndefined();
    expect((await clients().traces.listTraces({ namespace: ns, sessionId: "from-resource" })).traces).toEqual([expect.objectContaining({ traceId: t, statusCode: StatusCode.OK })]);
    const empty = await otlp().export({}, nsHeader(ns));
    expect(empty.partialSuccess).toBeUndefined();
    expect(await rows(ns)).toMatchObject({ traces: 1, spans: 1 });
  });

  it("rejects the spans of a cancelled or soft-deleted session in partial_success and records the others", async () => {
    const ns = "otlp-grpc-closed";
    const { traces, sessions } = clients();
    await sessions.createSession({ namespace: ns, sessionId: "cancelled" });
    await sessions.cancelSession({ namespace: ns, sessionId: "cancelled" });
    await sessions.createSession({ namespace: ns, sessionId: "deleted" });
    await sessions.softDeleteSession({ namespace: ns, sessionId: "deleted" });
    const [tc, td, tl] = [traceHex(), traceHex(), traceHex()];

    const response = await otlp().export(
      pbRequest([
        pbSpan(tc, { name: "late-1", attributes: [str("session.id", "cancelled")] }),
        pbSpan(tc, { name: "late-2", attributes: [str("session.id", "cancelled")] }),
        pbSpan(td, { name: "gone", attributes: [str("session.id", "deleted")] }),
        pbSpan(tl, { name: "alive", attributes: [str("session.id", "live")] }),
      ]),
      nsHeader(ns),
    );
    expect(response.partialSuccess?.rejectedSpans).toBe(3n);
    expect(response.partialSuccess?.errorMessage).toMatch(/is cancelled; recording spans is not allowed/);

    expect((await traces.listTraces({ namespace: ns, sessionId: "live" })).traces).toEqual([expect.objectContaining({ traceId: tl, rootSpanName: "alive", spanCount: 1 })]);
    for (const gone of [tc, td]) await expect(traces.getTrace({ namespace: ns, traceId: gone })).rejects.toMatchObject({ code: Code.NotFound });
    expect((await sessions.getSession({ namespace: ns, sessionId: "cancelled" })).session?.stats).toMatchObject({ traceCount: 0, spanCount: 0 });
    expect((await sessions.getSession({ namespace: ns, sessionId: "deleted", showDeleted: true })).session).toMatchObject({ state: SessionState.SOFT_DELETED, stats: { traceCount: 0, spanCount: 0 } });
    expect(await rows(ns)).toEqual({ traces: 1, spans: 1, sessions: 3, traceSpanCounters: 1, sessionSpanCounters: 1, sessionTraceCounters: 1 });
  });

  it("rejects a span whose session.id holds a control character alone, in partial_success, as it does other invalid session ids", async () => {
    const ns = "otlp-grpc-control";
    const { traces } = clients();
    const settle = (p: Promise<unknown>) => p.then((response) => ({ response }), (error: unknown) => ({ error }));
    const rejectedAlone = { response: { partialSuccess: { rejectedSpans: 1n, errorMessage: expect.stringMatching(/session\.id/) } } };

    // The valid span first, then the bad one.
    const t1 = traceHex();
    const good1 = spanHex();
    const first = await settle(otlp().export(pbRequest([pbSpan(t1, { spanId: hexBytes(good1), name: "good", attributes: [str("session.id", "fine-1")] }), pbSpan(t1, { name: "bad-session", attributes: [str("session.id", "line\nbreak")] })]), nsHeader(ns)));
    expect.soft(first).toMatchObject(rejectedAlone);
    expect.soft(await ctx.db.sql("SELECT s.otel_span_id AS id FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.otel_trace_id = $1", [t1])).toEqual([{ id: good1 }]);

    // The bad one first, then the valid span.
    const t2 = traceHex();
    const good2 = spanHex();
    const second = await settle(otlp().export(pbRequest([pbSpan(t2, { name: "bad-session", attributes: [str("session.id", "tab\there")] }), pbSpan(t2, { spanId: hexBytes(good2), name: "good", attributes: [str("session.id", "fine-2")] })]), nsHeader(ns)));
    expect.soft(second).toMatchObject(rejectedAlone);
    expect.soft(await ctx.db.sql("SELECT s.otel_span_id AS id FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.otel_trace_id = $1", [t2])).toEqual([{ id: good2 }]);

    // The same over OTLP/HTTP JSON.
    const t3 = traceHex();
    const good3 = spanHex();
    const res = await post(
      JSON.stringify(jsonRequest([jsonSpan(t3, spanHex(), { attributes: [{ key: "session.id", value: { stringValue: "bell\u0007" } }] }), jsonSpan(t3, good3, { attributes: [{ key: "session.id", value: { stringValue: "fine-3" } }] })])),
      { "content-type": "application/json", [NS_HEADER]: ns },
    );
    expect.soft({ status: res.status, body: await res.json() }).toEqual({ status: 200, body: { partialSuccess: { rejectedSpans: "1", errorMessage: expect.stringMatching(/session\.id/) } } });
    expect.soft(await ctx.db.sql("SELECT s.otel_span_id AS id FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.otel_trace_id = $1", [t3])).toEqual([{ id: good3 }]);

    expect((await traces.listTraces({ namespace: ns, sessionId: "fine-1" })).traces.map((x) => x.traceId)).toEqual([t1]);
    expect(await rows(ns)).toMatchObject({ traces: 3, spans: 3, sessions: 3 });
  });

  it("records an export of more than 1000 spans of one session", async () => {
    const ns = "otlp-grpc-large";
    const t = traceHex();
    const root = spanHex();
    const spans = [pbSpan(t, { spanId: hexBytes(root), name: "batch.root", startTimeUnixNano: nanos(0), endTimeUnixNano: nanos(5000), attributes: [str("session.id", "big")] })];
    for (let i = 0; i < 1200; i++) spans.push(pbSpan(t, { parentSpanId: hexBytes(root), name: `child-${i}`, startTimeUnixNano: nanos(1 + i), endTimeUnixNano: nanos(2 + i), attributes: [str("session.id", "big")] }));
    const response = await otlp().export(pbRequest(spans), nsHeader(ns));
    expect(response.partialSuccess).toBeUndefined();
    expect((await clients().traces.listTraces({ namespace: ns, sessionId: "big" })).traces).toEqual([expect.objectContaining({ traceId: t, rootSpanName: "batch.root", spanCount: 1201 })]);
    expect((await clients().sessions.getSession({ namespace: ns, sessionId: "big" })).session?.stats).toMatchObject({ traceCount: 1, spanCount: 1201 });
    expect(await rows(ns)).toEqual({ traces: 1, spans: 1201, sessions: 1, traceSpanCounters: 1201, sessionSpanCounters: 1201, sessionTraceCounters: 1 });
  });

  it("rejects the whole export with INVALID_ARGUMENT when the sessiond-namespace header is not a valid namespace", async () => {
    const t = traceHex();
    await expect(otlp().export(pbRequest([pbSpan(t)]), nsHeader("Not A Namespace!"))).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringMatching(/^namespace: /) });
    expect(await ctx.db.sql("SELECT 1 FROM traces WHERE otel_trace_id = $1", [t])).toEqual([]);
  });

  // Known deviation, kept visible: connect-es (2.x) parses a gRPC request before any interceptor or
  // handler runs and reports a message that does not decode as INTERNAL ("parse binary: ..."). The
  // test asserts what OTLP asks for, so it starts failing (and must be flipped to \`it\`) once that is fixed.
  it.fails("answers a request message that does not decode with INVALID_ARGUMENT, storing nothing", async () => {
    const ns = "otlp-grpc-undecodable";
    // A well-formed request first, to show the raw client works: grpc-status 0.
    const t = traceHex();
    const valid = toBinary(ExportTraceServiceRequestSchema, create(ExportTraceServiceRequestSchema, pbRequest([pbSpan(t)])));
    expect(await rawGrpc(EXPORT_PATH, valid, { [NS_HEADER]: ns })).toEqual({ status: "0", message: "" });
    expect(await rows(ns)).toMatchObject({ traces: 1, spans: 1 });

    const answer = await rawGrpc(EXPORT_PATH, Uint8Array.of(0x0a, 0x10, 0x01), { [NS_HEADER]: ns });
    expect(answer).toMatchObject({ status: String(Code.InvalidArgument), message: expect.stringMatching(/./) });
    expect(await rows(ns)).toMatchObject({ traces: 1, spans: 1 });
  });
});
