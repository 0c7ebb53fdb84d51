import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, it } from "vitest";
import type { BulkDeleteEvent } from "../../src/domain/bulk-delete.js";
import { NotFoundError, PreconditionError } from "../../src/domain/errors.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import type { AnnotationTargetInput, SpanInput } from "../../src/domain/trace-model.js";
import type { AnnotateInput, RecordSpansInput } from "../../src/domain/trace-service.js";
import { byId, newSession, useDatabase } from "../setup/context.js";
import { namespaceIdOf } from "../setup/seed.js";

const ctx = useDatabase();

const traceHex = () => randomBytes(16).toString("hex");
const spanHex = () => randomBytes(8).toString("hex");
const T0 = Date.parse("2025-03-01T12:00:00.000Z");
/** T0 + `ms`. */
const at = (ms: number) => new Date(T0 + ms);

/** A span with every field set; `over` replaces some. */
function span(traceId: string, over: Partial<SpanInput> = {}): SpanInput {
  return {
    traceId,
    spanId: spanHex(),
    parentSpanId: "",
    name: "step",
    kind: 1,
    startTime: at(0),
    endTime: at(10),
    statusCode: 0,
    statusMessage: "",
    attributes: {},
    events: [],
    ...over,
  };
}

const record = (spans: SpanInput[], where: Partial<Omit<RecordSpansInput, "spans">> = {}) =>
  ctx.services.tracing.record({ namespace: "", session: "", sessionId: "", ...where, spans });

const annotate = (target: AnnotationTargetInput, over: Partial<AnnotateInput> = {}) =>
  ctx.services.tracing.annotate({ namespace: "", target, name: "correctness", annotatorKind: "human", label: "", score: undefined, explanation: "", metadata: {}, identifier: "", ...over });

const listTraces = (over: Partial<Parameters<typeof ctx.services.tracing.list>[0]>) =>
  ctx.services.tracing.list({ namespace: "", session: "", sessionId: "", withoutSession: false, pageSize: 0, pageToken: "", ...over });

const listAnnotations = (target: AnnotationTargetInput, over: { namespace?: string; pageSize?: number; pageToken?: string } = {}) =>
  ctx.services.tracing.annotations({ namespace: "", pageSize: 0, pageToken: "", ...over, target });

/** Rows in the three tables, whole database. */
async function rowCounts(): Promise<{ traces: number; spans: number; annotations: number }> {
  const [r] = await ctx.db.sql("SELECT (SELECT count(*)::int FROM traces) AS traces, (SELECT count(*)::int FROM spans) AS spans, (SELECT count(*)::int FROM annotations) AS annotations");
  return r;
}

/** The stored row of a trace (any namespace). */
async function traceRow(traceId: string) {
  const rows = await ctx.db.sql("SELECT id, session_id, root_name, span_count, start_time, end_time, status_code FROM traces WHERE otel_trace_id = $1", [traceId]);
  expect(rows).toHaveLength(1);
  return rows[0];
}

/** The stored spans of a trace, by span id. */
const spanRows = (traceId: string) =>
  ctx.db.sql(
    `SELECT s.otel_span_id, s.otel_parent_span_id, s.name, s.kind, s.start_time, s.end_time, s.status_code, s.status_message, s.attributes, s.events
     FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.otel_trace_id = $1 ORDER BY s.otel_span_id`,
    [traceId],
  );

const stats = async (id: string) => (await ctx.sessions.get(byId(id), true)).stats;
const annotationCount = async (uuid: string): Promise<number> => (await ctx.db.sql("SELECT annotation_count FROM sessions WHERE id = $1", [uuid]))[0].annotation_count;

