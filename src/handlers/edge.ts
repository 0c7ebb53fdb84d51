/**
 * The edge of every RPC, between Node's HTTP servers and connect-es (it replaces connect-node's
 * `connectNodeAdapter`, which it mirrors). It does three things the interceptors cannot:
 * - gives every call its request id before anything can refuse it, and returns it in `x-request-id`
 *   even when connect-es refuses the call before the interceptors run;
 * - turns a client that went away (reset HTTP/2 stream, closed HTTP/1.1 connection) into a call signal
 *   aborted with a ConnectError `canceled`, or `deadline_exceeded` when the client's deadline is what
 *   passed, so that every observer decides the same code (see streams.ts);
 * - reports the calls the interceptors never saw (undecodable body, body over readMaxBytes, wrong
 *   content type, invalid timeout, ...) with their code and a reason, for the access log and metrics.
 * It builds connect-es's request itself (as connect-node's `universalRequestFromNodeRequest` does) so
 * that a call that ends normally aborts no request signal: connect-node aborts every request's signal
 * when its stream closes, which builds a DOMException (a stack trace) per call, and the edge then built
 * a ConnectError for it (connect-es's own handler context is aborted with a reason made once, see
 * {@link callEndedAbort}). Here the
 * signal is aborted only when the client went away before the response was written, always as
 * `canceled` or `deadline_exceeded`: the code an HTTP/2 client resets a stream with (CANCEL,
 * ENHANCE_YOUR_CALM, ...) is not carried over, as no server-side decision depends on it.
 * Its cost per call: a context-values object, an AbortController and a close listener (see docs/operations.md).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type ConnectRouterOptions, type HandlerContext } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalResponseToNodeResponse, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, codeFromString, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { closeGracefully } from "../net/one-port.js";
import { callEdgeKey, protocolOf, requestIdHeader, requestIdKey, requestIdOf, type CallEdge } from "./logging.js";
import { peerCertificateKey, peerCertificateOf } from "./peer.js";

/** Why connect-es refused a call before the interceptors: the `reason` label and log field. */
export type RefusalReason = "undecodable" | "too_large" | "content_type" | "timeout" | "protocol";

/** A call refused before the interceptors, as the edge reports it. */
export interface RefusedCall {
  service: string;
  method: string;
  protocol: string;
  requestId: string;
  code: Code;
  reason: RefusalReason;
  httpStatus: number;
  durationMs: number;
}

/** What {@link createRpcEdge} needs besides connect-es's router options. */
export interface RpcEdgeOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Called for every other request (plain HTTP endpoints, 404). */
  fallback: NonNullable<ConnectNodeAdapterOptions["fallback"]>;
  /** Told of every call refused before the interceptors (not of those the request gate refused: they are reported there). */
  onRefused: (call: RefusedCall) => void;
  /** Told of a handler that failed outside any call's error handling (should never happen). */
  onCrash: (err: unknown, method: string) => void;
}

/** The reason connect-es's handler context is aborted with when a call ends without an error. */
const CALL_ENDED = new DOMException("the call ended", "AbortError");

/**
 * Makes connect-es abort `context` (it does when every call ends, normally too, and with no reason)
 * with a reason made once: Node otherwise builds a DOMException, with its stack trace, for each call
 * (3-4 % of the server's CPU under a unary load). A reason given (a call's error) is kept. The edge
 * runs it first in the request gate, which connect-es hands the context before anything else sees it.
 */
function callEndedAbort(context: HandlerContext): void {
  // `abort` is on the context connect-es makes (createHandlerContext), though not in its public type.
  const ctx = context as HandlerContext & { abort?: (reason?: unknown) => void };
  const abort = ctx.abort;
  if (abort) ctx.abort = (reason?: unknown) => abort(reason ?? CALL_ENDED);
}

