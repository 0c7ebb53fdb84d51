/**
 * The database side of readiness: can a call get a pooled connection and a trivial query answered
 * within a bound? Goes through the pool the calls use, so a starved pool (every connection busy,
 * callers queueing) reads as not ready, like a database that is down or too slow.
 */
import type { DataSource } from "typeorm";
import { poolOf } from "./data-source.js";

/**
 * A probe (handlers/readiness.ts `Probe`) over `dataSource`'s pool: `SELECT 1` within `timeoutMs`
 * (default 1000), counting the wait for a connection. Resolves with undefined when it answered, else
 * with a short public reason; details go to `onFailure` (for the log). It never holds a connection past
 * the bound: a query still running then is ended by destroying its connection, and a connection granted
 * after the bound is released at once.
 */
export function createDatabaseProbe(dataSource: DataSource, opts: { timeoutMs?: number; onFailure?: (err: unknown) => void } = {}): () => Promise<string | undefined> {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const pool = () => poolOf(dataSource);
  return async () => {
    const p = pool();
    if (!p) return "database not connected";
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => (timer = setTimeout(() => resolve("expired"), timeoutMs)));
    try {
      const connecting = p.connect();
      const client = await Promise.race([connecting, expired]);
      if (client === "expired") {
        connecting.then((c) => c.release(), () => {});
        return `no database connection free within ${timeoutMs} ms (pool starved)`;
      }
      const query = client.query("SELECT 1").then(() => undefined, (err: unknown) => err ?? new Error("query failed"));
      const outcome = await Promise.race([query, expired]);
      if (outcome === undefined) {
        client.release();
        return undefined;
      }
      // Destroying the connection ends a query still running and frees its slot in the pool.
      client.release(outcome === "expired" ? new Error("readiness probe timed out") : (outcome as Error));
      if (outcome !== "expired") opts.onFailure?.(outcome);
      return outcome === "expired" ? `the database did not answer within ${timeoutMs} ms` : "database unavailable";
    } catch (err) {
      opts.onFailure?.(err);
      return "database unavailable";
    } finally {
      clearTimeout(timer);
    }
  };
}