describe("RecordSpans", () => {
  it("creates a trace on its first span and keeps its summary right as spans arrive out of order in several batches", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "rec-1" }));
    const t = traceHex();
    const [root, a, b, a1] = [spanHex(), spanHex(), spanHex(), spanHex()];

    const first = await record(
      [
        span(t, { spanId: a1, parentSpanId: a, name: "tool.call", kind: 3, startTime: at(30), endTime: at(40), attributes: { tool: "search" }, events: [{ name: "retry", time: at(35), attributes: { n: 1 } }] }),
        span(t, { spanId: a, parentSpanId: root, name: "llm.plan", startTime: at(20), endTime: at(50), statusCode: 1 }),
      ],
      { namespace: "rec", session: s.id },
    );
    expect(first).toEqual({ recorded: 2, duplicate: 0, tracesCreated: 1 });
    expect(await traceRow(t)).toMatchObject({ session_id: s.uuid, root_name: "", span_count: 2, start_time: at(20), end_time: at(50), status_code: 1 });

    const second = await record([span(t, { spanId: b, parentSpanId: root, name: "llm.answer", startTime: at(60), endTime: at(200), statusCode: 2, statusMessage: "model overloaded" })], { namespace: "rec", sessionId: "rec-1" });
    expect(second).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 0 });
    expect(await traceRow(t)).toMatchObject({ root_name: "", span_count: 3, start_time: at(20), end_time: at(200), status_code: 2 });

    const third = await record([span(t, { spanId: root, name: "agent.run", kind: 2, startTime: at(0), endTime: at(150), statusCode: 1 })], { namespace: "rec", session: s.id });
    expect(third).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 0 });
    expect(await traceRow(t)).toMatchObject({ root_name: "agent.run", span_count: 4, start_time: at(0), end_time: at(200), status_code: 2 });

    const stored = await spanRows(t);
    expect(stored).toHaveLength(4);
    expect(stored.find((r) => r.otel_span_id === a1)).toMatchObject({
      otel_parent_span_id: a,
      name: "tool.call",
      kind: 3,
      start_time: at(30),
      end_time: at(40),
      status_code: 0,
      status_message: "",
      attributes: { tool: "search" },
      events: [{ name: "retry", time: at(35).toISOString(), attributes: { n: 1 } }],
    });
    expect(stored.find((r) => r.otel_span_id === root)).toMatchObject({ otel_parent_span_id: null, kind: 2 });
    expect(stored.find((r) => r.otel_span_id === b)).toMatchObject({ status_code: 2, status_message: "model overloaded" });

    const { trace } = await ctx.services.tracing.get("rec", t);
    expect(trace).toMatchObject({ traceId: t, sessionUuid: s.uuid, rootSpanName: "agent.run", spanCount: 4, startTime: at(0), statusCode: 2 });
    expect(trace.endTime!.getTime() - trace.startTime!.getTime()).toBe(200);
    expect(await stats(s.id)).toMatchObject({ traceCount: 1, spanCount: 4 });
  });

  it("stores every span time to the millisecond, over years 1 to 9999, and the trace's summary agrees", async () => {
    const times = ["0001-01-01T00:00:00.001Z", "1699-03-04T05:06:07.891Z", "1969-12-31T23:59:59.999Z", "2250-06-01T12:00:00.001Z", "4321-09-08T07:06:05.043Z", "9999-12-31T23:59:59.999Z"];
    for (const iso of times) {
      const t = traceHex();
      const start = new Date(iso);
      const end = new Date(start.getTime() + (iso.startsWith("9999") ? 0 : 1));
      await record([span(t, { startTime: start, endTime: end })]);
      const [row] = await ctx.db.sql<{ s: string; e: string }>(
        `SELECT to_char(s.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS s, to_char(s.end_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS e
         FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.otel_trace_id = $1`,
        [t],
      );
      expect(row, iso).toEqual({ s: `${iso.slice(0, 23)}000`, e: `${end.toISOString().slice(0, 23)}000` });
      const { trace, spans } = await ctx.services.tracing.get("", t);
      expect([trace.startTime, trace.endTime, spans[0].span.startTime, spans[0].span.endTime], iso).toEqual([start, end, start, end]);
    }
  });

  it("says OK when no span failed and some succeeded, and UNSPECIFIED when none said", async () => {
    const ok = traceHex();
    await record([span(ok, { statusCode: 0 }), span(ok, { statusCode: 1 }), span(ok, { statusCode: 0 })]);
    expect((await traceRow(ok)).status_code).toBe(1);
    const unset = traceHex();
    await record([span(unset), span(unset)]);
    expect((await traceRow(unset)).status_code).toBe(0);
  });

  it("stores nothing twice for a retried batch and reports the duplicates", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "retry" }));
    const [t1, t2] = [traceHex(), traceHex()];
    const batch = [span(t1, { name: "root" }), span(t1, { startTime: at(5), endTime: at(30) }), span(t2, { statusCode: 1 })];
    expect(await record(batch, { namespace: "rec", session: s.id })).toEqual({ recorded: 3, duplicate: 0, tracesCreated: 2 });
    const before = await traceRow(t1);

    expect(await record(batch, { namespace: "rec", session: s.id })).toEqual({ recorded: 0, duplicate: 3, tracesCreated: 0 });
    // A retry with changed values is still the same span: nothing moves.
    const changed = { ...batch[1], endTime: at(500), statusCode: 2 };
    const extra = span(t1, { startTime: at(1), endTime: at(2) });
    expect(await record([batch[0], changed, extra], { namespace: "rec", session: s.id })).toEqual({ recorded: 1, duplicate: 2, tracesCreated: 0 });
    expect(await traceRow(t1)).toMatchObject({ ...before, span_count: 3 });
    // The same span twice in one batch.
    const twice = span(t2, { startTime: at(3) });
    expect(await record([twice, { ...twice }], { namespace: "rec", session: s.id })).toEqual({ recorded: 1, duplicate: 1, tracesCreated: 0 });

    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM spans s JOIN traces t ON t.namespace_id = s.namespace_id AND t.id = s.trace_id WHERE t.session_id = $1", [s.uuid]);
    expect(n).toBe(5);
    const [{ sum }] = await ctx.db.sql("SELECT sum(span_count)::int AS sum FROM traces WHERE session_id = $1", [s.uuid]);
    expect(sum).toBe(5);
    expect(await stats(s.id)).toMatchObject({ traceCount: 2, spanCount: 5 });
  });

  it("keeps the first of a span sent twice to a new trace, and sums a batch of new and existing traces", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "mixed" }));
    const [fresh, old] = [traceHex(), traceHex()];
    await record([span(old, { name: "old-root", startTime: at(10), endTime: at(20) })], { namespace: "rec", session: s.id });
    const twice = span(fresh, { name: "first", startTime: at(5), endTime: at(40), statusCode: 1 });
    const root = span(fresh, { name: "fresh-root", startTime: at(2), endTime: at(30) });
    const child = span(fresh, { parentSpanId: root.spanId, name: "child", startTime: at(1), endTime: at(90) });
    const later = span(old, { parentSpanId: "0123456789abcdef", startTime: at(0), endTime: at(50), statusCode: 2 });
    const result = await record([twice, root, { ...twice, name: "second", endTime: at(900), statusCode: 2 }, later, child, { ...later }], { namespace: "rec", session: s.id });
    expect(result).toEqual({ recorded: 4, duplicate: 2, tracesCreated: 1 });
    // The new trace's summary counts each span once, the first copy of the one sent twice.
    expect(await traceRow(fresh)).toMatchObject({ session_id: s.uuid, root_name: "fresh-root", span_count: 3, start_time: at(1), end_time: at(90), status_code: 1 });
    expect((await spanRows(fresh)).find((r) => r.otel_span_id === twice.spanId)).toMatchObject({ name: "first", end_time: at(40), status_code: 1 });
    expect(await traceRow(old)).toMatchObject({ root_name: "old-root", span_count: 2, start_time: at(0), end_time: at(50), status_code: 2 });
    expect(await stats(s.id)).toMatchObject({ traceCount: 2, spanCount: 5 });
  });

  it("creates a trace once and counts every span under concurrent batches", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "race" }));
    const t = traceHex();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => record(Array.from({ length: 5 }, (_, j) => span(t, { startTime: at(i * 10 + j), endTime: at(i * 10 + j + 1) })), { namespace: "rec", session: s.id })));
    expect(results.reduce((a, r) => a + r.tracesCreated, 0)).toBe(1);
    expect(results.reduce((a, r) => a + r.recorded, 0)).toBe(40);
    expect(await traceRow(t)).toMatchObject({ span_count: 40, start_time: at(0), end_time: at(75) });
    expect((await spanRows(t)).length).toBe(40);
    expect(await stats(s.id)).toMatchObject({ traceCount: 1, spanCount: 40 });
  });

  it("keeps a trace with the session of its first span", async () => {
    const first = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "owner" }));
    const other = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "latecomer" }));
    const t = traceHex();
    await record([span(t)], { namespace: "rec", session: first.id });
    expect(await record([span(t)], { namespace: "rec", session: other.id })).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 0 });
    expect((await traceRow(t)).session_id).toBe(first.uuid);
    expect(await stats(first.id)).toMatchObject({ traceCount: 1, spanCount: 2 });
    expect(await stats(other.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
  });

  it("refuses cancelled and soft-deleted sessions with PreconditionError and unknown ones with NotFoundError, storing nothing", async () => {
    const cancelled = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "cancelled" }));
    await ctx.sessions.cancel(byId(cancelled.id));
    const deleted = await ctx.sessions.create(newSession({ namespace: "rec", sessionId: "deleted" }));
    await ctx.sessions.softDelete(byId(deleted.id));
    const before = await rowCounts();
    await expect(record([span(traceHex())], { namespace: "rec", session: cancelled.id })).rejects.toThrow(PreconditionError);
    await expect(record([span(traceHex())], { namespace: "rec", sessionId: "cancelled" })).rejects.toThrow(PreconditionError);
    await expect(record([span(traceHex())], { namespace: "rec", session: deleted.id })).rejects.toThrow(PreconditionError);
    await expect(record([span(traceHex())], { namespace: "rec", sessionId: "never-created" })).rejects.toThrow(NotFoundError);
    await expect(record([span(traceHex())], { namespace: "rec", session: encodeSessionId(cancelled.namespaceId, randomUUID()) })).rejects.toThrow(NotFoundError);
    await expect(record([span(traceHex())], { namespace: "other", session: cancelled.id })).rejects.toThrow(NotFoundError);
    // A live session of another namespace that exists: its id, or its uuid under this namespace's uuid.
    const elsewhere = await ctx.sessions.create(newSession({ namespace: "rec-elsewhere", sessionId: "live" }));
    await expect(record([span(traceHex())], { namespace: "rec", session: elsewhere.id })).rejects.toThrow(`session ${elsewhere.id} not found in namespace "rec"`);
    await expect(record([span(traceHex())], { namespace: "rec", session: encodeSessionId(cancelled.namespaceId, elsewhere.uuid) })).rejects.toThrow(NotFoundError);
    await expect(record([span(traceHex())], { namespace: "rec", session: Buffer.from(`Session:${elsewhere.uuid}`).toString("base64url") })).rejects.toThrow(NotFoundError);
    expect(await stats(elsewhere.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
    expect(await rowCounts()).toEqual(before);
    expect(await stats(cancelled.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
  });
});

