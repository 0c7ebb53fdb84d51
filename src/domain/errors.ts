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

/**
 * What the call refers to (a row it links to) was deleted by a concurrent call meanwhile. -> aborted,
 * to be retried
 */
export class GoneError extends DomainError {}

/** A namespace id cached by this process names a namespace deleted meanwhile; resolve the name again. */
export class NamespaceGoneError extends GoneError {}

/**
 * The transaction lost a race with a concurrent one (a deadlock or a serialization failure) and wrote
 * nothing: running it again may succeed (see retryOnConflict in retry.ts). -> aborted, to be retried
 */
export class RetryableConflictError extends DomainError {}

/** The backing store cannot be reached right now, or refuses work. -> unavailable, with a retry hint */
export class UnavailableError extends DomainError {}

/**
 * The backing store is up but has no connection free within its bound: overload, not a fault.
 * -> unavailable, with a retry hint
 */
export class StoreBusyError extends UnavailableError {}

/**
 * A service sessiond calls on the caller's behalf (the namespace's integrator) failed or timed out;
 * nothing was written. Not sessiond's fault. -> unavailable, with the reason and a retry hint
 */
export class IntegratorUnavailableError extends DomainError {}

/** The operation the call follows was cancelled (CancelOperation, or by its caller). -> canceled */
export class CancelledError extends DomainError {}

/** The operation the call follows ended in failure; the server logged why. -> aborted */
export class OperationFailedError extends DomainError {}

/**
 * A watch (WatchSession, WatchSessions) ended before its end: the server is stopping (-> unavailable) or
 * the stream fell too far behind the live changes (-> resource_exhausted). Carries where to resume.
 */
export class WatchEndedError extends DomainError {
  constructor(
    message: string,
    readonly reason: "shutdown" | "overflow",
    readonly position: { seq: number; change: number; cursor: string },
  ) {
    super(message);
  }
}

/** A position the call asks for is older than what is kept. -> out_of_range */
export class OutOfRangeError extends DomainError {}
