import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { AnnotatorKind, SpanKind, StatusCode, type SpanSchema } from "../../gen/sessiond/v1/trace_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();
const run = promisify(execFile);
const BUF = path.resolve("node_modules/.bin/buf");

const traceHex = () => randomBytes(16).toString("hex");
const spanHex = () => randomBytes(8).toString("hex");
const T0 = Date.parse("2025-03-01T12:00:00.000Z");
const at = (ms: number) => timestampFromDate(new Date(T0 + ms));

/** A protobuf Span with every field set; `over` replaces some. */
function span(traceId: string, over: MessageInitShape<typeof SpanSchema> = {}): MessageInitShape<typeof SpanSchema> {
  return {
    traceId,
    spanId: spanHex(),
    parentSpanId: "",
    name: "step",
    kind: SpanKind.INTERNAL,
    startTime: at(0),
    endTime: at(10),
    statusCode: StatusCode.UNSPECIFIED,
    statusMessage: "",
    attributes: {},
    events: [],
    ...over,
  };
}

describe.each(["connect/http1.1", "grpc/http2", "grpc-web/http1.1"])("TraceService over %s", (name) => {
  const ns = `traces-${name.replace(/[^a-z0-9]/g, "")}`;

  it("records spans, lists the trace, reads it as a tree, annotates, and deletes it", async () => {
    const transport = transports(ctx.url)[name];
    const sessions = createClient(SessionService, transport);
    const traces = createClient(TraceService, transport);
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "run-1" });
    const t = traceHex();
    const [root, child, leaf] = [spanHex(), spanHex(), spanHex()];
    const spans = [
      span(t, {
        spanId: leaf,
        parentSpanId: child,
        name: "tool.search",
        kind: SpanKind.CLIENT,
        startTime: at(100),
        endTime: at(180),
        statusCode: StatusCode.ERROR,
        statusMessage: "timeout",
        attributes: { query: "tea", hits: 0 },
        events: [{ name: "retry", time: at(150), attributes: { attempt: 2 } }],
      }),
      span(t, { spanId: child, parentSpanId: root, name: "llm.plan", startTime: at(50), endTime: at(200), statusCode: StatusCode.OK }),
      span(t, { spanId: root, name: "agent.run", kind: SpanKind.SERVER, startTime: at(0), endTime: at(250), statusCode: StatusCode.OK }),
    ];

    expect(await traces.recordSpans({ namespace: ns, sessionId: "run-1", spans: spans.slice(0, 2) })).toMatchObject({ spansRecorded: 2, spansDuplicate: 0, tracesCreated: 1 });
    expect(await traces.recordSpans({ namespace: ns, session: session!.id, spans })).toMatchObject({ spansRecorded: 1, spansDuplicate: 2, tracesCreated: 0 });

    const listed = await traces.listTraces({ namespace: ns, sessionId: "run-1" });
    expect(listed.nextPageToken).toBe("");
    expect(listed.traces).toHaveLength(1);
    expect(listed.traces[0]).toMatchObject({ traceId: t, session: session!.id, rootSpanName: "agent.run", spanCount: 3, startTime: at(0), duration: { seconds: 0n, nanos: 250_000_000 }, statusCode: StatusCode.ERROR });
    expect(Buffer.from(listed.traces[0].id, "base64url").toString()).toMatch(/^Trace:[0-9a-f-]{36}$/);
    expect((await traces.listTraces({ namespace: ns, withoutSession: true })).traces).toEqual([]);

    const got = await traces.getTrace({ namespace: ns, traceId: t });
    expect(got.trace).toMatchObject({ id: listed.traces[0].id, traceId: t, spanCount: 3 });
    expect(got.spans.map((s) => [s.span?.spanId, s.depth])).toEqual([
      [root, 0],
      [child, 1],
      [leaf, 2],
    ]);
    expect(got.spans[2].span).toMatchObject({
      traceId: t,
      spanId: leaf,
      parentSpanId: child,
      name: "tool.search",
      kind: SpanKind.CLIENT,
      startTime: at(100),
      endTime: at(180),
      statusCode: StatusCode.ERROR,
      statusMessage: "timeout",
      attributes: { query: "tea", hits: 0 },
      events: [expect.objectContaining({ name: "retry", time: at(150), attributes: { attempt: 2 } })],
    });

    const onSpan = await traces.annotate({ namespace: ns, target: { target: { case: "span", value: { traceId: t, spanId: leaf } } }, name: "tool_use", annotatorKind: AnnotatorKind.LLM, label: "wrong tool", score: 0.25, explanation: "should have used the CRM", metadata: { judge: "m-1" } });
    expect(onSpan.created).toBe(true);
    expect(onSpan.annotation).toMatchObject({ target: { target: { case: "span", value: { traceId: t, spanId: leaf } } }, name: "tool_use", annotatorKind: AnnotatorKind.LLM, label: "wrong tool", score: 0.25, explanation: "should have used the CRM", metadata: { judge: "m-1" } });
    expect(Buffer.from(onSpan.annotation!.id, "base64url").toString()).toMatch(/^Annotation:/);
    const onTrace = await traces.annotate({ namespace: ns, target: { target: { case: "traceId", value: t } }, name: "outcome", annotatorKind: AnnotatorKind.HUMAN, label: "failed" });
    expect(onTrace.annotation?.score).toBeUndefined();
    const onSession = await traces.annotate({ namespace: ns, target: { target: { case: "sessionId", value: "run-1" } }, name: "csat", annotatorKind: AnnotatorKind.CODE, score: 3, identifier: "survey" });
    expect(onSession.annotation?.target?.target).toEqual({ case: "session", value: session!.id });
    const again = await traces.annotate({ namespace: ns, target: { target: { case: "session", value: session!.id } }, name: "csat", annotatorKind: AnnotatorKind.CODE, score: 5, identifier: "survey" });
    expect(again).toMatchObject({ created: false, annotation: { id: onSession.annotation!.id, score: 5 } });

    expect((await traces.listAnnotations({ namespace: ns, target: { target: { case: "span", value: { traceId: t, spanId: leaf } } } })).annotations.map((a) => a.id)).toEqual([onSpan.annotation!.id]);
    const sessionNotes = await traces.listAnnotations({ namespace: ns, target: { target: { case: "session", value: session!.id } } });
    expect(sessionNotes.annotations).toEqual([expect.objectContaining({ id: onSession.annotation!.id, score: 5, identifier: "survey" })]);

    const { session: before } = await sessions.getSession({ id: session!.id });
    expect(before?.stats).toMatchObject({ traceCount: 1, spanCount: 3 });
    expect(await traces.deleteTraces({ namespace: ns, traceIds: [t, traceHex()] })).toMatchObject({ tracesDeleted: 1, spansDeleted: 3, annotationsDeleted: 2 });
    await expect(traces.getTrace({ namespace: ns, traceId: t })).rejects.toMatchObject({ code: Code.NotFound });
    const { session: after } = await sessions.getSession({ id: session!.id });
    expect(after?.stats).toMatchObject({ traceCount: 0, spanCount: 0 });
    expect((await traces.listAnnotations({ namespace: ns, target: { target: { case: "session", value: session!.id } } })).annotations).toHaveLength(1);
  });

  it("answers bad input with InvalidArgument naming the field, a missing target with NotFound, a cancelled session with FailedPrecondition", async () => {
    const transport = transports(ctx.url)[name];
    const sessions = createClient(SessionService, transport);
    const traces = createClient(TraceService, transport);
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "bad" });
    const id = session!.id;
    const t = traceHex();
    await traces.recordSpans({ namespace: ns, session: id, spans: [span(t)] });
    const expectError = (p: Promise<unknown>, code: Code, message: RegExp) => expect(p).rejects.toMatchObject({ code, rawMessage: expect.stringMatching(message) });

    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(t.slice(1))] }), Code.InvalidArgument, /^spans\[0\]\.trace_id:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span("0".repeat(32))] }), Code.InvalidArgument, /^spans\[0\]\.trace_id:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(t), span(t, { spanId: "xyz" })] }), Code.InvalidArgument, /^spans\[1\]\.span_id:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(t), span(t, { startTime: at(10), endTime: at(5) })] }), Code.InvalidArgument, /^spans\[1\]\.end_time:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(t, { startTime: undefined })] }), Code.InvalidArgument, /^spans\[0\]\.start_time:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [] }), Code.InvalidArgument, /^spans:/);
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(t, { name: "n".repeat(1025) })] }), Code.InvalidArgument, /^spans\[0\]\.name:/);
    await expectError(traces.getTrace({ namespace: ns, traceId: "nope" }), Code.InvalidArgument, /^trace_id:/);
    await expectError(traces.deleteTraces({ namespace: ns, traceIds: [] }), Code.InvalidArgument, /^trace_ids:/);
    await expectError(traces.annotate({ namespace: ns, target: { target: { case: "traceId", value: t } }, name: "x" }), Code.InvalidArgument, /^annotator_kind:/);
    await expectError(traces.annotate({ namespace: ns, target: { target: { case: "traceId", value: t } }, name: "x", annotatorKind: AnnotatorKind.HUMAN, score: Number.NaN }), Code.InvalidArgument, /^score:/);
    await expectError(traces.annotate({ namespace: ns, name: "x", annotatorKind: AnnotatorKind.HUMAN }), Code.InvalidArgument, /^target:/);
    await expectError(traces.listTraces({ namespace: ns }), Code.InvalidArgument, /^session:/);

    await expectError(traces.annotate({ namespace: ns, target: { target: { case: "traceId", value: traceHex() } }, name: "x", annotatorKind: AnnotatorKind.HUMAN }), Code.NotFound, /not found/);
    await expectError(traces.annotate({ namespace: ns, target: { target: { case: "span", value: { traceId: t, spanId: spanHex() } } }, name: "x", annotatorKind: AnnotatorKind.HUMAN }), Code.NotFound, /not found/);
    await expectError(traces.annotate({ namespace: ns, target: { target: { case: "sessionId", value: "nobody" } }, name: "x", annotatorKind: AnnotatorKind.HUMAN }), Code.NotFound, /not found/);
    await expectError(traces.getTrace({ namespace: `${ns}-other`, traceId: t }), Code.NotFound, /not found/);
    await expectError(traces.recordSpans({ namespace: ns, sessionId: "nobody", spans: [span(traceHex())] }), Code.NotFound, /not found/);

    await sessions.cancelSession({ id });
    await expectError(traces.recordSpans({ namespace: ns, session: id, spans: [span(traceHex())] }), Code.FailedPrecondition, /is cancelled/);
    expect((await traces.getTrace({ namespace: ns, traceId: t })).trace?.spanCount).toBe(1);
  });
});