describe("session counters and cascades", () => {
  it("follows RecordSpans and DeleteTraces in trace_count and span_count", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "count", sessionId: "c1" }));
    const [t1, t2] = [traceHex(), traceHex()];
    expect(await stats(s.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
    await record([span(t1), span(t1), span(t1)], { namespace: "count", session: s.id });
    expect(await stats(s.id)).toMatchObject({ traceCount: 1, spanCount: 3 });
    await record([span(t2), span(t2), span(t1)], { namespace: "count", session: s.id });
    expect(await stats(s.id)).toMatchObject({ traceCount: 2, spanCount: 6 });
    expect(await ctx.services.tracing.delete("count", [t1])).toEqual({ traces: 1, spans: 4, annotations: 0 });
    expect(await stats(s.id)).toMatchObject({ traceCount: 1, spanCount: 2 });
    expect(await ctx.services.tracing.delete("count", [t2, t1, t2])).toEqual({ traces: 1, spans: 2, annotations: 0 });
    expect(await stats(s.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
  });

  /** A session in `namespace` holding 2 traces (3 + 2 spans) and 3 annotations (session, trace, span). */
  async function populated(namespace: string, sessionId: string) {
    const s = await ctx.sessions.create(newSession({ namespace, sessionId }));
    const [t1, t2] = [traceHex(), traceHex()];
    const sp = span(t1);
    await record([sp, span(t1), span(t1), span(t2), span(t2)], { namespace, session: s.id });
    await annotate({ kind: "session", id: s.id }, { namespace });
    await annotate({ kind: "trace", traceId: t2 }, { namespace });
    await annotate({ kind: "span", traceId: t1, spanId: sp.spanId }, { namespace });
    const traceUuids = (await ctx.db.sql("SELECT id FROM traces WHERE session_id = $1", [s.uuid])).map((r) => r.id as string);
    expect(traceUuids).toHaveLength(2);
    return { s, traceUuids };
  }

  /** Rows left under a session and its traces. */
  async function leftOf(sessionUuid: string, traceUuids: string[]) {
    const [r] = await ctx.db.sql(
      `SELECT (SELECT count(*)::int FROM sessions WHERE id = $1) AS sessions,
              (SELECT count(*)::int FROM traces WHERE session_id = $1 OR id = ANY($2::uuid[])) AS traces,
              (SELECT count(*)::int FROM spans WHERE trace_id = ANY($2::uuid[])) AS spans,
              (SELECT count(*)::int FROM annotations WHERE session_id = $1 OR trace_id = ANY($2::uuid[])) AS annotations`,
      [sessionUuid, traceUuids],
    );
    return r;
  }

  it("DeleteSession reports the traces, spans and annotations that went with the session and leaves none behind", async () => {
    const { s, traceUuids } = await populated("cascade", "doomed");
    const bystander = await populated("cascade", "bystander");
    const loose = traceHex();
    await record([span(loose)], { namespace: "cascade" });
    expect(await annotationCount(s.uuid)).toBe(3);
    expect(await leftOf(s.uuid, traceUuids)).toEqual({ sessions: 1, traces: 2, spans: 5, annotations: 3 });

    const { deleted } = await ctx.sessions.delete(byId(s.id), "");
    expect(deleted).toMatchObject({ traces: 2, spans: 5, annotations: 3 });
    expect(await leftOf(s.uuid, traceUuids)).toEqual({ sessions: 0, traces: 0, spans: 0, annotations: 0 });
    expect(await leftOf(bystander.s.uuid, bystander.traceUuids)).toEqual({ sessions: 1, traces: 2, spans: 5, annotations: 3 });
    expect((await traceRow(loose)).span_count).toBe(1);
  });

  it("BulkDeleteSessions reports the same counts per session and empties the child tables", async () => {
    const one = await populated("cascade-bulk", "one");
    const two = await populated("cascade-bulk", "two");
    const events: BulkDeleteEvent[] = [];
    const input = { namespace: "cascade-bulk", selector: { kind: "ids" as const, values: [one.s.id, two.s.id] }, dryRun: false, purgeMemories: false, batchSize: 0 };
    for await (const e of ctx.sessions.bulkDelete(input, new AbortController().signal)) events.push(e);
    const results = events.flatMap((e) => (e.type === "progress" ? e.results : []));
    expect(results.map((r) => [r.id, r.outcome])).toEqual([
      [one.s.id, "deleted"],
      [two.s.id, "deleted"],
    ]);
    for (const r of results) expect(r.counts).toMatchObject({ traces: 2, spans: 5, annotations: 3 });
    expect(events.at(-1)).toMatchObject({ type: "summary", deleted: { traces: 4, spans: 10, annotations: 6 } });
    expect(await leftOf(one.s.uuid, one.traceUuids)).toEqual({ sessions: 0, traces: 0, spans: 0, annotations: 0 });
    expect(await leftOf(two.s.uuid, two.traceUuids)).toEqual({ sessions: 0, traces: 0, spans: 0, annotations: 0 });
  });
});

