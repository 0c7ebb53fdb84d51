/**
 * OperationService: protobuf in, the domain's operations (domain/operations.ts), protobuf out.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  CancelOperationResponseSchema,
  GetOperationResponseSchema,
  ListOperationsResponseSchema,
  OperationKind,
  OperationSchema,
  OperationState,
  WatchOperationResponseSchema,
  type Operation as ProtoOperation,
  type OperationService,
} from "../../gen/sessiond/v1/operation_service_pb.js";
import type { Operation, Operations } from "../domain/operations.js";
import type { OperationKind as Kind, OperationState as State } from "../domain/operation-store.js";
import { countersToProto, progressToProto } from "./bulk-delete-mapper.js";
import { erasureCountsToProto, erasureProgressToProto } from "./erasure-mapper.js";
import { deletedCountsToProto } from "./session-mapper.js";

const KINDS: Record<Kind, OperationKind> = {
  bulk_delete_sessions: OperationKind.BULK_DELETE_SESSIONS,
  delete_namespace: OperationKind.DELETE_NAMESPACE,
  retention_sweep: OperationKind.RETENTION_SWEEP,
  forget_subject: OperationKind.FORGET_SUBJECT,
};
const STATES: Record<State, OperationState> = {
  queued: OperationState.QUEUED,
  running: OperationState.RUNNING,
  succeeded: OperationState.SUCCEEDED,
  failed: OperationState.FAILED,
  cancelled: OperationState.CANCELLED,
};

/** Proto enum -> domain value; undefined for UNSPECIFIED (or a number this server does not know: no filter matches it). */
function fromProto<D extends string, P extends number>(table: Record<D, P>, value: P): D | undefined | null {
  if (value === 0) return undefined;
  const found = (Object.keys(table) as D[]).find((k) => table[k] === value);
  return found ?? null;
}

/** A domain operation -> proto. */
export function operationToProto(op: Operation): ProtoOperation {
  return create(OperationSchema, {
    id: op.id,
    namespace: op.namespace,
    kind: KINDS[op.kind],
    state: STATES[op.state],
    counters: countersToProto(op.progress.counters),
    deleted: deletedCountsToProto(op.progress.deleted),
    batches: BigInt(op.batches),
    dryRun: op.plan.dryRun,
    detach: op.detach,
    batchSize: op.plan.batchSize,
    actor: op.actor,
    error: op.error,
    attempts: op.attempts,
    cancelRequested: op.cancelRequested,
    createTime: timestampFromDate(op.createTime),
    startTime: op.startTime ? timestampFromDate(op.startTime) : undefined,
    updateTime: timestampFromDate(op.updateTime),
    endTime: op.endTime ? timestampFromDate(op.endTime) : undefined,
    erasure: op.erasure ? erasureCountsToProto(op.erasure) : undefined,
  });
}

/** Builds the OperationService implementation. */
export function createOperationHandlers(operations: Operations): ServiceImpl<typeof OperationService> {
  return {
    async getOperation(req) {
      return create(GetOperationResponseSchema, { operation: operationToProto(await operations.get(req.namespace, req.id)) });
    },

    async listOperations(req) {
      const kind = fromProto(KINDS, req.kind);
      const state = fromProto(STATES, req.state);
      if (kind === null || state === null) return create(ListOperationsResponseSchema, {});
      const page = await operations.list({ namespace: req.namespace, kind, state, pageSize: req.pageSize, pageToken: req.pageToken });
      return create(ListOperationsResponseSchema, { operations: page.operations.map(operationToProto), nextPageToken: page.nextPageToken });
    },

    async cancelOperation(req) {
      return create(CancelOperationResponseSchema, { operation: operationToProto(await operations.cancel(req.namespace, req.id)) });
    },

    async *watchOperation(req, context) {
      const after = req.afterBatch > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(req.afterBatch);
      for await (const e of operations.watch(req.namespace, req.id, after, context.signal)) {
        if (e.type === "batch") {
          const batch = "step" in e.batch ? { erasure: erasureProgressToProto(e.batch) } : { progress: progressToProto(e.batch) };
          yield create(WatchOperationResponseSchema, { event: { case: "batch", value: { number: BigInt(e.number), ...batch } } });
        } else {
          yield create(WatchOperationResponseSchema, { event: { case: e.type, value: operationToProto(e.operation) } });
        }
      }
    },
  };
}
