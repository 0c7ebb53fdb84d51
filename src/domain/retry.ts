/**
 * The one retry-on-conflict policy: a transaction that lost a race with a concurrent one (a deadlock
 * or a serialization failure, which the store reports as RetryableConflictError) wrote nothing and is
 * run again, a bounded number of times.
 */
import { RetryableConflictError } from "./errors.js";

/**
 * Runs `work`, and again while it fails with RetryableConflictError, at most `attempts` times in all.
 * @throws the last RetryableConflictError when every attempt lost, or any other error at once
 */
export async function retryOnConflict<T>(work: () => Promise<T>, opts: { attempts: number }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (attempt >= opts.attempts || !(err instanceof RetryableConflictError)) throw err;
    }
  }
}