describe("ListTraces", () => {
  it("lists traces recorded under no session only with without_session, never in a session's list", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "loose", sessionId: "s" }));
    const [inSession, loose1, loose2] = [traceHex(), traceHex(), traceHex()];
    await record([span(inSession)], { namespace: "loose", session: s.id });
    expect(await record([span(loose1, { name: "free" })], { namespace: "loose" })).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 1 });
    await sleep(5);
    await record([span(loose2)], { namespace: "loose" });
    expect((await traceRow(loose1)).session_id).toBeNull();

    const without = await listTraces({ namespace: "loose", withoutSession: true });
    expect(without.traces.map((t) => t.traceId)).toEqual([loose2, loose1]);
    expect(without.traces[1]).toMatchObject({ sessionUuid: null, rootSpanName: "free", spanCount: 1 });
    expect((await listTraces({ namespace: "loose", session: s.id })).traces.map((t) => t.traceId)).toEqual([inSession]);
    expect((await listTraces({ namespace: "loose", sessionId: "s" })).traces.map((t) => t.traceId)).toEqual([inSession]);
    expect((await listTraces({ namespace: "elsewhere", withoutSession: true })).traces).toEqual([]);
    await expect(listTraces({ namespace: "loose" })).rejects.toMatchObject({ name: "InvalidInputError", field: "session" });
    await expect(listTraces({ namespace: "loose", sessionId: "s", withoutSession: true })).rejects.toMatchObject({ name: "InvalidInputError", field: "without_session" });
    await expect(listTraces({ namespace: "loose", sessionId: "nobody" })).rejects.toThrow(NotFoundError);
  });

  it("pages newest first and rejects a page token from another listing, naming page_token", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "paging", sessionId: "p" }));
    const other = await ctx.sessions.create(newSession({ namespace: "paging", sessionId: "q" }));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(traceHex());
      await record([span(ids[i])], { namespace: "paging", session: s.id });
      await record([span(traceHex())], { namespace: "paging", session: other.id });
      await sleep(5);
    }
    const seen: string[] = [];
    const tokens: string[] = [];
    let pageToken = "";
    do {
      const page = await listTraces({ namespace: "paging", session: s.id, pageSize: 1, pageToken });
      expect(page.traces).toHaveLength(1);
      seen.push(page.traces[0].traceId);
      pageToken = page.nextPageToken;
      if (pageToken) tokens.push(pageToken);
    } while (pageToken && seen.length < 10);
    expect(seen).toEqual([ids[2], ids[1], ids[0]]);
    expect(tokens).toHaveLength(2);

    await expect(listTraces({ namespace: "paging", session: other.id, pageSize: 1, pageToken: tokens[0] })).rejects.toMatchObject({ name: "InvalidInputError", field: "page_token" });
    await expect(listTraces({ namespace: "paging", withoutSession: true, pageSize: 1, pageToken: tokens[0] })).rejects.toMatchObject({ name: "InvalidInputError", field: "page_token" });
    await expect(listTraces({ namespace: "paging", session: s.id, pageToken: `${tokens[0]}x` })).rejects.toMatchObject({ name: "InvalidInputError", field: "page_token" });
    await expect(listTraces({ namespace: "paging", session: s.id, pageSize: 1001 })).rejects.toMatchObject({ name: "InvalidInputError", field: "page_size" });
  });
});

