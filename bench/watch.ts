/**
 * bench:watch — BENCH_WATCHERS (default 1,000) WatchSession streams over 50 sessions on one sessiond
 * process (B) while turns are appended through another (A) over the same database, at a steady
 * BENCH_RATE (default 50: a turn per session per second, a chat's pace) AppendTurns/s of one ~250-byte
 * turn each, round-robin over the sessions: every
 * turn reaches B's watchers through Postgres LISTEN/NOTIFY. Both servers are real processes
 * (bench/process.ts); the watchers run in worker threads of this process (bench/watch-clients.ts) over
 * 8 HTTP/2 connections.
 *
 * Watchers are opened in steps (a quarter, half, all of them, each step at once), each step followed by
 * a settling pause and a measuring window (BENCH_MEASURE_S, default 30 s, at the full count; 5 s before):
 * - latency: from commit (the AppendTurns response arriving here) to receipt (the turn arriving at a
 *   watcher), over every (watcher, turn) delivery of the turns sent in the window to the watchers live
 *   before it began, each of which must get every such turn of its session (the appends stop after the
 *   last window and the bench waits for the deliveries to land). The same from the request's send time
 *   is printed as an upper bound. A step whose watchers are not all live (caught_up) within 60 s goes on
 *   with those that are, and fails the bench.
 * - memory: B's RSS (/proc/<pid>/status, the median of samples over the window) with no watcher (after a
 *   warm-up with 50 that are gone again) and at each step; kb_per_watcher = (rss_full - rss_0) / watchers.
 *   Also the least heap used /metrics reports in the window, which leaves most of the garbage out.
 * - database connections: B's backends in pg_stat_activity (matched by client port to B's own sockets,
 *   read from /proc), the most seen at once in the window, at each step. The bench exits 1 if they grow
 *   with the watchers: past B's pool size + 1, or other than one LISTEN connection (and if a watcher
 *   failed or a delivery is missing).
 * Targets: p99_ms <= 100, kb_per_watcher <= 64, db_connections constant as watchers grow.
 */
import { createClient } from "@connectrpc/connect";
import { Worker } from "node:worker_threads";
import pg from "pg";
import { ParticipantKind } from "../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { benchDatabase, grpcTransport, median } from "./harness.js";
import { rssOf, startServerProcess } from "./process.js";
import { backendsOf, cpuMsOf, metricsOf } from "./server-probes.js";
import { nowMs, type WatcherLog } from "./watch-clients.js";

const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 1000);
const SESSIONS = 50;
const RATE = Number(process.env.BENCH_RATE ?? 50);
const MEASURE_MS = Number(process.env.BENCH_MEASURE_S ?? 30) * 1000;
const STEP_MS = 5000;
const SETTLE_MS = 3000;
/** How long a step's watchers may take to be live (caught_up) before the bench goes on without the rest. */
const OPEN_TIMEOUT_MS = 60_000;
const WORKERS = 2;
const CONNECTIONS_PER_WORKER = 4;
const STEPS = [0, Math.round(WATCHERS / 4), Math.round(WATCHERS / 2), WATCHERS];
const TAIL = "I was charged twice for my subscription this month and cannot find where to ask for a refund; please check the order (ref #";

const db = await benchDatabase();
const servers: { pid: number; stop(): void }[] = [];
process.on("exit", () => servers.forEach((s) => s.stop()));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
// A first (it applies the migrations), then B.
const a = await startServerProcess(db.url);
servers.push(a);
const b = await startServerProcess(db.url);
servers.push(b);
const writer = createClient(SessionService, grpcTransport(a.url));
const monitor = new pg.Client({ connectionString: db.url });
await monitor.connect();
const pgPort = Number(new URL(db.url).port || 5432);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sessionIds: string[] = [];
for (let i = 0; i < SESSIONS; i++) {
  const { session } = await writer.createSession({
    namespace: "watch",
    sessionId: `s${i}`,
    participants: [
      { participantId: "u", kind: ParticipantKind.USER },
      { participantId: "a", kind: ParticipantKind.AGENT },
    ],
  });
  sessionIds.push(session!.id);
}

