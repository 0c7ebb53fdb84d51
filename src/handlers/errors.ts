/**
 * The one place where errors become Connect errors. Domain errors map to their codes with their
 * (user-facing) messages; anything else becomes `internal` with a generic message carrying the request
 * id, and its cause is logged, never sent: raw errors may hold SQL or stack traces.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  AlreadyExistsError,
  CancelledError,
  ConflictError,
  GoneError,
  InvalidInputError,
  NotFoundError,
  OperationFailedError,
  PermissionDeniedError,
  PreconditionError,
  RateLimitedError,
  RetryableConflictError,
  StoreBusyError,
  OutOfRangeError,
  UnauthenticatedError,
  UnavailableError,
  IntegratorUnavailableError,
  WatchEndedError,
} from "../domain/errors.js";
import { WatchPositionSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import type { Logger } from "../logger.js";
import { requestIdKey } from "./logging.js";
import { endingError, watchStream } from "./streams.js";

/**
 * `resource_exhausted` with when to retry, twice: a google.rpc.RetryInfo detail (for gRPC clients that
 * read details) and a `retry-after` header in whole seconds (for HTTP tooling and browsers).
 */
function rateLimited(err: RateLimitedError): ConnectError {
  return withRetry(err.message, Code.ResourceExhausted, err.retryAfterMs);
}

/** A ConnectError saying when to retry: `; retry in N s`, a `retry-after` header and a RetryInfo detail. */
function withRetry(message: string, code: Code, retryAfterMs: number): ConnectError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const e = new ConnectError(`${message}; retry in ${seconds} s`, code, { "retry-after": String(seconds) });
  e.details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(retryAfterMs) }) });
  return e;
}

/** When a client should retry a call that found the database unavailable or its pool exhausted. */
const UNAVAILABLE_RETRY_MS = 1000;

/** Converts any thrown value into a ConnectError that is safe to send. */
export function toConnectError(err: unknown, requestId: string, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidInputError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof NotFoundError) return new ConnectError(err.message, Code.NotFound);
  if (err instanceof AlreadyExistsError) return new ConnectError(err.message, Code.AlreadyExists);
  if (err instanceof ConflictError) return new ConnectError(err.message, Code.Aborted);
  if (err instanceof CancelledError) return new ConnectError(err.message, Code.Canceled);
  if (err instanceof OperationFailedError) return new ConnectError(err.message, Code.Aborted);
  if (err instanceof PreconditionError) return new ConnectError(err.message, Code.FailedPrecondition);
  if (err instanceof UnauthenticatedError) return new ConnectError(err.message, Code.Unauthenticated);
  if (err instanceof PermissionDeniedError) return new ConnectError(err.message, Code.PermissionDenied);
  if (err instanceof RateLimitedError) return rateLimited(err);
  if (err instanceof OutOfRangeError) return new ConnectError(err.message, Code.OutOfRange);
  if (err instanceof WatchEndedError) {
    // Where to resume, as a detail (and in the message, for people).
    const e = new ConnectError(err.message, err.reason === "shutdown" ? Code.Unavailable : Code.ResourceExhausted);
    const p = err.position;
    e.details.push({ desc: WatchPositionSchema, value: create(WatchPositionSchema, { seq: BigInt(p.seq), change: BigInt(p.change), cursor: p.cursor }) });
    return e;
  }
  // A row it refers to (its namespace, typically) was deleted by a concurrent call.
  if (err instanceof GoneError) {
    return new ConnectError(`what the call refers to was deleted meanwhile (its namespace?); retry the call (request id ${requestId})`, Code.Aborted);
  }
  if (err instanceof RetryableConflictError) {
    logger.info({ err: { code: "concurrency_conflict" }, request_id: requestId }, "transaction lost a race");
    return new ConnectError(`a concurrent change to the same data won; retry the call (request id ${requestId})`, Code.Aborted);
  }
  if (err instanceof IntegratorUnavailableError) return withRetry(err.message, Code.Unavailable, UNAVAILABLE_RETRY_MS);
  if (err instanceof StoreBusyError) {
    // Overload, not a fault: every pooled connection stayed busy for SESSIOND_DB_CONNECT_TIMEOUT_MS.
    logger.warn({ err: { message: err.message }, request_id: requestId }, "database pool exhausted");
    return withRetry(`the server is busy (no database connection free); request id ${requestId}`, Code.Unavailable, UNAVAILABLE_RETRY_MS);
  }
  if (err instanceof UnavailableError) {
    logger.warn({ err, request_id: requestId }, "database unavailable");
    return withRetry(`the database is unavailable (request id ${requestId})`, Code.Unavailable, UNAVAILABLE_RETRY_MS);
  }
  logger.error({ err, request_id: requestId }, "internal error");
  return new ConnectError(`internal error (request id ${requestId})`, Code.Internal);
}

/**
 * Interceptor applying {@link toConnectError} to unary results and to errors raised while a server
 * stream is being consumed.
 */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: watchStream(res.message, { signal: req.signal, onEnd: (_code, err) => (err === undefined ? undefined : mapError(err, req, logger)) }) };
    } catch (err) {
      throw mapError(err, req, logger);
    }
  };
}

/** What a call's error becomes. A raw error raised because the client went away (or its deadline passed) is the abort's code, not a fault. */
function mapError(err: unknown, req: { signal: AbortSignal; contextValues: ContextValues }, logger: Logger): ConnectError {
  // A watch ended by the shutdown keeps its own error (it carries where to resume), also when the
  // shutdown's abort reaches the call first.
  const own = err instanceof ConnectError || err instanceof WatchEndedError;
  return req.signal.aborted && !own ? endingError(err, req.signal) : toConnectError(err, req.contextValues.get(requestIdKey), logger);
}