describe("GetTrace", () => {
  it("returns spans as a tree: parents before children, siblings by start time, orphans as roots at depth 0", async () => {
    const t = traceHex();
    const id = { root: spanHex(), a: spanHex(), a1: spanHex(), b: spanHex(), b1: spanHex(), b2: spanHex(), orphan: spanHex(), orphanChild: spanHex() };
    const missingParent = spanHex();
    const spans = {
      root: span(t, { spanId: id.root, name: "root", startTime: at(0), endTime: at(100) }),
      a: span(t, { spanId: id.a, parentSpanId: id.root, name: "a", startTime: at(30), endTime: at(60) }),
      a1: span(t, { spanId: id.a1, parentSpanId: id.a, name: "a1", startTime: at(40), endTime: at(50) }),
      b: span(t, { spanId: id.b, parentSpanId: id.root, name: "b", startTime: at(10), endTime: at(29) }),
      b1: span(t, { spanId: id.b1, parentSpanId: id.b, name: "b1", startTime: at(15), endTime: at(16) }),
      b2: span(t, { spanId: id.b2, parentSpanId: id.b, name: "b2", startTime: at(25), endTime: at(26) }),
      orphan: span(t, { spanId: id.orphan, parentSpanId: missingParent, name: "orphan", startTime: at(5), endTime: at(7) }),
      orphanChild: span(t, { spanId: id.orphanChild, parentSpanId: id.orphan, name: "orphan.child", startTime: at(6), endTime: at(7) }),
    };
    await record([spans.b2, spans.orphanChild, spans.a1, spans.orphan]);
    expect((await traceRow(t)).root_name).toBe("");
    await record([spans.a, spans.b1, spans.root, spans.b]);

    const got = await ctx.services.tracing.get("", t);
    expect(got.spans.map((s) => [s.span.name, s.depth])).toEqual([
      ["root", 0],
      ["b", 1],
      ["b1", 2],
      ["b2", 2],
      ["a", 1],
      ["a1", 2],
      ["orphan", 0],
      ["orphan.child", 1],
    ]);
    expect(got.trace).toMatchObject({ traceId: t, rootSpanName: "root", spanCount: 8, startTime: at(0), endTime: at(100) });
    expect(got.spans[6].span.parentSpanId).toBe(missingParent);
  });

  it("gives back every field of a span as recorded", async () => {
    const t = traceHex();
    const full = span(t, {
      spanId: spanHex(),
      parentSpanId: spanHex(),
      name: "llm.call",
      kind: 3,
      startTime: at(1),
      endTime: at(1234),
      statusCode: 2,
      statusMessage: "rate limited",
      attributes: { model: "m-1", tokens: { input: 12, output: 3 }, tags: ["a", "b"], cached: false },
      events: [
        { name: "first.token", time: at(200), attributes: { ms: 199 } },
        { name: "done", time: at(1234), attributes: {} },
      ],
    });
    await record([full]);
    const { spans } = await ctx.services.tracing.get("", t.toUpperCase());
    expect(spans).toEqual([{ span: full, depth: 0 }]);
  });

  it("refuses a malformed trace id naming trace_id and an unknown one with NotFoundError", async () => {
    await expect(ctx.services.tracing.get("", "xyz")).rejects.toMatchObject({ name: "InvalidInputError", field: "trace_id" });
    await expect(ctx.services.tracing.get("", traceHex())).rejects.toThrow(NotFoundError);
  });
});

describe("Annotate and ListAnnotations", () => {
  it("annotates a session by global id and by session_id, a trace and a span, counting each new one on the session", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "notes", sessionId: "n1" }));
    const t = traceHex();
    const sp = span(t);
    await record([sp, span(t)], { namespace: "notes", session: s.id });
    expect(await annotationCount(s.uuid)).toBe(0);

    const bySession = await annotate({ kind: "session", id: s.id }, { namespace: "notes", name: "helpfulness", annotatorKind: "llm", label: "helpful", score: 0.8, explanation: "answered", metadata: { judge: "m" } });
    expect(bySession.created).toBe(true);
    expect(bySession.annotation).toMatchObject({ target: { kind: "session", sessionUuid: s.uuid }, name: "helpfulness", annotatorKind: "llm", label: "helpful", score: 0.8, explanation: "answered", metadata: { judge: "m" }, identifier: "" });
    expect(await annotationCount(s.uuid)).toBe(1);
    const byCallerId = await annotate({ kind: "sessionId", sessionId: "n1" }, { namespace: "notes", annotatorKind: "code" });
    expect(byCallerId.annotation).toMatchObject({ target: { kind: "session", sessionUuid: s.uuid }, annotatorKind: "code", score: null });
    expect(await annotationCount(s.uuid)).toBe(2);
    const onTrace = await annotate({ kind: "trace", traceId: t }, { namespace: "notes", label: "ok" });
    expect(onTrace.annotation.target).toEqual({ kind: "trace", traceId: t });
    expect(await annotationCount(s.uuid)).toBe(3);
    const onSpan = await annotate({ kind: "span", traceId: t, spanId: sp.spanId }, { namespace: "notes", score: 0 });
    expect(onSpan.annotation).toMatchObject({ target: { kind: "span", traceId: t, spanId: sp.spanId }, score: 0 });
    expect(await annotationCount(s.uuid)).toBe(4);

    const stored = await ctx.db.sql("SELECT target_kind, session_id, trace_id, span_id FROM annotations WHERE id = ANY($1::uuid[]) ORDER BY create_time", [[bySession, byCallerId, onTrace, onSpan].map((a) => a.annotation.uuid)]);
    expect(stored.map((r) => r.target_kind)).toEqual(["session", "session", "trace", "span"]);
    expect(stored.every((r) => r.session_id === s.uuid)).toBe(true);

    expect((await listAnnotations({ kind: "session", id: s.id }, { namespace: "notes" })).annotations.map((a) => a.uuid)).toEqual([byCallerId.annotation.uuid, bySession.annotation.uuid]);
    expect((await listAnnotations({ kind: "sessionId", sessionId: "n1" }, { namespace: "notes" })).annotations).toHaveLength(2);
    expect((await listAnnotations({ kind: "trace", traceId: t }, { namespace: "notes" })).annotations.map((a) => a.uuid)).toEqual([onTrace.annotation.uuid]);
    expect((await listAnnotations({ kind: "span", traceId: t, spanId: sp.spanId }, { namespace: "notes" })).annotations.map((a) => a.uuid)).toEqual([onSpan.annotation.uuid]);
  });

  it("updates an annotation annotated again with the same identifier, and adds a row for each repeat without one", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "notes", sessionId: "n2" }));
    const t = traceHex();
    await record([span(t)], { namespace: "notes", session: s.id });
    const target: AnnotationTargetInput = { kind: "trace", traceId: t };
    const count = async () => (await ctx.db.sql("SELECT count(*)::int AS n FROM annotations WHERE trace_id = (SELECT id FROM traces WHERE otel_trace_id = $1)", [t]))[0].n;

    const first = await annotate(target, { namespace: "notes", identifier: "run-1", label: "wrong", score: 0.1 });
    expect(first.created).toBe(true);
    await sleep(5);
    const again = await annotate(target, { namespace: "notes", identifier: "run-1", label: "right", score: 0.9, annotatorKind: "llm", explanation: "second look" });
    expect(again.created).toBe(false);
    expect(again.annotation).toMatchObject({ uuid: first.annotation.uuid, label: "right", score: 0.9, annotatorKind: "llm", explanation: "second look", identifier: "run-1", createTime: first.annotation.createTime });
    expect(again.annotation.updateTime.getTime()).toBeGreaterThan(first.annotation.updateTime.getTime());
    expect(await count()).toBe(1);
    expect(await annotationCount(s.uuid)).toBe(1);
    const [row] = await ctx.db.sql("SELECT label, score FROM annotations WHERE id = $1", [first.annotation.uuid]);
    expect(row).toEqual({ label: "right", score: 0.9 });

    // Another identifier, or another name, is another annotation.
    expect((await annotate(target, { namespace: "notes", identifier: "run-2" })).created).toBe(true);
    expect((await annotate(target, { namespace: "notes", identifier: "run-1", name: "tone" })).created).toBe(true);
    expect(await count()).toBe(3);
    // Without an identifier, every call adds one.
    const plain1 = await annotate(target, { namespace: "notes", label: "x" });
    const plain2 = await annotate(target, { namespace: "notes", label: "x" });
    expect([plain1.created, plain2.created]).toEqual([true, true]);
    expect(plain1.annotation.uuid).not.toBe(plain2.annotation.uuid);
    expect(await count()).toBe(5);
    expect(await annotationCount(s.uuid)).toBe(5);
  });

  it("lists a target's annotations newest first, page by page", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "notes", sessionId: "n3" }));
    const t = traceHex();
    const sp = span(t);
    await record([sp], { namespace: "notes", session: s.id });
    const target: AnnotationTargetInput = { kind: "span", traceId: t, spanId: sp.spanId };
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push((await annotate(target, { namespace: "notes", label: `l${i}` })).annotation.uuid);
      await annotate({ kind: "session", id: s.id }, { namespace: "notes" });
      await sleep(5);
    }
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await listAnnotations(target, { namespace: "notes", pageSize: 2, pageToken });
      seen.push(...page.annotations.map((a) => a.uuid));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...made].reverse());
    const first = await listAnnotations(target, { namespace: "notes", pageSize: 2 });
    await expect(listAnnotations({ kind: "session", id: s.id }, { namespace: "notes", pageSize: 2, pageToken: first.nextPageToken })).rejects.toMatchObject({ name: "InvalidInputError", field: "page_token" });
    await expect(listAnnotations({ kind: "none" }, { namespace: "notes" })).rejects.toMatchObject({ name: "InvalidInputError", field: "target" });
    await expect(listAnnotations({ kind: "trace", traceId: traceHex() }, { namespace: "notes" })).rejects.toThrow(NotFoundError);
  });

  it("DeleteTraces removes the trace's own and its spans' annotations, returns the counts and lowers annotation_count", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "notes", sessionId: "n4" }));
    const [t, kept] = [traceHex(), traceHex()];
    const [sp1, sp2] = [span(t), span(t)];
    await record([sp1, sp2, span(t), span(kept)], { namespace: "notes", session: s.id });
    await annotate({ kind: "trace", traceId: t }, { namespace: "notes" });
    await annotate({ kind: "span", traceId: t, spanId: sp1.spanId }, { namespace: "notes" });
    await annotate({ kind: "span", traceId: t, spanId: sp2.spanId }, { namespace: "notes", identifier: "i" });
    await annotate({ kind: "trace", traceId: kept }, { namespace: "notes" });
    await annotate({ kind: "session", id: s.id }, { namespace: "notes" });
    expect(await annotationCount(s.uuid)).toBe(5);
    const traceUuid = (await traceRow(t)).id;

    expect(await ctx.services.tracing.delete("notes", [t, traceHex()])).toEqual({ traces: 1, spans: 3, annotations: 3 });
    const [left] = await ctx.db.sql(
      "SELECT (SELECT count(*)::int FROM traces WHERE id = $1) AS traces, (SELECT count(*)::int FROM spans WHERE trace_id = $1) AS spans, (SELECT count(*)::int FROM annotations WHERE trace_id = $1) AS annotations, (SELECT count(*)::int FROM annotations WHERE session_id = $2) AS remaining",
      [traceUuid, s.uuid],
    );
    expect(left).toEqual({ traces: 0, spans: 0, annotations: 0, remaining: 2 });
    expect(await annotationCount(s.uuid)).toBe(2);
    expect(await stats(s.id)).toMatchObject({ traceCount: 1, spanCount: 1 });
    await expect(ctx.services.tracing.get("notes", t)).rejects.toThrow(NotFoundError);
    expect(await ctx.services.tracing.delete("notes", [t])).toEqual({ traces: 0, spans: 0, annotations: 0 });
  });
});

