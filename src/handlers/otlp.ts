/**
 * OTLP trace ingestion on the service's port: the OpenTelemetry collector's gRPC service
 * (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, also over Connect and gRPC-Web) and
 * OTLP/HTTP (`POST /v1/traces`, binary protobuf or JSON, optionally gzipped).
 *
 * This file is transport only: it maps messages (handlers/otlp-mapper.ts) and makes one call to the
 * ingestion rules (domain/otlp-ingest.ts: sessions from `session.id`, spans rejected alone and counted
 * in `partial_success`). The namespace comes from the `sessiond-namespace` request header ("default"
 * when absent). A body that does not decode is rejected whole: OTLP/HTTP answers 400 with a
 * google.rpc.Status; over gRPC, connect-es decodes the message before any sessiond code runs and answers INTERNAL (a known deviation,
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
} from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { createOtlpIngest, type SpanRecorder } from "../domain/otlp-ingest.js";
import type { Logger } from "../logger.js";
import type { CallAuditor } from "./audit.js";
import { NAMESPACE_HEADER, type AccessControl, type HttpAuthorization } from "./auth.js";
import { toConnectError } from "./errors.js";
import { peerCertificateOf } from "./peer.js";
import { exportResponseOf, hexIdsToBase64, ingestRequestOf } from "./otlp-mapper.js";

/** The collector's gRPC TraceService (served by the Connect router: gRPC, gRPC-Web and Connect). */
export function createOtlpGrpcHandlers(tracing: SpanRecorder): ServiceImpl<typeof OtlpTraceService> {
  const otlp = createOtlpIngest(tracing);
  return {
    export: async (req, context: HandlerContext) => exportResponseOf(await otlp.ingest(ingestRequestOf(context.requestHeader.get(NAMESPACE_HEADER) ?? "", req))),
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

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 413,
  [Code.Unavailable]: 503,
};

/** `POST /v1/traces`: OTLP/HTTP with binary protobuf or JSON bodies. */
export function createOtlpHttpHandler(tracing: SpanRecorder, opts: { readMaxBytes: number; logger: Logger; access: Pick<AccessControl, "authorizeHttp">; auditing: Pick<CallAuditor, "httpCall"> }) {
  const otlp = createOtlpIngest(tracing);
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
    let call: HttpAuthorization;
    try {
      call = await opts.access.authorizeHttp(headers, OtlpTraceService.method.export, peerCertificateOf(req));
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
      const response = exportResponseOf(await otlp.ingest(ingestRequestOf(call.namespace, request)));
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