describe("buf curl", () => {
  it("records a span from JSON with RFC 3339 times and reads it back with GetTrace", async () => {
    const call = async (method: string, body: unknown) =>
      JSON.parse((await run(BUF, ["curl", "-H", `Authorization: Bearer ${TEST_ADMIN_KEY}`, "--protocol", "grpc", "-d", JSON.stringify(body), `${ctx.url}/sessiond.v1.TraceService/${method}`], { timeout: 30_000 })).stdout);
    const traceId = traceHex();
    const spanId = spanHex();
    const recorded = await call("RecordSpans", {
      namespace: "curl-traces",
      spans: [
        {
          traceId,
          spanId,
          name: "curl.span",
          kind: "SPAN_KIND_CLIENT",
          startTime: "2025-03-01T12:00:00.250Z",
          endTime: "2025-03-01T12:00:01.500Z",
          statusCode: "STATUS_CODE_OK",
          attributes: { via: "buf curl" },
        },
      ],
    });
    expect(recorded).toMatchObject({ spansRecorded: 1, tracesCreated: 1 });
    const got = await call("GetTrace", { namespace: "curl-traces", traceId });
    expect(got.trace).toMatchObject({ traceId, rootSpanName: "curl.span", spanCount: 1, startTime: "2025-03-01T12:00:00.250Z", duration: "1.250s", statusCode: "STATUS_CODE_OK" });
    expect(got.spans).toEqual([
      {
        span: expect.objectContaining({
          traceId,
          spanId,
          name: "curl.span",
          kind: "SPAN_KIND_CLIENT",
          startTime: "2025-03-01T12:00:00.250Z",
          endTime: "2025-03-01T12:00:01.500Z",
          statusCode: "STATUS_CODE_OK",
          attributes: { via: "buf curl" },
        }),
      },
    ]);
  });
});
