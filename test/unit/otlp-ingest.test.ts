/**
 * OTLP ingestion's rules (domain/otlp-ingest.ts) without a database: which session a span goes to,
 * the order and size of the RecordSpans batches, and what partial success reports. The recording
 * itself is a fake SpanRecorder; test/e2e/otlp.test.ts covers the real one.
 */
import { describe, expect, it } from "vitest";
import { PreconditionError, UnavailableError } from "../../src/domain/errors.js";
import { createOtlpIngest, planIngest, sessionOf, type IngestSpan, type SpanRecorder } from "../../src/domain/otlp-ingest.js";
import type { RecordSpansInput } from "../../src/domain/trace-service.js";

const T = new Date("2026-11-03T10:20:30.456Z");
let next = 1;

/** A valid span with a fresh span id; `session` sets its session.id attribute. */
function span(over: Partial<IngestSpan> & { session?: unknown } = {}): IngestSpan {
  const { session, ...rest } = over;
  const id = (next++).toString(16).padStart(16, "0");
  return {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: id,
    parentSpanId: "",
    name: `span ${id}`,
    kind: 1,
    startTime: T,
    endTime: T,
    statusCode: 0,
    statusMessage: "",
    attributes: session === undefined ? {} : { "session.id": session as string },
    events: [],
    resourceAttributes: {},
    ...rest,
  };
}

/** A recorder that remembers its calls and refuses the sessions in `refused`. */
function fakeRecorder(refused: Record<string, Error> = {}): SpanRecorder & { calls: RecordSpansInput[] } {
  const calls: RecordSpansInput[] = [];
  return {
    calls,
    async record(input, opts) {
      expect(opts).toEqual({ createSession: true });
      calls.push(input);
      const err = refused[input.sessionId];
      if (err) throw err;
      return { spans: input.spans.length };
    },
  };
}

describe("a span's session", () => {
  it("is its own session.id attribute, else its resource's, else none", () => {
    expect(sessionOf(span({ session: "chat-1", resourceAttributes: { "session.id": "chat-2" } }))).toBe("chat-1");
    expect(sessionOf(span({ resourceAttributes: { "session.id": "chat-2" } }))).toBe("chat-2");
    expect(sessionOf(span())).toBeUndefined();
  });
});

describe("planIngest", () => {
  it("groups spans by session, sessions first and sessionless spans last, each group in arrival order", () => {
    const root = span();
    const a1 = span({ session: "a" });
    const b1 = span({ resourceAttributes: { "session.id": "b" } });
    const a2 = span({ session: "a" });
    const plan = planIngest([root, a1, b1, a2]);
    expect(plan.batches.map((b) => [b.sessionId, b.spans.map((s) => s.spanId)])).toEqual([
      ["a", [a1.spanId, a2.spanId]],
      ["b", [b1.spanId]],
      ["", [root.spanId]],
    ]);
    expect(plan).toMatchObject({ rejectedSpans: 0, errorMessage: "" });
  });

  it("hands RecordSpans plain span inputs, without the resource's attributes, keeping session.id among the span's", () => {
    const s = span({ session: "a", resourceAttributes: { "service.name": "agent" } });
    const [batch] = planIngest([s]).batches;
    expect(batch.spans[0]).not.toHaveProperty("resourceAttributes");
    expect(batch.spans[0].attributes).toEqual({ "session.id": "a" });
  });

  it("cuts a session's spans into batches of at most the per-call limit", () => {
    const spans = Array.from({ length: 5 }, () => span({ session: "a" }));
    const plan = planIngest(spans, 2);
    expect(plan.batches.map((b) => b.spans.length)).toEqual([2, 2, 1]);
    expect(plan.batches.flatMap((b) => b.spans.map((s) => s.spanId))).toEqual(spans.map((s) => s.spanId));
  });

  it("rejects invalid spans alone, counting them and keeping the first reason", () => {
    const plan = planIngest([span({ session: "a" }), span({ endTime: new Date(T.getTime() - 1) }), span({ traceId: "xyz" }), span()]);
    expect(plan.rejectedSpans).toBe(2);
    expect(plan.errorMessage).toBe("span.end_time: must not be before start_time");
    expect(plan.batches.map((b) => [b.sessionId, b.spans.length])).toEqual([
      ["a", 1],
      ["", 1],
    ]);
  });

  it.each([
    ["a number", 42, "span.attributes[session.id]: must be a string"],
    ["empty", "", "span.attributes[session.id]"],
    ["a control character", "chat\u0001", "span.attributes[session.id]"],
    ["over 256 bytes", "x".repeat(257), "span.attributes[session.id]"],
  ])("rejects a span whose session.id is %s, creating no batch for it", (_, session, message) => {
    const plan = planIngest([span({ session })]);
    expect(plan.batches).toEqual([]);
    expect(plan.rejectedSpans).toBe(1);
    expect(plan.errorMessage).toContain(message);
  });

  it("plans nothing for an export of nothing", () => {
    expect(planIngest([])).toEqual({ batches: [], rejectedSpans: 0, errorMessage: "" });
  });
});

describe("createOtlpIngest", () => {
  it("records each batch in the request's namespace, creating sessions, and reports full success", async () => {
    const recorder = fakeRecorder();
    const result = await createOtlpIngest(recorder).ingest({ namespace: "team-a", spans: [span(), span({ session: "a" })] });
    expect(result).toEqual({ rejectedSpans: 0, errorMessage: "" });
    expect(recorder.calls.map((c) => [c.namespace, c.session, c.sessionId, c.spans.length])).toEqual([
      ["team-a", "", "a", 1],
      ["team-a", "", "", 1],
    ]);
  });

  it("rejects the spans of a session that refuses them and records the others, invalid spans' reason first", async () => {
    const recorder = fakeRecorder({ gone: new PreconditionError("session X is cancelled; recording spans is not allowed") });
    const ingest = createOtlpIngest(recorder);
    const spans = [span({ session: "gone" }), span({ session: "gone" }), span({ session: "ok" })];
    expect(await ingest.ingest({ namespace: "", spans })).toEqual({ rejectedSpans: 2, errorMessage: "session X is cancelled; recording spans is not allowed" });
    expect(recorder.calls.map((c) => c.sessionId)).toEqual(["gone", "ok"]);

    const withInvalid = [span({ traceId: "" }), ...spans];
    expect(await ingest.ingest({ namespace: "", spans: withInvalid })).toMatchObject({ rejectedSpans: 3, errorMessage: expect.stringMatching(/^span\.trace_id: /) });
  });

  it("fails the whole export on any other error", async () => {
    const ingest = createOtlpIngest(fakeRecorder({ a: new UnavailableError("down") }));
    await expect(ingest.ingest({ namespace: "", spans: [span({ session: "a" })] })).rejects.toBeInstanceOf(UnavailableError);
  });
});