// The load: open loop, turn `id` to session id % SESSIONS at t0 + id / RATE, its content starting with the id.
const sentAt: number[] = [];
const ackedAt: number[] = [];
const lastSeq = sessionIds.map(() => 0n);
let appendErrors = 0;
let appending = true;
const appender = (async () => {
  const t0 = performance.now();
  for (let id = 0; appending; id++) {
    const s = id % SESSIONS;
    sentAt[id] = nowMs();
    writer.appendTurns({ id: sessionIds[s], turns: [{ participantId: Math.floor(id / SESSIONS) % 2 ? "a" : "u", content: `${id} ${TAIL}${100000 + id})` }] }).then(
      (r) => {
        ackedAt[id] = nowMs();
        if (r.turns[0].seq > lastSeq[s]) lastSeq[s] = r.turns[0].seq;
      },
      () => appendErrors++,
    );
    const wait = t0 + ((id + 1) * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
  }
})();
const nextId = () => sentAt.length;

const METRICS = ["sessiond_watchers", "sessiond_nodejs_heap_size_used_bytes", 'sessiond_db_pool_connections{state="total"}', "sessiond_db_pool_max"] as const;
const metricsOfB = () => metricsOf(b.url, METRICS);

const failures: string[] = [];
function startClients(connections: number): Worker {
  const w = new Worker(new URL("./watch-clients.ts", import.meta.url), { workerData: { watchClients: true, url: b.url, connections } });
  w.on("error", (e) => failures.push(`watch worker: ${e.message}`));
  return w;
}
/** Posts `message` to `w`; resolves with its answer that carries `key` (rejects if the worker fails first). */
function ask<T>(w: Worker, message: unknown, key: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const on = (m: Record<string, unknown>) => {
      if (!(key in m)) return;
      w.off("message", on).off("error", reject);
      resolve(m as T);
    };
    w.on("message", on).once("error", reject);
    w.postMessage(message);
  });
}

/** Opens watchers `from` .. `to - 1` at once (watcher k watches session k % SESSIONS, from its last acknowledged seq); returns how many went live. */
async function open(workers: Worker[], from: number, to: number): Promise<number> {
  const batches = workers.map(() => [] as { id: string; session: number; afterSeq: string }[]);
  for (let k = from; k < to; k++) batches[k % workers.length].push({ id: sessionIds[k % SESSIONS], session: k % SESSIONS, afterSeq: String(lastSeq[k % SESSIONS]) });
  // A slow opening says how far it got.
  const progress = setInterval(async () => {
    const m = await metricsOfB().catch(() => ({}) as Record<string, number>);
    console.log(`  ... B serves ${m.sessiond_watchers} watchers (opening ${from + 1}..${to}), B RSS ${(rssOf(b.pid) / 1048576).toFixed(0)} MB`);
  }, 10_000);
  try {
    const answers = await Promise.all(workers.map((w, i) => ask<{ live: number }>(w, { open: batches[i], timeoutMs: OPEN_TIMEOUT_MS }, "opened")));
    return answers.reduce((n, x) => n + x.live, 0);
  } finally {
    clearInterval(progress);
  }
}

interface Window {
  watchers: number;
  /** Turns sent in the window: ids firstId .. endId - 1, from startMs on (nowMs). */
  firstId: number;
  endId: number;
  startMs: number;
  rssMb: number;
  /** B's least heap used seen (/metrics, at every sample): about its live heap, garbage aside. */
  heapMinMb: number;
  /** The most of B's backends seen at once, and of those not idle. */
  connections: number;
  busy: number;
  /** The most of them that were the LISTEN/NOTIFY connection (application_name sessiond-signals). */
  signals: number;
  by: Record<string, number>;
  metrics: Record<string, number>;
  /** CPU time over the window's time: of B, of A, of this process (the watchers' and the load's clients). */
  cpuB: number;
  cpuA: number;
  cpuBench: number;
}

const mb = (bytes: number | undefined) => ((bytes ?? NaN) / 1048576).toFixed(1);

