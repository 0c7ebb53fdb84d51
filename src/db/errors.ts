/**
 * The one place that knows Postgres's and node-postgres's errors (SQLSTATEs, connection failures, the
 * pool's timeout) and turns them into the domain's errors, so that nothing above db/ sees a SQLSTATE.
 * Every store passes its errors through {@link translated}; the few statements that expect a
 * particular violation (a duplicate name, a missing speaker) test for it with the predicates below.
 */
import {
  AlreadyExistsError,
  DomainError,
  GoneError,
  RetryableConflictError,
  StoreBusyError,
  UnavailableError,
} from "../domain/errors.js";

const NOT_NULL_VIOLATION = "23502";
const FOREIGN_KEY_VIOLATION = "23503";
const UNIQUE_VIOLATION = "23505";
const SERIALIZATION_FAILURE = "40001";
const DEADLOCK_DETECTED = "40P01";
const TOO_MANY_CONNECTIONS = "53300";

const CONNECTION_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/** The Postgres SQLSTATE (or Node error code) of a database error, through TypeORM's wrapper. */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; driverError?: { code?: unknown } };
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === "string" ? code : undefined;
}

/** The error and its causes (TypeORM's driverError, `cause`), a few levels deep. */
function* chain(err: unknown): Generator<any> {
  for (let e: any = err, depth = 0; e && depth < 4; e = e.driverError ?? e.cause, depth++) yield e;
}

/** A unique constraint refused the row (23505). */
export const isUniqueViolation = (err: unknown) => sqlState(err) === UNIQUE_VIOLATION;
/** A foreign key refused the row: what it refers to is gone (23503). */
export const isForeignKeyViolation = (err: unknown) => sqlState(err) === FOREIGN_KEY_VIOLATION;
/** A NOT NULL column got a null (23502). */
export const isNotNullViolation = (err: unknown) => sqlState(err) === NOT_NULL_VIOLATION;
/** Postgres refused the rows themselves: class 22 (data exception) or 23 (integrity constraint). */
export const isRowRefused = (err: unknown) => /^2[23]/.test(sqlState(err) ?? "");

/** A deadlock or serialization failure: the transaction lost a race and may be run again. */
function isConcurrencyConflict(err: unknown): boolean {
  const code = sqlState(err);
  return code === DEADLOCK_DETECTED || code === SERIALIZATION_FAILURE;
}

/** node-postgres's error when no pooled connection frees up within `connectionTimeoutMillis`. */
function isPoolTimeout(err: unknown): boolean {
  for (const e of chain(err)) if (typeof e.message === "string" && /timeout exceeded when trying to connect/i.test(e.message)) return true;
  return false;
}

/**
 * Whether `err` says the database is unreachable or refusing work (connection failures, Postgres
 * classes 08 connection_exception and 57P admin/crash shutdown, 53300 too_many_connections), as
 * opposed to a bug.
 */
function isUnavailable(err: unknown): boolean {
  for (const e of chain(err)) {
    const code = typeof e.code === "string" ? e.code : "";
    if (CONNECTION_ERROR_CODES.has(code) || code.startsWith("08") || code.startsWith("57P") || code === TOO_MANY_CONNECTIONS) return true;
    if (typeof e.message === "string" && /Connection terminated|timeout exceeded when trying to connect|connection timeout/i.test(e.message)) return true;
  }
  return false;
}

/**
 * The domain error a database error stands for, with the original as its `cause` (logged, never sent):
 * a lost race -> RetryableConflictError, no pooled connection free in time -> StoreBusyError, the
 * database unreachable -> UnavailableError, a foreign key violation -> GoneError (a row the statement
 * refers to was deleted meanwhile), a unique violation -> AlreadyExistsError. Domain errors and
 * anything else (a bug: it stays `internal`) are returned as they are.
 */
export function translateDatabaseError(err: unknown): unknown {
  if (err instanceof DomainError) return err;
  if (isConcurrencyConflict(err)) return new RetryableConflictError("a concurrent transaction changed the same data; retry", { cause: err });
  if (isPoolTimeout(err)) return new StoreBusyError("no database connection free in time", { cause: err });
  if (isUnavailable(err)) return new UnavailableError("the database is unavailable", { cause: err });
  if (isForeignKeyViolation(err)) return new GoneError("what the call refers to was deleted meanwhile", { cause: err });
  if (isUniqueViolation(err)) return new AlreadyExistsError("what the call creates exists already", { cause: err });
  return err;
}

/** Runs `work`, translating what it throws (see {@link translateDatabaseError}). */
export async function translatingErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw translateDatabaseError(err);
  }
}

/**
 * `store` with every method's errors translated into domain errors (a copy: the store is a plain
 * object of methods). Applied once to each store as it is built (stores.ts).
 */
export function translated<S extends object>(store: S): S {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(store)) {
    out[key] =
      typeof value !== "function"
        ? value
        : (...args: unknown[]) => {
            try {
              const result = value.apply(store, args);
              return result instanceof Promise ? result.catch((err) => Promise.reject(translateDatabaseError(err))) : result;
            } catch (err) {
              throw translateDatabaseError(err);
            }
          };
  }
  return out as S;
}
