import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { SessionState } from "../../gen/sessiond/v1/session_pb.js";
import { BulkDeleteOutcome, BulkDeleteSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import type { BulkCounters, BulkOutcome, BulkResult } from "../../src/domain/bulk-delete.js";
import { bulkEventToProto, selectorFromProto } from "../../src/handlers/bulk-delete-mapper.js";
import { invalidInput } from "./support/factories.js";

const COUNTERS: BulkCounters = { completed: 4, total: 10, deleted: 2, notFound: 1, invalid: 1, failed: 0 };
const COUNTS = { participants: 2, turns: 10, traces: 1, spans: 3, annotations: 1, archivedTurns: 4, compactions: 1 };
const asBigInts = (c: BulkCounters) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, BigInt(v)]));

function result(over: Partial<BulkResult> = {}): BulkResult {
  return { identifier: "U2Vzc2lvbjp4", id: "U2Vzc2lvbjp4", outcome: "deleted", counts: COUNTS, memories: 1, error: "", ...over };
}

describe("selectorFromProto", () => {
  it("maps global ids and caller session ids", () => {
    expect(selectorFromProto(create(BulkDeleteSessionsRequestSchema, { selector: { case: "ids", value: { values: ["a", "b"] } } }))).toEqual({ kind: "ids", values: ["a", "b"] });
    expect(selectorFromProto(create(BulkDeleteSessionsRequestSchema, { selector: { case: "sessionIds", value: { values: ["chat-1"] } } }))).toEqual({ kind: "sessionIds", values: ["chat-1"] });
  });

  it("maps a filter with include_deleted", () => {
    const req = create(BulkDeleteSessionsRequestSchema, { selector: { case: "filter", value: { filter: { user: "u", state: SessionState.CANCELLED }, includeDeleted: true } } });
    expect(selectorFromProto(req)).toEqual({ kind: "filter", filter: { user: "u", state: "cancelled", workflowId: undefined, labels: undefined, createTimeAfter: undefined, createTimeBefore: undefined }, includeDeleted: true });
  });

  it("gives kind none when no selector is set (the domain rejects it)", () => {
    expect(selectorFromProto(create(BulkDeleteSessionsRequestSchema))).toEqual({ kind: "none" });
  });

  it("names a bad filter field under filter.filter", () => {
    const req = create(BulkDeleteSessionsRequestSchema, { selector: { case: "filter", value: { filter: { state: 99 as SessionState } } } });
    expect(invalidInput(() => selectorFromProto(req)).field).toBe("filter.filter.state");
  });
});

describe("bulkEventToProto", () => {
  it("maps started with its total, dry-run flag, batch size and operation id", () => {
    expect(bulkEventToProto({ type: "started", total: 10, dryRun: true, batchSize: 100, operationId: "op-1" }).event).toMatchObject({
      case: "started",
      value: { total: 10n, dryRun: true, batchSize: 100, operationId: "op-1" },
    });
  });

  it.each([
    ["deleted", BulkDeleteOutcome.DELETED],
    ["not_found", BulkDeleteOutcome.NOT_FOUND],
    ["invalid_id", BulkDeleteOutcome.INVALID_ID],
    ["failed", BulkDeleteOutcome.FAILED],
    ["would_delete", BulkDeleteOutcome.WOULD_DELETE],
  ] as [BulkOutcome, BulkDeleteOutcome][])("maps the outcome %s in progress results", (outcome, proto) => {
    const e = bulkEventToProto({ type: "progress", results: [result({ outcome })], counters: COUNTERS }).event;
    expect(e.case).toBe("progress");
    if (e.case !== "progress") return;
    expect(e.value.results[0].outcome).toBe(proto);
  });

  it("maps progress with every result field and the counters as bigints", () => {
    const e = bulkEventToProto({ type: "progress", results: [result(), result({ identifier: "bad", id: "", outcome: "invalid_id", counts: undefined, memories: 0, error: "not a valid Session id" })], counters: COUNTERS }).event;
    if (e.case !== "progress") return expect.fail(`expected progress, got ${e.case}`);
    expect(e.value.counters).toMatchObject(asBigInts(COUNTERS));
    expect(e.value.results[0]).toMatchObject({ identifier: "U2Vzc2lvbjp4", id: "U2Vzc2lvbjp4", deleted: COUNTS, memories: 1, error: "" });
    expect(e.value.results[1]).toMatchObject({ identifier: "bad", id: "", outcome: BulkDeleteOutcome.INVALID_ID, memories: 0, error: "not a valid Session id" });
    expect(e.value.results[1].deleted).toBeUndefined();
  });

  it("maps the summary with the cascade totals and the elapsed time rounded to ms", () => {
    const e = bulkEventToProto({ type: "summary", counters: COUNTERS, deleted: COUNTS, elapsedMs: 1234.6, dryRun: false }).event;
    if (e.case !== "summary") return expect.fail(`expected summary, got ${e.case}`);
    expect(e.value).toMatchObject({ counters: asBigInts(COUNTERS), deleted: COUNTS, dryRun: false });
    expect(durationMs(e.value.elapsed!)).toBe(1235);
  });
});