/** Samples B for `ms`: the median RSS, the most backends seen, what /metrics says, the CPU shares. */
async function measure(watchers: number, ms: number): Promise<Window> {
  const startMs = nowMs();
  const firstId = nextId();
  const cpu0 = [cpuMsOf(b.pid), cpuMsOf(a.pid)];
  const own0 = process.cpuUsage();
  const heap0 = (await metricsOfB()).sessiond_nodejs_heap_size_used_bytes;
  let heapMin = heap0;
  const rss: number[] = [];
  let connections = 0;
  let busy = 0;
  let signals = 0;
  let by: Record<string, number> = {};
  const end = performance.now() + ms;
  while (performance.now() < end) {
    rss.push(rssOf(b.pid));
    const seen = await backendsOf(monitor, b.pid, pgPort);
    if (seen.count >= connections) ({ count: connections, by } = seen);
    busy = Math.max(busy, seen.busy);
    signals = Math.max(signals, seen.signals);
    heapMin = Math.min(heapMin, (await metricsOfB()).sessiond_nodejs_heap_size_used_bytes);
    await sleep(250);
  }
  const metrics = await metricsOfB();
  const w: Window = {
    watchers,
    firstId,
    endId: nextId(),
    startMs,
    rssMb: median(rss) / 1048576,
    heapMinMb: heapMin / 1048576,
    connections,
    busy,
    signals,
    by,
    metrics,
    cpuB: (cpuMsOf(b.pid) - cpu0[0]) / ms,
    cpuA: (cpuMsOf(a.pid) - cpu0[1]) / ms,
    cpuBench: ((u) => (u.user + u.system) / 1000 / ms)(process.cpuUsage(own0)),
  };
  if (metrics.sessiond_watchers !== watchers) failures.push(`B serves ${metrics.sessiond_watchers} watchers, expected ${watchers}`);
  console.log(
    `${String(watchers).padStart(5)} watchers: B RSS ${w.rssMb.toFixed(1)} MB (median), heap used ${mb(heap0)} -> ${mb(metrics.sessiond_nodejs_heap_size_used_bytes)} MB (least ${mb(heapMin)} MB), ` +
      `B's database connections ${connections} at most (${Object.entries(by).map(([k, v]) => `${k} ${v}`).join(", ")}), ${busy} busy at most; ` +
      `pool ${metrics['sessiond_db_pool_connections{state="total"}']} of ${metrics.sessiond_db_pool_max} at the end; CPU B ${(w.cpuB * 100).toFixed(0)}% A ${(w.cpuA * 100).toFixed(0)}% bench ${(w.cpuBench * 100).toFixed(0)}%`,
  );
  return w;
}

// The watchers' threads start (and load their code) before anything is measured.
const workers = Array.from({ length: WORKERS }, () => startClients(CONNECTIONS_PER_WORKER));
// Warm-up: 50 watchers for a few seconds on a worker of their own, then gone; B back to no watcher.
const warm = startClients(1);
await open([warm], 0, SESSIONS);
await sleep(3000);
await ask(warm, { close: true }, "watchers");
await warm.terminate();
while ((await metricsOfB()).sessiond_watchers !== 0) await sleep(100);
await sleep(2000);

const windows: Window[] = [];
let opened = 0;
for (const step of STEPS) {
  if (step > opened) {
    const t = performance.now();
    const live = await open(workers, opened, step);
    const s = ((performance.now() - t) / 1000).toFixed(1);
    if (live < step - opened) failures.push(`opening watchers ${opened + 1}..${step}: ${live} of ${step - opened} live (caught_up) within ${OPEN_TIMEOUT_MS / 1000} s`);
    console.log(`opened watchers ${opened + 1}..${step}: ${live} of ${step - opened} live in ${s} s`);
    opened = step;
    await sleep(SETTLE_MS);
  }
  windows.push(await measure(step, step === WATCHERS ? MEASURE_MS : STEP_MS));
}
// The appends stop; the deliveries of the last turns land (until none came for a second, at most 20 s).
appending = false;
await appender;
const drainUntil = performance.now() + 20_000;
for (let before = -1, now = 0; now !== before && performance.now() < drainUntil; ) {
  await sleep(1000);
  before = now;
  now = (await Promise.all(workers.map((w) => ask<{ count: number }>(w, { count: true }, "count")))).reduce((n, x) => n + x.count, 0);
}
const logs = (await Promise.all(workers.map((w) => ask<{ watchers: WatcherLog[] }>(w, { close: true }, "watchers")))).flatMap((x) => x.watchers);
await Promise.all(workers.map((w) => w.terminate()));
await monitor.end();
for (const s of servers) s.stop();
// Each gone (or a zombie with no memory) within 5 s.
const alive = (pid: number) => {
  try {
    return rssOf(pid) > 0;
  } catch {
    return false;
  }
};
for (const s of servers) for (let i = 0; i < 50 && alive(s.pid); i++) await sleep(100);
await db.close();

