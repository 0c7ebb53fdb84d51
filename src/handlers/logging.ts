/**
 * Request ids and one access-log line per call (the calls connect-es refuses before the interceptors
 * get theirs from the edge, edge.ts).
 */
import { randomUUID } from "node:crypto";
import { type Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../logger.js";
import { endingError, isServerFault, isUndecodable, watchStream } from "./streams.js";

/** The call's request id (context value), for handlers and other interceptors: `ctx.values.get(requestIdKey)`. */
export const requestIdKey = createContextKey<string>("", { description: "sessiond request id" });

/** Header carrying the request id both ways. */
export const requestIdHeader = "x-request-id";

/** A client-provided id is kept only if it is short and plain: it ends up in logs and headers. */
const VALID_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Returns `incoming` when it may serve as a request id (short and plain: it ends up in logs and headers), else undefined. */
export function requestIdOf(incoming: string | null | undefined): string | undefined {
  return incoming != null && VALID_ID.test(incoming) ? incoming : undefined;
}

/**
 * What the RPC edge (edge.ts) and the interceptors tell each other about a call: its request id, whether
 * the interceptors were reached (else the edge logs and counts the refusal), and whether the request
 * gate refused it (then the gate reported it already).
 */
export interface CallEdge {
  readonly requestId: string;
  reached: boolean;
  gateRefused: boolean;
}

/** The call's {@link CallEdge}, when it came through the edge (not through createRouterTransport). */
export const callEdgeKey = createContextKey<CallEdge | undefined>(undefined, { description: "sessiond call edge" });

/**
 * Interceptor (put it first, outermost) that gives every call a request id (the one the edge chose,
 * else the incoming `x-request-id` if valid, else a random UUID), stores it under {@link requestIdKey},
 * returns it in the `x-request-id` response header (in the error's metadata when the call fails), and
 * logs one JSON line when the call ends (a server stream: when the stream ends) with service, method,
 * protocol, code, duration_ms and request_id. Headers, messages and error details are never logged.
 * The code is decided by streams.ts `codeOf` (a client that cancelled or whose deadline passed is
 * `canceled` / `deadline_exceeded`, at info level); only server faults are logged at error level.
 *
 * Calls refused before interceptors run (bad content type, a request body over readMaxBytes for unary
 * calls, an invalid timeout) are logged by the edge (edge.ts, server.ts).
 */
export function loggingInterceptor(parent: Logger): Interceptor {
  // The access line holds only the fixed fields below (never headers, messages or errors), so it skips
  // the logger's credential redaction, which costs ~20 µs a line (measured: 17-22 µs with it, 2 without).
  const logger = parent.child({}, { redact: [] });
  return (next) => async (req) => {
    const started = performance.now();
    const edge = req.contextValues.get(callEdgeKey);
    if (edge) edge.reached = true;
    const requestId = edge?.requestId ?? requestIdOf(req.header.get(requestIdHeader)) ?? randomUUID();
    req.contextValues.set(requestIdKey, requestId);
    const fields: AccessFields = { service: req.service.typeName, method: req.method.name, protocol: protocolOf(req.header.get("content-type")), request_id: requestId };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const connectErr = clientError(err, req.signal, requestId, false);
      accessLine(logger, fields, started, connectErr.code, connectErr);
      throw connectErr;
    }
    res.header.set(requestIdHeader, requestId);
    if (!res.stream) {
      accessLine(logger, fields, started, undefined);
      return res;
    }
    return {
      ...res,
      message: watchStream(res.message, {
        signal: req.signal,
        onEnd: (code, err) => {
          if (err === undefined) return accessLine(logger, fields, started, code);
          const connectErr = clientError(err, req.signal, requestId, true);
          accessLine(logger, fields, started, connectErr.code, connectErr);
          return connectErr;
        },
      }),
    };
  };
}

/** The fixed fields of a call's access line. */
interface AccessFields {
  service: string;
  method: string;
  protocol: string;
  request_id: string;
}

/**
 * Writes a call's access line: error level for a server fault only. (Module functions, not closures
 * made per call: the build keeps function names, which costs each named closure a defineProperty.)
 */
function accessLine(logger: Logger, fields: AccessFields, started: number, code: Code | undefined, err?: unknown): void {
  const line = { ...fields, code: code === undefined ? "ok" : codeToString(code), duration_ms: Math.round((performance.now() - started) * 10) / 10 };
  if (isServerFault(code, err)) logger.error(line, "rpc");
  else if (code !== undefined && isUndecodable(err)) logger.warn({ ...line, refused: "undecodable" }, "rpc");
  else logger.info(line, "rpc");
}

/**
 * The error the client gets: decided once (streams.ts), with the request id in its metadata unless the
 * response headers (which a stream's have) already carry it: clients merge the two.
 */
function clientError(err: unknown, signal: AbortSignal, requestId: string, headerHasId: boolean): ConnectError {
  const connectErr = wellFormed(endingError(err, signal));
  if (!headerHasId) connectErr.metadata.set(requestIdHeader, requestId);
  return connectErr;
}

/** The RPC protocol, from the request content type (Connect GET requests have none). */
export function protocolOf(contentType: string | null): string {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * `err` with a message that is well-formed Unicode. Messages may echo what a client sent (a field path
 * such as `labels["\ud800"]`); gRPC sends the message percent-encoded in a trailer, and
 * `encodeURIComponent` throws on a lone surrogate, which would leave the call without a status.
 */
export function wellFormed(err: ConnectError): ConnectError {
  if (err.rawMessage.isWellFormed()) return err;
  const fixed = new ConnectError(err.rawMessage.toWellFormed(), err.code, err.metadata, undefined, err.cause);
  fixed.details.push(...err.details);
  return fixed;
}
