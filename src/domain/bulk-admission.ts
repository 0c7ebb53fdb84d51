/**
 * Admission of long work (bulk deletes, namespace deletions): a fixed number of slots per process and a
 * bounded queue with a bounded wait. Each admitted operation uses at most one pooled connection at a
 * time, so the slots are the share of the pool long work may take; live calls keep the rest and never
 * starve. Whatever is not admitted fails fast with `resource_exhausted` and a retry hint, instead of
 * piling up on the pool.
 */
import { RateLimitedError } from "./errors.js";

/** How much long work a process admits. */
export interface BulkLimits {
  /** Operations running at once. */
  maxOperations: number;
  /** Operations waiting for a slot beyond those; 0 refuses the excess at once. */
  maxQueued: number;
  /** How long one may wait for a slot, in ms. */
  maxWaitMs: number;
}

/** The limits when the caller names none (as in config.ts). */
export const DEFAULT_BULK_LIMITS: BulkLimits = { maxOperations: 4, maxQueued: 16, maxWaitMs: 5000 };

/** Gives the slot back; calling it more than once is harmless. */
export type Release = () => void;

/** Slots for long work. */
export interface Admission {
  /**
   * Resolves with a release once a slot is free; throws RateLimitedError when the queue is full or the
   * wait runs out, and the signal's reason when it is aborted while waiting (nothing is held then).
   */
  acquire(signal: AbortSignal): Promise<Release>;
  /** Operations running and waiting now (for tests and metrics). */
  stats(): { running: number; queued: number };
}

interface Waiter {
  grant(): void;
}

/** Creates the slots of one process. */
export function createAdmission(limits: BulkLimits = DEFAULT_BULK_LIMITS): Admission {
  let running = 0;
  const queue: Waiter[] = [];
  // Retrying sooner than a queued call may wait would only be refused again.
  const retryAfterMs = Math.max(1000, limits.maxWaitMs);
  const busy = (why: string) =>
    new RateLimitedError(`too many bulk deletes are running on this server (${limits.maxOperations} at once, ${why})`, retryAfterMs);

  const releaser = (): Release => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = queue.shift();
      if (next) next.grant(); // the slot passes on: `running` stays
      else running--;
    };
  };

  return {
    async acquire(signal) {
      if (signal.aborted) throw signal.reason;
      if (running < limits.maxOperations) {
        running++;
        return releaser();
      }
      if (queue.length >= limits.maxQueued || limits.maxWaitMs === 0) throw busy(limits.maxQueued ? `${limits.maxQueued} queued` : "no queue");
      return new Promise<Release>((resolve, reject) => {
        const leave = () => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
        };
        const waiter: Waiter = {
          grant() {
            leave();
            resolve(releaser());
          },
        };
        const onAbort = () => {
          leave();
          reject(signal.reason);
        };
        const timer = setTimeout(() => {
          leave();
          reject(busy(`waited ${limits.maxWaitMs} ms for a slot`));
        }, limits.maxWaitMs);
        signal.addEventListener("abort", onAbort, { once: true });
        queue.push(waiter);
      });
    },
    stats: () => ({ running, queued: queue.length }),
  };
}