describe("concurrent writers", () => {
  /** Waits until a statement matching `pattern` (or one of them) is waiting for a lock in this database. */
  async function blockedOn(pattern: string | string[]) {
    const patterns = typeof pattern === "string" ? [pattern] : pattern;
    for (let i = 0; i < 500; i++) {
      // On Citus the wait happens on a worker, under the shard's name: citus_lock_waits shows the
      // statement as the coordinator received it.
      const [{ n }] = await ctx.db.sql(
        inject("database").kind === "citus"
          ? "SELECT count(*)::int AS n FROM citus_lock_waits WHERE blocked_statement LIKE ANY ($1)"
          : "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ANY ($1)",
        [patterns],
      );
      if (n > 0) return;
      await sleep(10);
    }
    throw new Error(`no statement like ${patterns.join(" or ")} is waiting for a lock`);
  }

  /** A transaction on its own connection, to hold row locks while services run. */
  async function holding(sql: string, params: unknown[], work: () => Promise<void>) {
    const runner = ctx.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      await runner.query(sql, params);
      await work();
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  }

  it("DeleteTraces counts an annotation committed while it waits for the trace, and annotation_count stays exact", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "race-notes", sessionId: "r" }));
    const t = traceHex();
    await record([span(t)], { namespace: "race-notes", session: s.id });
    await annotate({ kind: "trace", traceId: t }, { namespace: "race-notes" });
    let annotating!: ReturnType<typeof annotate>;
    let deleting!: ReturnType<typeof ctx.services.tracing.delete>;
    // Hold the session row (FOR SHARE) so that Annotate stops at its counter update, after its insert
    // has key-share locked the trace; DeleteTraces then waits for that lock.
    await holding("SELECT 1 FROM sessions WHERE namespace_id = $1 AND id = $2 FOR SHARE", [s.namespaceId, s.uuid], async () => {
      annotating = annotate({ kind: "trace", traceId: t }, { namespace: "race-notes" });
      await blockedOn("UPDATE sessions SET annotation_count%");
      deleting = ctx.services.tracing.delete("race-notes", [t]);
      await blockedOn("SELECT t.id, t.session_id, t.span_count%");
    });
    const [annotated, deleted] = await Promise.all([annotating, deleting]);
    expect(annotated.created).toBe(true);
    const [{ rows }] = await ctx.db.sql("SELECT count(*)::int AS rows FROM annotations WHERE session_id = $1", [s.uuid]);
    expect({ deleted, rows, annotationCount: await annotationCount(s.uuid) }).toEqual({ deleted: { traces: 1, spans: 1, annotations: 2 }, rows: 0, annotationCount: 0 });
  });

  it("RecordSpans refuses a session cancelled while the call waits for it, with PreconditionError, storing nothing", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "race-cancel", sessionId: "r" }));
    const t = traceHex();
    let recording!: Promise<unknown>;
    // A cancel in progress: the test's transaction holds the session row; RecordSpans waits for that
    // row in its first statement; the cancel commits first.
    const runner = ctx.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      await runner.query("SELECT 1 FROM sessions WHERE namespace_id = $1 AND id = $2 FOR UPDATE", [s.namespaceId, s.uuid]);
      recording = record([span(t)], { namespace: "race-cancel", session: s.id }).then(
        (v) => v,
        (err: unknown) => err,
      );
      // The call itself, or (on a Citus worker, where the function runs) its statement that locks the session.
      await blockedOn(["%sessiond_record_spans(%", "%FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = p_session FOR UPDATE%"]);
      await runner.query("UPDATE sessions SET state = 'cancelled' WHERE namespace_id = $1 AND id = $2", [s.namespaceId, s.uuid]);
      await runner.commitTransaction();
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
    expect(await recording).toBeInstanceOf(PreconditionError);
    expect(await ctx.db.sql("SELECT 1 FROM traces WHERE otel_trace_id = $1", [t])).toEqual([]);
    expect(await stats(s.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
  });

  it("Annotate reports NOT_FOUND, not a database error, for a trace deleted while the call waits for it", async () => {
    const t = traceHex();
    await record([span(t)], { namespace: "race-gone" });
    let annotating!: Promise<unknown>;
    // A delete in progress: the test's transaction holds the trace row; Annotate waits for it in its
    // target lookup; the delete commits first.
    const namespaceId = await namespaceIdOf(ctx.db.dataSource, "race-gone");
    const runner = ctx.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      await runner.query("SELECT 1 FROM traces WHERE namespace_id = $1 AND otel_trace_id = $2 FOR UPDATE", [namespaceId, t]);
      annotating = annotate({ kind: "trace", traceId: t }, { namespace: "race-gone" }).then(
        (v) => v,
        (err: unknown) => err,
      );
      await blockedOn("%FROM traces WHERE namespace_id%FOR KEY SHARE%");
      await runner.query("DELETE FROM traces WHERE namespace_id = $1 AND otel_trace_id = $2", [namespaceId, t]);
      await runner.commitTransaction();
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
    expect(await annotating).toBeInstanceOf(NotFoundError);
    expect((await ctx.db.sql("SELECT count(*)::int AS n FROM annotations a JOIN namespaces ns ON ns.id = a.namespace_id WHERE ns.name = $1", ["race-gone"]))[0].n).toBe(0);
  });
});

