/**
 * The one place where errors become Connect errors. Domain errors map to their codes with their
 * (user-facing) messages; anything else becomes `internal` with a generic message carrying the request
 * id, and its cause is logged, never sent: raw errors may hold SQL or stack traces.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  AlreadyExistsError,
  ConflictError,
  InvalidInputError,
  isConcurrencyConflict,
  isDatabaseUnavailable,
  NotFoundError,
  PreconditionError,
  UnavailableError,
} from "../domain/errors.js";
import type { Logger } from "../logger.js";
import { requestIdKey } from "./logging.js";

/** Converts any thrown value into a ConnectError that is safe to send. */
export function toConnectError(err: unknown, requestId: string, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidInputError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof NotFoundError) return new ConnectError(err.message, Code.NotFound);
  if (err instanceof AlreadyExistsError) return new ConnectError(err.message, Code.AlreadyExists);
  if (err instanceof ConflictError) return new ConnectError(err.message, Code.Aborted);
  if (err instanceof PreconditionError) return new ConnectError(err.message, Code.FailedPrecondition);
  if (isConcurrencyConflict(err)) {
    logger.info({ err: { code: "concurrency_conflict" }, request_id: requestId }, "transaction lost a race");
    return new ConnectError(`a concurrent change to the same data won; retry the call (request id ${requestId})`, Code.Aborted);
  }
  if (err instanceof UnavailableError || isDatabaseUnavailable(err)) {
    logger.warn({ err, request_id: requestId }, "database unavailable");
    return new ConnectError(`the database is unavailable; retry later (request id ${requestId})`, Code.Unavailable);
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
    const requestId = req.contextValues.get(requestIdKey);
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* source;
          } catch (err) {
            throw toConnectError(err, requestId, logger);
          }
        })(),
      };
    } catch (err) {
      throw toConnectError(err, requestId, logger);
    }
  };
}