/** Builds the request listener serving every RPC of `routes` (see the file comment). */
export function createRpcEdge(options: RpcEdgeOptions) {
  const maxTimeoutMs = options.maxTimeoutMs ?? 0;
  // What an early-answered request may still upload before its stream or connection is closed.
  const drainLimit = Math.max(options.readMaxBytes ?? 0, 1 << 20);
  const gate = options.requestGate;
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
    requestGate: (context) => {
      callEndedAbort(context);
      return gate?.(context);
    },
  });
  options.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));

  return (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0]);
    if (!handler) return options.fallback(req, res);
    const started = performance.now();
    const edge: CallEdge = { requestId: requestIdOf(headerValue(req.headers[requestIdHeader])) ?? randomUUID(), reached: false, gateRefused: false };
    const values = createContextValues().set(requestIdKey, edge.requestId).set(callEdgeKey, edge).set(peerCertificateKey, peerCertificateOf(req));
    const timeout = requestTimeout(req, maxTimeoutMs);
    const uReq = universalRequest(req, values, clientSignal(req, res, timeout, started));
    handler(uReq)
      .then(async (uRes) => {
        if (edge.reached) return uRes;
        const out = await withRequestId(uRes, edge.requestId);
        if (!edge.gateRefused) {
          const code = refusedCode(out.res, out.body);
          options.onRefused(refusal(handler, req, edge.requestId, started, code, reasonOf(code, out.res.status, timeout), out.res.status));
        }
        return out.res;
      })
      .catch((err) => {
        // connect-es percent-encodes an error's message into the gRPC status, and a request it could not
        // decode because of a lone surrogate is echoed in that message: encodeURIComponent throws and
        // the call would be left without any status. Answer it as the decode error it is.
        if (!(err instanceof URIError) || edge.reached) throw err;
        const code = Code.InvalidArgument;
        const out = undecodableGrpc(headerValue(req.headers["content-type"]) ?? "application/grpc", edge.requestId, code);
        options.onRefused(refusal(handler, req, edge.requestId, started, code, "undecodable", out.status));
        return out;
      })
      .then((uRes) => {
        if (!earlyAnswer(req, handler.method.methodKind)) return universalResponseToNodeResponse(uRes, res);
        discardUpload(req, drainLimit);
        return universalResponseToNodeResponse(closingHttp1(req, uRes), res);
      })
      .catch((err) => {
        // connect-node's adapter ignores these too: the client went away while we wrote.
        if (ConnectError.from(err).code !== Code.Aborted) options.onCrash(err, handler.method.name);
      });
  };
}

