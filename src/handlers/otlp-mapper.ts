/**
 * OTLP protobuf <-> domain (domain/otlp-ingest.ts): ExportTraceServiceRequest to an IngestRequest,
 * an IngestResult to ExportTraceServiceResponse, and OTLP/JSON's hex ids to protobuf JSON.
 */
import { create } from "@bufbuild/protobuf";
import { ExportTraceServiceResponseSchema, type ExportTraceServiceRequest, type ExportTraceServiceResponse } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { AnyValue, KeyValue } from "../../gen/opentelemetry/proto/common/v1/common_pb.js";
import type { Span as OtlpSpan } from "../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import type { IngestRequest, IngestResult, IngestSpan } from "../domain/otlp-ingest.js";
import type { JsonObject, JsonValue } from "../domain/session-model.js";

/** An OTLP AnyValue as JSON: 64-bit ints beyond 2^53 and non-finite doubles as strings, bytes as base64. */
function anyValue(v: AnyValue | undefined): JsonValue {
  const x = v?.value;
  switch (x?.case) {
    case "stringValue":
    case "boolValue":
      return x.value;
    case "intValue":
      return Number.isSafeInteger(Number(x.value)) ? Number(x.value) : x.value.toString();
    case "doubleValue":
      return Number.isFinite(x.value) ? x.value : String(x.value);
    case "arrayValue":
      return x.value.values.map(anyValue);
    case "kvlistValue":
      return attributes(x.value.values);
    case "bytesValue":
      return Buffer.from(x.value).toString("base64");
    default:
      return null;
  }
}

function attributes(kvs: KeyValue[]): JsonObject {
  const out: JsonObject = {};
  for (const kv of kvs) out[kv.key] = anyValue(kv.value);
  return out;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const nanosToDate = (ns: bigint) => (ns > 0n ? new Date(Number(ns / 1_000_000n)) : undefined);

function ingestSpan(s: OtlpSpan, resourceAttributes: JsonObject): IngestSpan {
  return {
    traceId: hex(s.traceId),
    spanId: hex(s.spanId),
    parentSpanId: s.parentSpanId.length ? hex(s.parentSpanId) : "",
    name: s.name,
    kind: s.kind,
    startTime: nanosToDate(s.startTimeUnixNano),
    endTime: nanosToDate(s.endTimeUnixNano),
    statusCode: s.status?.code ?? 0,
    statusMessage: s.status?.message ?? "",
    attributes: attributes(s.attributes),
    events: s.events.map((e) => ({ name: e.name, time: nanosToDate(e.timeUnixNano) ?? new Date(0), attributes: attributes(e.attributes) })),
    resourceAttributes,
  };
}

/** An export request's spans, in order, for `namespace`. */
export function ingestRequestOf(namespace: string, req: ExportTraceServiceRequest): IngestRequest {
  const spans: IngestSpan[] = [];
  for (const rs of req.resourceSpans) {
    const resourceAttributes = attributes(rs.resource?.attributes ?? []);
    for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push(ingestSpan(s, resourceAttributes));
  }
  return { namespace, spans };
}

/** The response to an export: partial_success only when spans were rejected. */
export function exportResponseOf(result: IngestResult): ExportTraceServiceResponse {
  return create(
    ExportTraceServiceResponseSchema,
    result.rejectedSpans ? { partialSuccess: { rejectedSpans: BigInt(result.rejectedSpans), errorMessage: result.errorMessage } } : {},
  );
}

/** OTLP/JSON carries trace and span ids as hex; protobuf JSON expects base64 for bytes. */
export function hexIdsToBase64(body: any): any {
  const fix = (o: any, keys: string[]) => {
    for (const k of keys) if (typeof o?.[k] === "string" && /^[0-9a-fA-F]*$/.test(o[k])) o[k] = Buffer.from(o[k], "hex").toString("base64");
  };
  for (const rs of body?.resourceSpans ?? body?.resource_spans ?? []) {
    for (const ss of rs?.scopeSpans ?? rs?.scope_spans ?? []) {
      for (const s of ss?.spans ?? []) {
        fix(s, ["traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"]);
        for (const l of s?.links ?? []) fix(l, ["traceId", "trace_id", "spanId", "span_id"]);
      }
    }
  }
  return body;
}
