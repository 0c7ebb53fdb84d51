/**
 * TraceService handlers: protobuf in, one domain call, protobuf out.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { TracingService } from "../domain/trace-service.js";
import {
  AnnotateResponseSchema,
  DeleteTracesResponseSchema,
  GetTraceResponseSchema,
  ListAnnotationsResponseSchema,
  ListTracesResponseSchema,
  RecordSpansResponseSchema,
  TraceService,
} from "../../gen/sessiond/v1/trace_service_pb.js";
import { annotationToProto, annotatorFromProto, spanFromProto, spanToProto, targetFromProto, traceToProto } from "./trace-mapper.js";

/** Builds the TraceService implementation over the domain service. */
export function createTraceHandlers(tracing: TracingService): ServiceImpl<typeof TraceService> {
  return {
    async recordSpans(req) {
      const r = await tracing.record({ namespace: req.namespace, session: req.session, sessionId: req.sessionId, spans: req.spans.map((s, i) => spanFromProto(s, `spans[${i}]`)) });
      return create(RecordSpansResponseSchema, { spansRecorded: r.recorded, spansDuplicate: r.duplicate, tracesCreated: r.tracesCreated });
    },

    async listTraces(req) {
      const page = await tracing.list(req);
      return create(ListTracesResponseSchema, { traces: page.traces.map(traceToProto), nextPageToken: page.nextPageToken });
    },

    async getTrace(req) {
      const { trace, spans } = await tracing.get(req.namespace, req.traceId);
      return create(GetTraceResponseSchema, { trace: traceToProto(trace), spans: spans.map((s) => ({ span: spanToProto(s.span), depth: s.depth })) });
    },

    async deleteTraces(req) {
      const r = await tracing.delete(req.namespace, req.traceIds);
      return create(DeleteTracesResponseSchema, { tracesDeleted: r.traces, spansDeleted: r.spans, annotationsDeleted: r.annotations });
    },

    async annotate(req) {
      const { annotation, created } = await tracing.annotate({
        namespace: req.namespace,
        target: targetFromProto(req.target),
        name: req.name,
        annotatorKind: annotatorFromProto(req.annotatorKind),
        label: req.label,
        score: req.score,
        explanation: req.explanation,
        metadata: req.metadata ?? {},
        identifier: req.identifier,
      });
      return create(AnnotateResponseSchema, { annotation: annotationToProto(annotation), created });
    },

    async listAnnotations(req) {
      const page = await tracing.annotations({ namespace: req.namespace, target: targetFromProto(req.target), pageSize: req.pageSize, pageToken: req.pageToken });
      return create(ListAnnotationsResponseSchema, { annotations: page.annotations.map(annotationToProto), nextPageToken: page.nextPageToken });
    },
  };
}
