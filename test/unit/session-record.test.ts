/**
 * The checks an imported SessionRecord goes through (domain/session-record.ts): each rule names the
 * field from the record, and the links inside the record (speakers, traces, spans) are enforced.
 */
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/domain/errors.js";
import { encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { checkRecord, type RecordInput } from "../../src/domain/session-record.js";

const NS = "11111111-1111-4111-8111-111111111111";
const SESSION = "22222222-2222-4222-8222-222222222222";
const TRACE = "33333333-3333-4333-8333-333333333333";
const T = new Date("2026-01-01T00:00:00Z");
const TRACE_ID = "0123456789abcdef0123456789abcdef";

function record(): RecordInput {
  return {
    session: {
      id: encodeSessionId(NS, SESSION),
      sessionId: "s-1",
      namespace: "demo",
      user: "u",
      workflow: { id: "", version: "" },
      data: {},
      labels: {},
      state: "active",
      createTime: T,
      updateTime: T,
      lastActivityTime: T,
      deleteTime: null,
      expireTime: T,
      maxRequestsPerMinute: 10,
      lastTurnSeq: 0,
      integrationCount: 1,
      memoriesExtracted: 0,
    },
    participants: [{ participantId: "alice", kind: "user", displayName: "", metadata: {}, insights: [], lastIntegratedSeq: 0, bindTime: T, leaveTime: null }],
    turns: [
      { seq: 1, participantId: "alice", role: "user", content: "hi", toolCalls: [], metadata: {}, requestId: "", createTime: T },
      { seq: 2, participantId: "alice", role: "user", content: "again", toolCalls: [], metadata: {}, requestId: "", createTime: T },
    ],
    compactions: [{ firstSeq: 1, upToSeq: 1, turnsArchived: 1, summary: "s", summarizer: "caller", memoryIds: [], createTime: T }],
    traces: [
      {
        id: encodeGlobalId("Trace", TRACE),
        traceId: TRACE_ID,
        createTime: T,
        spans: [{ traceId: TRACE_ID, spanId: "0000000000000001", parentSpanId: "", name: "root", kind: 1, startTime: T, endTime: T, statusCode: 0, statusMessage: "", attributes: {}, events: [] }],
      },
    ],
    annotations: [
      {
        id: encodeGlobalId("Annotation", SESSION),
        target: { kind: "span", traceId: TRACE_ID, spanId: "0000000000000001" },
        name: "n",
        annotatorKind: "human",
        label: "",
        score: null,
        explanation: "",
        metadata: {},
        identifier: "",
        createTime: T,
        updateTime: T,
      },
    ],
    memories: [],
  };
}

function fieldOf(r: RecordInput, source = "demo"): string | undefined {
  try {
    checkRecord(r, source);
    return undefined;
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    return err.message.split(":")[0];
  }
}

describe("checkRecord", () => {
  it("accepts a consistent record, archives turns up to the last compaction and keeps the last seq at least the last turn's", () => {
    const r = checkRecord(record(), "demo");
    expect(r.session.uuid).toBe(SESSION);
    expect(r.turns.map((t) => t.archived)).toEqual([true, false]);
    expect(r.session.lastTurnSeq).toBe(2);
    expect(r.traces[0].uuid).toBe(TRACE);
  });

  it("names the field that breaks a rule", () => {
    const cases: [string, (r: RecordInput) => void][] = [
      ["record.session.namespace", (r) => (r.session.namespace = "other")],
      ["record.session.id", (r) => (r.session.id = "nope")],
      ["record.session.session_id", (r) => (r.session.sessionId = "")],
      ["record.session.labels[\"bad key!\"]", (r) => (r.session.labels = { "bad key!": "v" })],
      ["record.participants[0].kind", (r) => (r.participants[0].kind = undefined)],
      ["record.turns[1].role", (r) => (r.turns[1].role = "Bad Role")],
      ["record.turns[1].seq", (r) => (r.turns[1].seq = 1)],
      ["record.turns[0].participant_id", (r) => (r.turns[0].participantId = "bob")],
      ["record.turns[0].content", (r) => (r.turns[0].content = "")],
      ["record.compactions[0].up_to_seq", (r) => (r.compactions[0].upToSeq = 9)],
      ["record.traces[0].spans[0].trace_id", (r) => (r.traces[0].spans[0].traceId = "f".repeat(32))],
      ["record.annotations[0].target.span", (r) => (r.annotations[0].target = { kind: "span", traceId: TRACE_ID, spanId: "0000000000000002" })],
      ["record.annotations[0].target.session", (r) => (r.annotations[0].target = { kind: "session", id: encodeSessionId(NS, TRACE) })],
      ["record.session.create_time", (r) => (r.session.createTime = undefined)],
    ];
    for (const [field, breakIt] of cases) {
      const r = record();
      breakIt(r);
      expect(fieldOf(r), field).toBe(field);
    }
  });
});
