/**
 * OTLP trace ingestion on the service's port: the OpenTelemetry collector's gRPC service
 * (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, also over Connect and gRPC-Web) and
 * OTLP/HTTP (`POST /v1/traces`, binary protobuf or JSON, optionally gzipped).
 *
 * Spans carrying a `session.id` attribute (the OpenInference convention; on the span, else on its
 * resource) are recorded in that session of the caller's namespace, which is created if missing; the
 * others under no session. The namespace comes from the `sessiond-namespace` request header ("default"
 * when absent). A span that breaks the rules of RecordSpans (malformed ids, end before start, over a
 * limit) is rejected alone and counted in `partial_success`, as the OTLP specification asks; a body
 * that does not decode is rejected whole: OTLP/HTTP answers 400 with a google.rpc.Status; over gRPC,
 * connect-es decodes the message before any sessiond code runs and answers INTERNAL (a known deviation,
 * pinned by test/e2e/otlp.test.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  ExportTraceServiceRequestSchema,
  ExportTraceServiceResponseSchema,
  TraceService as OtlpTraceService,
  type ExportTraceServiceRequest,
  type ExportTraceServiceResponse,
} from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { AnyValue, KeyValue } from "../../gen/opentelemetry/proto/common/v1/common_pb.js";
import type { Span as OtlpSpan } from "../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { InvalidInputError, PreconditionError } from "../domain/errors.js";
import { checkText, type JsonObject, type JsonValue as DomainJson } from "../domain/session.js";
import { checkSpan, MAX_SPANS_PER_CALL, type SpanInput } from "../domain/trace.js";
import type { TracingService } from "../domain/tracing.js";
import type { Logger } from "../logger.js";
import type { Access, Auditing } from "../routes.js";
import { toConnectError } from "./errors.js";

/** The header naming the namespace OTLP spans are recorded in. */
export const NAMESPACE_HEADER = "sessiond-namespace";
const SESSION_ATTRIBUTE = "session.id";

function anyValue(v: AnyValue | undefined): DomainJson {
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

function spanInput(s: OtlpSpan, attrs: JsonObject): SpanInput {
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
    attributes: attrs,
    events: s.events.map((e) => ({ name: e.name, time: nanosToDate(e.timeUnixNano) ?? new Date(0), attributes: attributes(e.attributes) })),
  };
}

/** Records an export request; returns how many spans were rejected and why (the first reason). */
async function ingest(tracing: TracingService, namespace: string, req: ExportTraceServiceRequest): Promise<ExportTraceServiceResponse> {
  const groups = new Map<string, SpanInput[]>();
  let rejected = 0;
  let firstError = "";
  for (const rs of req.resourceSpans) {
    const resourceAttrs = attributes(rs.resource?.attributes ?? []);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        const attrs = attributes(s.attributes);
        const session = attrs[SESSION_ATTRIBUTE] ?? resourceAttrs[SESSION_ATTRIBUTE];
        const input = spanInput(s, attrs);
        try {
          checkSpan(input, "span");
          if (session !== undefined) {
            if (typeof session !== "string") throw new InvalidInputError("span.attributes[session.id]", "must be a string");
            checkText("span.attributes[session.id]", session, 256, { required: true, id: true });
          }
        } catch (err) {
          rejected++;
          firstError ||= err instanceof Error ? err.message : String(err);
          continue;
        }
        const key = typeof session === "string" ? session : "";
        const list = groups.get(key) ?? [];
        list.push(input);
        groups.set(key, list);
      }
    }
  }
  // Spans naming a session first: a trace keeps the session of its first stored span, so a root span
  // without session.id must not make its trace sessionless when its children name the session.
  for (const [sessionId, spans] of [...groups].sort(([a], [b]) => (a === "" ? 1 : 0) - (b === "" ? 1 : 0))) {
    for (let i = 0; i < spans.length; i += MAX_SPANS_PER_CALL) {
      try {
        await tracing.record({ namespace, session: "", sessionId, spans: spans.slice(i, i + MAX_SPANS_PER_CALL) }, { createSession: true });
      } catch (err) {
        // A session that refuses spans (cancelled or deleted) rejects its spans, not the whole export.
        if (!(err instanceof PreconditionError)) throw err;
        rejected += Math.min(MAX_SPANS_PER_CALL, spans.length - i);
        firstError ||= (err as Error).message;
      }
    }
  }
  return create(ExportTraceServiceResponseSchema, rejected ? { partialSuccess: { rejectedSpans: BigInt(rejected), errorMessage: firstError } } : {});
}

