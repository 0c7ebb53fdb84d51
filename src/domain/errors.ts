/**
 * Typed domain errors. Domain code throws these; handlers/errors.ts maps each to one Connect code.
 * Messages are written for the API's users: they name the field or the resource, never SQL.
 */

/** Base of every error the domain raises on purpose. */
export abstract class DomainError extends Error {
  override name = this.constructor.name;
}

/** The addressed resource does not exist (or is hidden from the caller). -> not_found */
export class NotFoundError extends DomainError {}

/** A request field is out of bounds. -> invalid_argument. The message starts with the field path. */
export class InvalidInputError extends DomainError {
  constructor(
    /** Path of the offending field, e.g. `labels["a b"]` or `filter.create_time_before`. */
    readonly field: string,
    /** What is wrong with it. */
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** The resource to create exists already. -> already_exists */
export class AlreadyExistsError extends DomainError {}

/** A concurrent change won (stale etag). -> aborted */
export class ConflictError extends DomainError {}

/** The resource is not in a state that allows the operation. -> failed_precondition */
export class PreconditionError extends DomainError {}

/** No credential, or one that is unknown, revoked or expired. -> unauthenticated */
export class UnauthenticatedError extends DomainError {}

/** The credential is valid but may not do this (role, namespace or session). -> permission_denied */
export class PermissionDeniedError extends DomainError {}

/**
 * A caller is over a limit: a client secret over its session's per-minute rate, or more bulk deletes
 * than the process admits at once. -> resource_exhausted with a retry delay
 */
export class RateLimitedError extends DomainError {
  constructor(
    message: string,
    /** How long until a request would be admitted. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** A namespace id cached by this process names a namespace deleted meanwhile; resolve the name again. */
export class NamespaceGoneError extends DomainError {}

/** The backing store cannot be reached right now. -> unavailable */
export class UnavailableError extends DomainError {}

/** Whether `err` is a deadlock or serialization failure: the transaction lost a race and may be retried. */
export function isConcurrencyConflict(err: unknown): boolean {
  const code = databaseErrorCode(err);
  return code === "40P01" || code === "40001";
}

/** The Postgres SQLSTATE (or Node error code) of a database error, through TypeORM's wrapper. */
export function databaseErrorCode(err: unknown): string | undefined {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.driverError?.code ?? e?.code;
}

const CONNECTION_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/**
 * Whether `err` says the database is unreachable or refusing work (connection failures, Postgres
 * classes 08 connection_exception and 57P admin/crash shutdown, 53300 too_many_connections), as
 * opposed to a bug. Such errors are worth a retry by the client.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 4; e = e.driverError ?? e.cause, depth++) {
    const code = typeof e.code === "string" ? e.code : "";
    if (CONNECTION_ERROR_CODES.has(code) || code.startsWith("08") || code.startsWith("57P") || code === "53300") return true;
    if (typeof e.message === "string" && /Connection terminated|timeout exceeded when trying to connect|connection timeout/i.test(e.message)) return true;
  }
  return false;
}