describe("bad input", () => {
  const ok = (t: string) => span(t);
  const cases: [string, (t: string) => SpanInput[], string][] = [
    ["a trace id of 31 characters", (t) => [ok(t), span(t.slice(1))], "spans[1].trace_id"],
    ["a non-hex trace id", (t) => [ok(t), span(`${t.slice(1)}g`)], "spans[1].trace_id"],
    ["an all-zero trace id", (t) => [ok(t), span("0".repeat(32))], "spans[1].trace_id"],
    ["a span id of 15 characters", (t) => [ok(t), span(t, { spanId: spanHex().slice(1) })], "spans[1].span_id"],
    ["a non-hex span id", (t) => [ok(t), span(t, { spanId: "z".repeat(16) })], "spans[1].span_id"],
    ["an all-zero span id", (t) => [ok(t), span(t, { spanId: "0".repeat(16) })], "spans[1].span_id"],
    ["a malformed parent span id", (t) => [ok(t), span(t, { parentSpanId: "abc" })], "spans[1].parent_span_id"],
    ["an end before the start", (t) => [ok(t), span(t, { startTime: at(10), endTime: at(9) })], "spans[1].end_time"],
    ["a missing start time", (t) => [ok(t), span(t, { startTime: undefined })], "spans[1].start_time"],
    ["a missing end time", (t) => [ok(t), span(t, { endTime: undefined })], "spans[1].end_time"],
    ["no spans", () => [], "spans"],
    ["more than 1000 spans", (t) => Array.from({ length: 1001 }, () => span(t)), "spans"],
    ["attributes over 32 KiB", (t) => [ok(t), span(t, { attributes: { big: "x".repeat(32 * 1024) } })], "spans[1].attributes"],
    ["more than 128 events", (t) => [ok(t), span(t, { events: Array.from({ length: 129 }, (_, i) => ({ name: `e${i}`, time: at(i), attributes: {} })) })], "spans[1].events"],
    ["a name over 1024 characters", (t) => [ok(t), span(t, { name: "n".repeat(1025) })], "spans[1].name"],
    ["an empty name", (t) => [ok(t), span(t, { name: "" })], "spans[1].name"],
  ];

  it.each(cases)("rejects %s naming the field, storing nothing", async (name, build, field) => {
    const s = await ctx.sessions.create(newSession({ namespace: "bad", sessionId: `bad ${name}` }));
    const t = traceHex();
    const before = await rowCounts();
    await expect(record(build(t), { namespace: "bad", session: s.id })).rejects.toMatchObject({ name: "InvalidInputError", field });
    expect(await rowCounts()).toEqual(before);
    expect(await ctx.db.sql("SELECT 1 FROM traces WHERE otel_trace_id = $1", [t])).toEqual([]);
    expect(await stats(s.id)).toMatchObject({ traceCount: 0, spanCount: 0 });
  });

  it("accepts the limits themselves: 1000 spans, a 1024-character name, 128 events", async () => {
    const t = traceHex();
    const spans = Array.from({ length: 1000 }, (_, i) => span(t, { startTime: at(i), endTime: at(i) }));
    spans[0] = { ...spans[0], name: "n".repeat(1024), events: Array.from({ length: 128 }, (_, i) => ({ name: `e${i}`, time: at(i), attributes: {} })) };
    expect(await record(spans)).toEqual({ recorded: 1000, duplicate: 0, tracesCreated: 1 });
    expect(await traceRow(t)).toMatchObject({ span_count: 1000, start_time: at(0), end_time: at(999) });
  });

  it("refuses annotations whose target does not exist with NotFoundError, adding nothing", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "bad-notes", sessionId: "s" }));
    const t = traceHex();
    await record([span(t)], { namespace: "bad-notes", session: s.id });
    const theirs = traceHex();
    const theirSpan = span(theirs);
    await record([theirSpan], { namespace: "someone-else" });
    const before = await rowCounts();
    const targets: AnnotationTargetInput[] = [
      { kind: "trace", traceId: traceHex() },
      { kind: "span", traceId: t, spanId: spanHex() },
      { kind: "span", traceId: traceHex(), spanId: spanHex() },
      { kind: "session", id: encodeSessionId(s.namespaceId, randomUUID()) },
      { kind: "session", id: (await ctx.sessions.create(newSession({ namespace: "bad-notes-elsewhere" }))).id },
      { kind: "sessionId", sessionId: "nobody" },
      { kind: "trace", traceId: theirs },
      { kind: "span", traceId: theirs, spanId: theirSpan.spanId },
    ];
    for (const target of targets) await expect(annotate(target, { namespace: "bad-notes" }), JSON.stringify(target)).rejects.toThrow(NotFoundError);
    // A namespace that does not exist at all.
    await expect(annotate({ kind: "trace", traceId: t }, { namespace: "no-such-namespace" })).rejects.toThrow(NotFoundError);
    expect(await rowCounts()).toEqual(before);
    expect(await annotationCount(s.uuid)).toBe(0);
  });

  it("refuses annotations without annotator kind, with a score that is not finite, without target or name, naming the field", async () => {
    const t = traceHex();
    await record([span(t)]);
    const target: AnnotationTargetInput = { kind: "trace", traceId: t };
    const before = await rowCounts();
    await expect(annotate(target, { annotatorKind: undefined })).rejects.toMatchObject({ name: "InvalidInputError", field: "annotator_kind" });
    await expect(annotate(target, { score: Number.NaN })).rejects.toMatchObject({ name: "InvalidInputError", field: "score" });
    await expect(annotate(target, { score: Number.POSITIVE_INFINITY })).rejects.toMatchObject({ name: "InvalidInputError", field: "score" });
    await expect(annotate({ kind: "none" })).rejects.toMatchObject({ name: "InvalidInputError", field: "target" });
    await expect(annotate(target, { name: "" })).rejects.toMatchObject({ name: "InvalidInputError", field: "name" });
    await expect(annotate({ kind: "trace", traceId: "abc" })).rejects.toMatchObject({ name: "InvalidInputError", field: "target.trace_id" });
    await expect(annotate({ kind: "span", traceId: t, spanId: "abc" })).rejects.toMatchObject({ name: "InvalidInputError", field: "target.span.span_id" });
    expect(await rowCounts()).toEqual(before);
  });

  it("refuses DeleteTraces with no ids, more than 1000, or a malformed one, naming the field and deleting nothing", async () => {
    const t = traceHex();
    await record([span(t)]);
    const before = await rowCounts();
    await expect(ctx.services.tracing.delete("", [])).rejects.toMatchObject({ name: "InvalidInputError", field: "trace_ids" });
    await expect(ctx.services.tracing.delete("", [t, ...Array.from({ length: 1000 }, traceHex)])).rejects.toMatchObject({ name: "InvalidInputError", field: "trace_ids" });
    await expect(ctx.services.tracing.delete("", [t, "nope"])).rejects.toMatchObject({ name: "InvalidInputError", field: "trace_ids[1]" });
    expect(await rowCounts()).toEqual(before);
  });
});

