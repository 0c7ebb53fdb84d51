/**
 * Request ids and one access-log line per call.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../logger.js";
import { watchStream } from "./streams.js";

/** The call's request id (context value), for handlers and other interceptors: `ctx.values.get(requestIdKey)`. */
export const requestIdKey = createContextKey<string>("", { description: "sessiond request id" });

/** Header carrying the request id both ways. */
export const requestIdHeader = "x-request-id";

/** A client-provided id is kept only if it is short and plain: it ends up in logs and headers. */
const VALID_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Codes that mean the server failed, logged at error level; the others are the client's business. */
const SERVER_FAULTS = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * Interceptor (put it first, outermost) that gives every call a request id (the incoming `x-request-id`
 * if valid, else a random UUID), stores it under {@link requestIdKey}, returns it in the `x-request-id`
 * response header (in the error's metadata when the call fails), and logs one JSON line when the call
 * ends (a server stream: when the stream ends) with service, method, protocol, code, duration_ms and
 * request_id. Headers, messages and error details are never logged.
 *
 * Calls rejected before interceptors run (bad content type, a request body over readMaxBytes for unary
 * calls, an invalid timeout) produce no line.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const incoming = req.header.get(requestIdHeader);
    const requestId = incoming !== null && VALID_ID.test(incoming) ? incoming : randomUUID();
    req.contextValues.set(requestIdKey, requestId);
    const fields = { service: req.service.typeName, method: req.method.name, protocol: protocolOf(req.header.get("content-type")), request_id: requestId };
    const log = (code: Code | undefined) => {
      const line = { ...fields, code: code === undefined ? "ok" : codeToString(code), duration_ms: Math.round((performance.now() - started) * 10) / 10 };
      if (code !== undefined && SERVER_FAULTS.has(code)) logger.error(line, "rpc");
      else logger.info(line, "rpc");
    };
    // Non-Connect errors are handled like connect-es does (generic `internal`, message not sent).
    const asConnectError = (err: unknown) => {
      const connectErr = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      connectErr.metadata.set(requestIdHeader, requestId);
      return connectErr;
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const connectErr = asConnectError(err);
      log(connectErr.code);
      throw connectErr;
    }
    res.header.set(requestIdHeader, requestId);
    if (!res.stream) {
      log(undefined);
      return res;
    }
    return {
      ...res,
      message: watchStream(res.message, {
        onEnd: (code, err) => {
          log(code);
          return err === undefined ? undefined : asConnectError(err);
        },
      }),
    };
  };
}

/** The RPC protocol, from the request content type (Connect GET requests have none). */
function protocolOf(contentType: string | null): string {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}
