/**
 * Protobuf <-> domain conversions for BulkDeleteSessions.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { BulkBatch, BulkCounters, BulkDeleteEvent, BulkOutcome, BulkSelector } from "../domain/bulk-delete.js";
import {
  BulkDeleteCountersSchema,
  BulkDeleteOutcome,
  BulkDeleteProgressSchema,
  type BulkDeleteProgress,
  BulkDeleteSessionsResponseSchema,
  type BulkDeleteSessionsRequest,
  type BulkDeleteSessionsResponse,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { deletedCountsToProto, filterFromProto } from "./session-mapper.js";

const OUTCOME: Record<BulkOutcome, BulkDeleteOutcome> = {
  deleted: BulkDeleteOutcome.DELETED,
  not_found: BulkDeleteOutcome.NOT_FOUND,
  invalid_id: BulkDeleteOutcome.INVALID_ID,
  failed: BulkDeleteOutcome.FAILED,
  would_delete: BulkDeleteOutcome.WOULD_DELETE,
};

/** The request's oneof selector -> domain selector. */
export function selectorFromProto(req: Pick<BulkDeleteSessionsRequest, "selector">): BulkSelector {
  const s = req.selector;
  switch (s.case) {
    case "ids":
      return { kind: "ids", values: s.value.values };
    case "sessionIds":
      return { kind: "sessionIds", values: s.value.values };
    case "filter":
      return { kind: "filter", filter: filterFromProto(s.value.filter, "filter.filter"), includeDeleted: s.value.includeDeleted };
    default:
      return { kind: "none" };
  }
}

/** Counters -> proto. */
export function countersToProto(c: BulkCounters) {
  return create(BulkDeleteCountersSchema, {
    completed: BigInt(c.completed),
    total: BigInt(c.total),
    deleted: BigInt(c.deleted),
    notFound: BigInt(c.notFound),
    invalid: BigInt(c.invalid),
    failed: BigInt(c.failed),
  });
}

/** One domain event -> one stream message. */
export function bulkEventToProto(e: BulkDeleteEvent): BulkDeleteSessionsResponse {
  switch (e.type) {
    case "started":
      return create(BulkDeleteSessionsResponseSchema, { event: { case: "started", value: { total: BigInt(e.total), dryRun: e.dryRun, batchSize: e.batchSize, operationId: e.operationId } } });
    case "progress":
      return create(BulkDeleteSessionsResponseSchema, { event: { case: "progress", value: progressToProto(e) } });
    case "summary":
      return create(BulkDeleteSessionsResponseSchema, {
        event: { case: "summary", value: { counters: countersToProto(e.counters), deleted: deletedCountsToProto(e.deleted), elapsed: durationFromMs(Math.round(e.elapsedMs)), dryRun: e.dryRun } },
      });
  }
}

/** One committed batch -> a progress message. */
export function progressToProto(b: BulkBatch): BulkDeleteProgress {
  return create(BulkDeleteProgressSchema, {
    results: b.results.map((r) => ({
      identifier: r.identifier,
      id: r.id,
      outcome: OUTCOME[r.outcome],
      deleted: r.counts && deletedCountsToProto(r.counts),
      memories: r.memories,
      error: r.error,
    })),
    counters: countersToProto(b.counters),
  });
}