describe("namespaces", () => {
  it("hides a trace of namespace A from namespace B: GetTrace does not find it, DeleteTraces deletes nothing", async () => {
    await ctx.sessions.create(newSession({ namespace: "ns-b", sessionId: "exists" }));
    const t = traceHex();
    await record([span(t, { name: "a-root" })], { namespace: "ns-a" });
    await expect(ctx.services.tracing.get("ns-b", t)).rejects.toThrow(NotFoundError);
    await expect(ctx.services.tracing.get("ns-never", t)).rejects.toThrow(NotFoundError);
    expect(await ctx.services.tracing.delete("ns-b", [t])).toEqual({ traces: 0, spans: 0, annotations: 0 });
    expect((await listTraces({ namespace: "ns-b", withoutSession: true })).traces).toEqual([]);
    expect((await ctx.services.tracing.get("ns-a", t)).trace.spanCount).toBe(1);

    // The same trace id in B is another trace.
    expect(await record([span(t, { name: "b-root" })], { namespace: "ns-b" })).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 1 });
    expect((await ctx.services.tracing.get("ns-b", t)).trace.rootSpanName).toBe("b-root");
    expect(await ctx.services.tracing.delete("ns-b", [t])).toEqual({ traces: 1, spans: 1, annotations: 0 });
    expect((await ctx.services.tracing.get("ns-a", t)).trace).toMatchObject({ rootSpanName: "a-root", spanCount: 1 });
  });
});

describe("OTLP session creation", () => {
  it("re-creates a namespace that another process deleted after this one cached its id", async () => {
    const ns = "otlp-gone";
    const session = (id: string) => ctx.services.tracing.record({ namespace: ns, session: "", sessionId: id, spans: [span(traceHex())] }, { createSession: true });
    await session("first");
    // As AdminService.DeleteNamespace in another server process: this process's cached id goes stale.
    await ctx.db.sql("DELETE FROM namespaces WHERE name = $1", [ns]);
    await expect(session("second")).resolves.toMatchObject({ recorded: 1 });
    const [row] = await ctx.db.sql("SELECT count(*)::int AS n FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1", [ns]);
    expect(row.n).toBe(1);
  });
});