/** A call refused before the interceptors, as reported. (Not a closure made per call: the build keeps function names, which costs each named closure a defineProperty.) */
function refusal(
  handler: { service: { typeName: string }; method: { name: string } },
  req: IncomingMessage | Http2ServerRequest,
  requestId: string,
  started: number,
  code: Code,
  reason: RefusalReason,
  httpStatus: number,
): RefusedCall {
  return {
    service: handler.service.typeName,
    method: handler.method.name,
    protocol: protocolOf(headerValue(req.headers["content-type"]) ?? null),
    requestId,
    code,
    reason,
    httpStatus,
    durationMs: performance.now() - started,
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The timeout the client asked for (ms), `invalid` when it is unparsable or over the limit, or undefined. */
function requestTimeout(req: IncomingMessage | Http2ServerRequest, maxTimeoutMs: number): number | "invalid" | undefined {
  const grpc = headerValue(req.headers["grpc-timeout"]);
  const connect = headerValue(req.headers["connect-timeout-ms"]);
  if (grpc === undefined && connect === undefined) return undefined;
  const parsed = grpc !== undefined ? parseGrpcTimeout(grpc, maxTimeoutMs) : parseConnectTimeout(connect!, maxTimeoutMs);
  return parsed.error ? "invalid" : parsed.timeoutMs;
}

/**
 * A signal aborted when the client goes away before the response is written (a reset HTTP/2 stream, a
 * closed HTTP/1.1 connection), with a ConnectError as reason: `deadline_exceeded` when the client's
 * deadline is (about) over, as a gRPC client resets the stream when its deadline passes, else
 * `canceled`. A call whose response was written is never aborted here.
 */
function clientSignal(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, timeout: number | "invalid" | undefined, started: number): AbortSignal {
  const controller = new AbortController();
  const onGone = () => {
    if (res.writableEnded || controller.signal.aborted) return;
    if (typeof timeout === "number") {
      const remaining = timeout - (performance.now() - started);
      // The client's clock started before ours; allow for the trip here (at most 250 ms).
      if (remaining <= Math.min(250, Math.max(20, timeout / 10))) return controller.abort(new ConnectError("the client's deadline passed", Code.DeadlineExceeded));
    }
    controller.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  };
  if ("stream" in req) {
    req.once("close", onGone);
  } else {
    // HTTP/1.1: the request closes as soon as its body is read; the response closes with the connection
    // (or when it is done). An error on the request (ECONNRESET) is the client going away too.
    const onError = () => {
      req.off("error", onError);
      onGone();
    };
    req.once("error", onError);
    res.once("close", () => {
      req.off("error", onError);
      onGone();
    });
  }
  return controller.signal;
}

/** connect-es's request for `req`: what connect-node's universalRequestFromNodeRequest makes, with `signal`. */
function universalRequest(req: IncomingMessage | Http2ServerRequest, values: ReturnType<typeof createContextValues>, signal: AbortSignal): UniversalServerRequest {
  const authority = "authority" in req ? req.authority : req.headers.host;
  const scheme = (req.socket as { encrypted?: boolean } | null)?.encrypted ? "https" : "http";
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: new URL(req.url ?? "", `${scheme}://${authority ?? "localhost"}`).toString(),
    header: webHeaders(req.headers),
    // connect-node reads the body with the stream's own iterator, which destroys the request when it
    // stops early (an oversized or undecodable message): on HTTP/1.1 that resets the connection before
    // the answer is written. This iterator leaves the request alone; discardUpload() deals with the rest.
    body: req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>,
    signal,
    contextValues: values,
  };
}

/** Node's request headers as fetch Headers, without HTTP/2's pseudo-headers (as connect-node does). */
function webHeaders(nodeHeaders: IncomingMessage["headers"]): Headers {
  const header = new Headers();
  for (const [k, v] of Object.entries(nodeHeaders)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (typeof v === "string") header.append(k, v);
    else for (const e of v) header.append(k, e);
  }
  return header;
}

/** A response the interceptors never saw (an error made by connect-es, small), buffered, with the request id header added. */
async function withRequestId(uRes: UniversalServerResponse, requestId: string): Promise<{ res: UniversalServerResponse; body: Uint8Array }> {
  const header = new Headers(uRes.header);
  header.set(requestIdHeader, requestId);
  const chunks: Uint8Array[] = [];
  if (uRes.body) for await (const chunk of uRes.body) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  return {
    res: { ...uRes, header, body: body.length ? (async function* () { yield body; })() : undefined },
    body,
  };
}

/** The code of a response connect-es made for a refused call: gRPC status, gRPC-Web trailer, Connect error JSON, or the HTTP status. */
function refusedCode(res: UniversalServerResponse, body: Uint8Array): Code {
  const grpc = res.trailer?.get("grpc-status") ?? res.header?.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(Buffer.from(body).toString("latin1"))?.[1];
  if (grpc != null && /^\d+$/.test(grpc)) return Number(grpc) as Code;
  const json = /"code"\s*:\s*"([a-z_]+)"/.exec(Buffer.from(body).toString("utf8"))?.[1];
  const code = json === undefined ? undefined : codeFromString(json);
  return code ?? codeFromHttpStatus(res.status);
}

/** The reason label of a refused call. */
function reasonOf(code: Code, httpStatus: number, timeout: number | "invalid" | undefined): RefusalReason {
  if (httpStatus === 415) return "content_type";
  if (code === Code.ResourceExhausted) return "too_large";
  if (timeout === "invalid" && code === Code.InvalidArgument) return "timeout";
  if (code === Code.Internal || code === Code.InvalidArgument) return "undecodable";
  return "protocol";
}

/**
 * A trailers-only gRPC (or gRPC-Web) answer for a request whose message could not be decoded and whose
 * decode error could not be encoded as a status (see createRpcEdge).
 */
function undecodableGrpc(contentType: string, requestId: string, code: Code): UniversalServerResponse {
  const message = encodeURIComponent("cannot decode the request message: it holds malformed Unicode");
  const header = new Headers({ "content-type": contentType, [requestIdHeader]: requestId });
  if (!contentType.startsWith("application/grpc-web")) {
    header.set("grpc-status", String(code));
    header.set("grpc-message", message);
    return { status: 200, header };
  }
  // gRPC-Web carries its status in a trailer frame (flag 0x80) of the body.
  const text = Buffer.from(`grpc-status: ${code}\r\ngrpc-message: ${message}\r\n`);
  const frame = Buffer.alloc(5 + text.length);
  frame[0] = 0x80;
  frame.writeUInt32BE(text.length, 1);
  text.copy(frame, 5);
  return { status: 200, header, body: (async function* () { yield new Uint8Array(frame); })() };
}

/**
 * Whether the answer goes out before the request body was all received: connect-es refuses a message
 * over readMaxBytes (or an undecodable one) as soon as it sees it, and stops reading. The rest of the
 * upload must not be left in the connection: on HTTP/1.1 it would be read as the next request's bytes
 * (the keep-alive connection hangs), on HTTP/2 it stays counted against the connection's memory until
 * Node refuses every new stream (ENHANCE_YOUR_CALM).
 */
function earlyAnswer(req: IncomingMessage | Http2ServerRequest, kind: string): boolean {
  // A client or bidi stream keeps sending while it is answered: its upload is the call's, not left over.
  return (kind === "unary" || kind === "server_streaming") && !req.complete;
}

/** How long an HTTP/1.1 connection closed after an early answer keeps reading before it is dropped. */
const LINGER_MS = 2000;

/**
 * On HTTP/1.1 an early answer closes the connection (`Connection: close`, so the client does not send
 * its next request on it), with a lingering close: Node would end the socket and destroy it as soon as
 * the answer is written, and the client's upload still arriving would then reset the connection, which
 * can make the client lose the answer. Our side ends; the upload is read on (see discardUpload) until
 * the client is done or LINGER_MS pass.
 */
function closingHttp1(req: IncomingMessage | Http2ServerRequest, uRes: UniversalServerResponse): UniversalServerResponse {
  if (req.httpVersionMajor !== 1) return uRes;
  const socket = req.socket as Socket;
  socket.destroySoon = () => {
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
  const header = new Headers(uRes.header);
  header.set("connection", "close");
  return { ...uRes, header };
}

/**
 * Reads and drops the rest of an early-answered request's upload (the HTTP/1.1 connection is closing,
 * see closingHttp1; an HTTP/2 connection stays usable). Past `limit` bytes the connection is closed:
 * on HTTP/1.1 at once, on HTTP/2 gracefully (a GOAWAY; the upload is still read until the client
 * stops). Reading rather than resetting the stream matters on HTTP/2: data Node receives for a stream it already closed stays counted against the
 * connection (its window and maxSessionMemory), and after a few such uploads Node refuses every new
 * stream on that connection with ENHANCE_YOUR_CALM, for good.
 */
function discardUpload(req: IncomingMessage | Http2ServerRequest, limit: number): void {
  let seen = 0;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (req.httpVersionMajor === 2) {
      // Resetting the stream would leave what is still in flight counted against the connection (see
      // above); the two-step GOAWAY lets this and the other streams finish, and the client reconnects.
      const session = (req as Http2ServerRequest).stream.session;
      if (session) closeGracefully(session);
    } else {
      req.socket.destroy();
    }
  };
  req.on("data", (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > limit) stop();
  });
  req.on("error", () => {}); // the client may reset its upload; nothing to report
  req.resume();
}