/** The collector's gRPC TraceService (served by the Connect router: gRPC, gRPC-Web and Connect). */
export function createOtlpGrpcHandlers(tracing: TracingService): ServiceImpl<typeof OtlpTraceService> {
  return {
    export: (req, context: HandlerContext) => ingest(tracing, context.requestHeader.get(NAMESPACE_HEADER) ?? "", req),
  };
}

/** Reads a request body up to `limit` bytes; undefined when over it. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** OTLP/JSON carries trace and span ids as hex; protobuf JSON expects base64 for bytes. */
function hexIdsToBase64(body: any): any {
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

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 413,
  [Code.Unavailable]: 503,
};

/** `POST /v1/traces`: OTLP/HTTP with binary protobuf or JSON bodies. */
export function createOtlpHttpHandler(tracing: TracingService, opts: { readMaxBytes: number; logger: Logger; access: Pick<Access, "authorizeHttp">; auditing: Pick<Auditing, "httpCall"> }) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    const json = type === "application/json";
    const reply = (status: number, body: Uint8Array | string) => {
      res.writeHead(status, { "content-type": json ? "application/json" : "application/x-protobuf" });
      res.end(body);
    };
    const fail = (code: Code, message: string) => {
      const status = create(StatusSchema, { code, message });
      reply(HTTP_STATUS[code] ?? 500, json ? JSON.stringify(toJson(StatusSchema, status)) : toBinary(StatusSchema, status));
    };
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" });
      res.end();
      return;
    }
    if (!json && type !== "application/x-protobuf") {
      res.writeHead(415, { "content-type": "text/plain; charset=utf-8" });
      res.end("use Content-Type application/x-protobuf or application/json");
      return;
    }
    // Credentials are checked before the body is read, as for the RPCs.
    const headers = headersOf(req);
    let call: Awaited<ReturnType<Access["authorizeHttp"]>>;
    try {
      call = await opts.access.authorizeHttp(headers, OtlpTraceService.method.export);
    } catch (err) {
      const e = toConnectError(err, "-", opts.logger);
      return fail(e.code, e.rawMessage);
    }
    let request: ExportTraceServiceRequest;
    try {
      let body = await readBody(req, opts.readMaxBytes);
      if (!body) return fail(Code.ResourceExhausted, `body over ${opts.readMaxBytes} bytes`);
      if ((req.headers["content-encoding"] ?? "").toLowerCase() === "gzip") body = gunzipSync(body, { maxOutputLength: opts.readMaxBytes });
      request = json
        ? fromJson(ExportTraceServiceRequestSchema, hexIdsToBase64(JSON.parse(body.toString("utf8"))) as JsonValue, { ignoreUnknownFields: true })
        : fromBinary(ExportTraceServiceRequestSchema, body);
    } catch (err) {
      return fail(Code.InvalidArgument, `the body is not a valid OTLP ExportTraceServiceRequest (${json ? "JSON" : "protobuf"}): ${err instanceof Error ? err.message.slice(0, 200) : "unreadable"}`);
    }
    const audited = opts.auditing.httpCall(call.principal, OtlpTraceService.method.export, headers);
    try {
      const response = await ingest(tracing, call.namespace, request);
      audited(undefined, request as unknown as Record<string, unknown>);
      reply(200, json ? JSON.stringify(toJson(ExportTraceServiceResponseSchema, response)) : toBinary(ExportTraceServiceResponseSchema, response));
    } catch (err) {
      const e = toConnectError(err, String(req.headers["x-request-id"] ?? "otlp-http"), opts.logger);
      audited(e.code, request as unknown as Record<string, unknown>);
      fail(e.code, e.rawMessage);
    }
  };
}

/** The request's headers as a fetch Headers object (repeated headers joined). */
function headersOf(req: IncomingMessage): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
  return h;
}