// Per window: the watchers live before it began get every turn of their session sent in it.
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
const ended = logs.filter((w) => w.error);
if (ended.length) failures.push(`${ended.length} watchers ended by themselves, e.g. ${ended[0].error}`);
const fromAck: number[][] = [];
for (const w of windows) {
  const ack: number[] = [];
  const send: number[] = [];
  let missing = 0;
  for (const watcher of logs) {
    if (watcher.liveAt === undefined || watcher.liveAt > w.startMs) continue;
    const got = new Map<number, number>();
    for (let i = 0; i < watcher.log.length; i += 2) if (watcher.log[i] >= w.firstId && watcher.log[i] < w.endId) got.set(watcher.log[i], watcher.log[i + 1]);
    for (let id = w.firstId + ((watcher.session - w.firstId) % SESSIONS + SESSIONS) % SESSIONS; id < w.endId; id += SESSIONS) {
      const at = got.get(id);
      if (ackedAt[id] === undefined) continue;
      if (at === undefined) {
        if (watcher.endedAt === undefined || watcher.endedAt > sentAt[id]) missing++;
        continue;
      }
      ack.push(at - ackedAt[id]);
      send.push(at - sentAt[id]);
    }
  }
  ack.sort((x, y) => x - y);
  send.sort((x, y) => x - y);
  fromAck.push(ack);
  if (!w.watchers) continue;
  if (missing) failures.push(`${w.watchers} watchers: ${missing} deliveries missing`);
  console.log(
    `${String(w.watchers).padStart(5)} watchers: ${w.endId - w.firstId} turns, ${ack.length} deliveries; commit to receipt p50 ${pct(ack, 0.5).toFixed(1)} ms, p99 ${pct(ack, 0.99).toFixed(1)} ms, max ${pct(ack, 1).toFixed(1)} ms; ` +
      `from send p50 ${pct(send, 0.5).toFixed(1)} ms, p99 ${pct(send, 0.99).toFixed(1)} ms`,
  );
}
if (appendErrors) failures.push(`${appendErrors} AppendTurns calls failed`);

const [idle, quarter, , full] = windows;
// Per watcher B served (all of them, unless some could not open).
const served = full.metrics.sessiond_watchers || WATCHERS;
const kbPerWatcher = ((full.rssMb - idle.rssMb) * 1024) / served;
const slopeKb = ((full.rssMb - quarter.rssMb) * 1024) / (served - quarter.watchers);
const heapKb = ((full.heapMinMb - idle.heapMinMb) * 1024) / served;
console.log(
  `B RSS per watcher: ${kbPerWatcher.toFixed(1)} KB from 0 to ${served} watchers (${slopeKb.toFixed(1)} KB from ${quarter.watchers} to ${served}); ` +
    `least heap used: ${heapKb.toFixed(1)} KB per watcher (RSS also holds the garbage of the deliveries, which grows with their rate)`,
);
const series = windows.map((w) => `${w.watchers}:${w.connections}`).join(" ");
console.log(`B's database connections by watchers (most at once): ${series}; busy: ${windows.map((w) => `${w.watchers}:${w.busy}`).join(" ")}`);
// Pool connections open as calls need them (opening watchers takes many at once) and close after 10 s
// idle, so the count wanders below the bound of the pool and the one signal connection; a connection
// per watcher (or per watched session) would pass it by hundreds (or 50).
const poolMax = full.metrics.sessiond_db_pool_max ?? 10;
if (windows.some((w) => w.connections > poolMax + 1 || w.signals !== 1)) {
  failures.push(`B's database connections grow with the watchers: ${series}; LISTEN connections ${windows.map((w) => w.signals).join(" ")} (bound: pool of ${poolMax} + 1 signal connection)`);
}
const ack = fromAck[windows.length - 1];
for (const f of failures) console.error(`FAILED: ${f}`);
console.log(`RESULT watch p50_ms=${pct(ack, 0.5).toFixed(1)} p99_ms=${pct(ack, 0.99).toFixed(1)} kb_per_watcher=${kbPerWatcher.toFixed(1)} db_connections=${full.connections}`);
process.exit(failures.length ? 1 : 0);
