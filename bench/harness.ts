/**
 * Shared benchmark plumbing: a fresh database (on DATABASE_URL's server, or an embedded Postgres when it
 * is unset), a real sessiond on port 0 over it, a closed-loop load generator and medians.
 */
import { mkdtempSync, chmodSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { once } from "node:events";
import { parentPort, Worker } from "node:worker_threads";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { startApp, type App } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { createLogger } from "../src/logger.js";
import { bearer, TEST_ADMIN_KEY } from "../test/setup/auth.js";
import { citusCluster, createDatabase, dropDatabases, withDatabase } from "../test/setup/databases.js";

/** The bootstrap ADMIN key benchmark servers start with. */
export const BENCH_KEY = TEST_ADMIN_KEY;

/** A gRPC transport sending BENCH_KEY, to the service and to bare baselines alike (same bytes on the wire). */
export function grpcTransport(baseUrl: string): Transport {
  return createGrpcTransport({ baseUrl, interceptors: [bearer(BENCH_KEY)] });
}

/** A benchmark database server with one fresh database. */
export interface BenchDatabase {
  url: string;
  close(): Promise<void>;
}

/**
 * Creates a fresh database `sessiond_bench_*` (dropped by close()): on the Citus cluster whose
 * coordinator BENCH_CITUS_URL names (made on every node, distributed by the server's migrations), else
 * on DATABASE_URL's server, else on an embedded Postgres.
 */
export async function benchDatabase(): Promise<BenchDatabase> {
  const citusUrl = process.env.BENCH_CITUS_URL;
  if (citusUrl) {
    const cluster = await citusCluster(citusUrl);
    const name = `sessiond_bench_${Date.now().toString(36)}`;
    await createDatabase(cluster, name);
    return { url: withDatabase(citusUrl, name), close: () => dropDatabases(cluster, name) };
  }
  let adminUrl = process.env.DATABASE_URL;
  let stopEmbedded = async () => {};
  if (!adminUrl) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-bench-pg-"));
    chmodSync(dir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, "data") });
    adminUrl = embedded.adminUrl;
    stopEmbedded = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const name = `sessiond_bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  return {
    url: withDatabase(adminUrl, name),
    async close() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
      await stopEmbedded();
    },
  };
}

/** Starts sessiond (default configuration, logs discarded) over `url` on a free port. */
export async function benchApp(url: string, env: Record<string, string> = {}): Promise<App> {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: url, SESSIOND_BOOTSTRAP_ADMIN_KEY: BENCH_KEY, ...env });
  const devNull = { write: () => true };
  return startApp(config, createLogger(config.logLevel, devNull as never));
}

/** Runs `call` from `concurrency` closed loops for `ms`; returns completed calls per second. */
export async function load(concurrency: number, ms: number, call: (i: number) => Promise<unknown>): Promise<number> {
  return (await loadCounted(concurrency, ms, call)).rate;
}

/** {@link load}, also returning how many calls completed. */
export async function loadCounted(concurrency: number, ms: number, call: (i: number) => Promise<unknown>): Promise<{ rate: number; calls: number }> {
  const end = performance.now() + ms;
  let done = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = worker; performance.now() < end; i += concurrency) {
        await call(i);
        done++;
      }
    }),
  );
  return { rate: done / ((performance.now() - start) / 1000), calls: done };
}

/** The median of `values`. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times `fn` in milliseconds. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** What a load generator in a worker thread measured, round by round. */
export interface Rounds {
  service: number[];
  baseline: number[];
  bare: number[];
}

/** A server the worker's rounds load, whose CPU per call the main thread measures. */
export type CpuTarget = "service" | "bare";

/** Worker -> main thread: a round on `target` starts, or ended after `calls` calls; the main thread answers "ack". */
type RoundMark = { mark: "start"; target: CpuTarget } | { mark: "end"; target: CpuTarget; calls: number };

/**
 * In the load generator's worker: runs one round of `round` against `target` between two marks, so that
 * the main thread (the servers) reads its own CPU time exactly around it. Returns the round's rate.
 */
export async function cpuRound(target: CpuTarget, round: () => Promise<{ rate: number; calls: number }>): Promise<number> {
  const mark = async (m: RoundMark) => {
    parentPort!.postMessage(m);
    await once(parentPort!, "message");
  };
  await mark({ mark: "start", target });
  const { rate, calls } = await round();
  await mark({ mark: "end", target, calls });
  return rate;
}

/**
 * The server side of a three-way benchmark, alone on this thread: sessiond (pool of `poolSize`) and a
 * bare connect-node HTTP/2 server whose routes `bareRoutes` builds over a pg pool of the same size. The
 * load generator is `workerUrl` (the benchmark's own file) run in a worker thread with workerData
 * { url, bareUrl, dbUrl }; it marks its service and bare rounds with {@link cpuRound} and posts back its
 * Rounds. Returns their medians, and the medians of this thread's CPU µs per call over the marked rounds
 * (`process.threadCpuUsage`: the servers' CPU; the worker's is its own), once everything is stopped.
 */
export async function serveForWorker(workerUrl: URL, poolSize: number, bareRoutes: (pool: pg.Pool) => (router: ConnectRouter) => void) {
  const db = await benchDatabase();
  const app = await benchApp(db.url, { SESSIOND_DB_POOL_SIZE: String(poolSize) });
  const barePool = new pg.Pool({ connectionString: db.url, max: poolSize });
  const bare = http2.createServer(connectNodeAdapter({ routes: bareRoutes(barePool) }));
  await new Promise<void>((r) => bare.listen(0, "127.0.0.1", r));
  const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;
  const worker = new Worker(workerUrl, { workerData: { url: app.url, bareUrl, dbUrl: db.url } });
  const cpu: Record<CpuTarget, number[]> = { service: [], bare: [] };
  let started: NodeJS.CpuUsage | undefined;
  const rounds = await new Promise<Rounds>((resolve, reject) => {
    worker.on("message", (m: RoundMark | Rounds) => {
      if (!("mark" in m)) return resolve(m);
      if (m.mark === "start") started = process.threadCpuUsage();
      else {
        const used = process.threadCpuUsage(started);
        cpu[m.target].push((used.user + used.system) / m.calls);
      }
      worker.postMessage("ack");
    });
    worker.once("error", reject);
  });
  await worker.terminate();
  bare.close();
  await barePool.end();
  await app.stop();
  await db.close();
  return {
    service: median(rounds.service),
    baseline: median(rounds.baseline),
    bare: median(rounds.bare),
    cpuUsPerCall: median(cpu.service),
    bareCpuUsPerCall: median(cpu.bare),
  };
}
