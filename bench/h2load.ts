/**
 * h2load (nghttp2's load generator, in C: `apt-get install nghttp2-client`) sending one RPC with a fixed
 * request, and the CPU time of THIS thread across the run. The in-process servers run on this thread and
 * h2load is another process, so the thread's CPU is the server's: its cost per call is measured without
 * a client in the same process competing for the cores.
 *
 * h2load counts any HTTP 200 as a success, but gRPC reports errors as 200 with a grpc-status trailer:
 * callers make the same call once with a real client before measuring, and pass `tally` (OK and failed
 * calls as the server counted them) so that every measured call is checked to have succeeded.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BENCH_KEY, median } from "./harness.js";

/** Where h2load is looked for: on PATH unless BENCH_H2LOAD names it. */
const H2LOAD = process.env.BENCH_H2LOAD ?? "h2load";

/** The install hint of a missing h2load. */
const MISSING = `${H2LOAD} not found: the benchmarks drive servers with h2load (apt-get install nghttp2-client)`;

/** Throws, with the install hint, unless h2load runs: call it before setting anything up. */
export function requireH2load(): void {
  try {
    execFileSync(H2LOAD, ["--version"], { stdio: "ignore" });
  } catch (err) {
    throw new Error((err as NodeJS.ErrnoException).code === "ENOENT" ? MISSING : `${H2LOAD} --version failed: ${(err as Error).message}`);
  }
}

/** One RPC as h2load sends it. */
export interface H2loadTarget {
  /** Base URL of the server, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** Procedure paths, e.g. ["/grpc.health.v1.Health/Check"]; several are sent in turn, all with the same body. */
  paths: string[];
  /** The request message (toBinary). */
  message: Uint8Array;
  /** gRPC over HTTP/2 (default: 5-byte frame, application/grpc) or Connect unary over HTTP/1.1 (raw body, application/proto). */
  protocol?: "grpc" | "connect-h1";
}

/** How h2load drives the target. */
export interface H2loadOptions {
  /**
   * Calls in flight: BENCH_H2LOAD_IN_FLIGHT, else 64 (what issue 16 measured). Over HTTP/2 they are streams
   * of BENCH_H2LOAD_CLIENTS connections (default 1; -c 1 -m 64); over HTTP/1.1, which h2load would
   * pipeline, one connection each (-c 64 -m 1).
   */
  inFlight?: number;
  /** Run for this many milliseconds (-D) ... */
  durationMs?: number;
  /** ... or send this many calls (-n). */
  requests?: number;
  /** Calls the server reports as answered so far (read outside the measured window); checked after the run. */
  tally?: () => Promise<Tally>;
}

/** Calls as a server counted them: OK, and failed with any other code (or refused before its handler). */
export interface Tally {
  ok: number;
  failed: number;
}

/** What one h2load run measured. */
export interface H2loadRun {
  /** Successful calls (2xx) per second, as h2load reports them. */
  rps: number;
  succeeded: number;
  /** Non-2xx responses plus errored and timed-out requests. */
  failed: number;
  /** This thread's CPU time (user + system) over the run, in microseconds, and per successful call. */
  cpuUs: number;
  cpuUsPerCall: number;
}

/** The body h2load sends: the message in a gRPC frame (flag 0, 4-byte big-endian length), or raw for Connect. */
export function requestBody(message: Uint8Array, protocol: H2loadTarget["protocol"] = "grpc"): Uint8Array {
  if (protocol === "connect-h1") return message;
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

/** Runs h2load once against `target`; resolves with its rate, its counts and this thread's CPU per call. */
export async function h2load(target: H2loadTarget, opts: H2loadOptions): Promise<H2loadRun> {
  const h1 = target.protocol === "connect-h1";
  const inFlight = opts.inFlight ?? Number(process.env.BENCH_H2LOAD_IN_FLIGHT ?? 64);
  const clients = h1 ? inFlight : Number(process.env.BENCH_H2LOAD_CLIENTS ?? 1);
  const streams = h1 ? 1 : Math.ceil(inFlight / clients);
  const dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-h2load-"));
  const bodyFile = path.join(dir, "body");
  writeFileSync(bodyFile, requestBody(target.message, target.protocol));
  const args = [
    ...(opts.durationMs ? ["-D", `${Math.round(opts.durationMs)}ms`] : ["-n", String(opts.requests ?? 10_000)]),
    "-c", String(clients), "-m", String(streams), "-t", "1",
    "-d", bodyFile,
    "-H", `content-type: ${h1 ? "application/proto" : "application/grpc"}`,
    ...(h1 ? ["-H", "connect-protocol-version: 1", "--h1"] : ["-H", "te: trailers"]),
    "-H", `authorization: Bearer ${BENCH_KEY}`,
    ...target.paths.map((p) => target.baseUrl + p),
  ];
  try {
    const before = await opts.tally?.();
    const cpu = process.threadCpuUsage();
    const out = await run(args);
    const used = process.threadCpuUsage(cpu);
    const after = await opts.tally?.();
    const result = parse(out);
    if (result.succeeded === 0 || result.failed > 0) throw new Error(`h2load: ${result.succeeded} calls succeeded, ${result.failed} failed\n${out}`);
    if (before && after) {
      const ok = after.ok - before.ok;
      const failed = after.failed - before.failed;
      if (failed > 0 || ok < result.succeeded) throw new Error(`h2load saw ${result.succeeded} successes, but the server answered ${ok} calls OK and ${failed} with an error`);
    }
    const cpuUs = used.user + used.system;
    return { ...result, cpuUs, cpuUsPerCall: cpuUs / result.succeeded };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One side of a comparison: what h2load sends, how the server counts calls, and the same call by a real client. */
export interface Contender {
  target: H2loadTarget;
  tally?: H2loadOptions["tally"];
  /** Makes the call once with a generated client and throws unless it succeeded with the expected answer. */
  check(): Promise<unknown>;
}

/** Medians of a comparison: calls/s and this thread's CPU µs per call, of sessiond and of the bare server. */
export interface Comparison {
  rps: number;
  bareRps: number;
  cpuUsPerCall: number;
  bareCpuUsPerCall: number;
}

/**
 * Measures `service` against `bare` with the same h2load settings: a timed warm-up run of each, then
 * `rounds` runs of each, alternating which goes first, every run preceded by its contender's check. A
 * measured run sends a fixed number of calls (what its contender's warm-up rate gives in `roundMs`), so
 * that it ends with no call in flight: h2load resets the streams still open when a timed run ends, and
 * their half-done work would blur the CPU per call and the server's count of OK calls.
 */
export async function compare(label: string, service: Contender, bare: Contender, opts: { rounds: number; roundMs: number; warmUpMs: number } & Omit<H2loadOptions, "durationMs" | "requests" | "tally">): Promise<Comparison> {
  const calls = new Map<Contender, number>();
  for (const c of [service, bare]) {
    await c.check();
    const warm = await h2load(c.target, { ...opts, durationMs: opts.warmUpMs });
    calls.set(c, Math.max(256, Math.round((warm.rps * opts.roundMs) / 1000 / 64) * 64));
  }
  const runOne = async (c: Contender) => {
    await c.check();
    return h2load(c.target, { ...opts, requests: calls.get(c), tally: c.tally });
  };
  const s: H2loadRun[] = [];
  const b: H2loadRun[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    if (round % 2) b.push(await runOne(bare));
    s.push(await runOne(service));
    if (!(round % 2)) b.push(await runOne(bare));
    const [x, y] = [s.at(-1)!, b.at(-1)!];
    console.log(`${label} round ${round + 1}: sessiond ${x.rps.toFixed(0)} calls/s ${x.cpuUsPerCall.toFixed(0)} µs CPU/call, bare ${y.rps.toFixed(0)} calls/s ${y.cpuUsPerCall.toFixed(0)} µs CPU/call`);
  }
  return {
    rps: median(s.map((r) => r.rps)),
    bareRps: median(b.map((r) => r.rps)),
    cpuUsPerCall: median(s.map((r) => r.cpuUsPerCall)),
    bareCpuUsPerCall: median(b.map((r) => r.cpuUsPerCall)),
  };
}

/**
 * The calls to `procedures` (e.g. "/grpc.health.v1.Health/Check") sessiond at `baseUrl` counted so far
 * in its metrics: OK, and failed (any other code, or refused before the interceptors).
 */
export function metricsCounts(baseUrl: string, procedures: string[]): () => Promise<Tally> {
  const wanted = new Set(procedures.map((p) => p.slice(1)));
  return async () => {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const tally = { ok: 0, failed: 0 };
    for (const line of text.split("\n")) {
      const m = line.match(/^sessiond_rpc_(calls|rejected)_total\{(.*)\} (\d+)$/);
      if (!m) continue;
      const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      if (!wanted.has(`${labels.service}/${labels.method}`)) continue;
      tally[m[1] === "calls" && labels.code === "ok" ? "ok" : "failed"] += Number(m[3]);
    }
    return tally;
  };
}

/** The RESULT fields of a comparison: calls/s and CPU µs per call of both, and their ratios (`vs` names the rate ratio). */
export function comparisonFields(c: Comparison, vs = "vs_bare_grpc"): string {
  return [
    `${vs}=${(c.rps / c.bareRps).toFixed(3)}`,
    `rps=${c.rps.toFixed(0)}`,
    `bare_rps=${c.bareRps.toFixed(0)}`,
    `cpu_us_per_call=${c.cpuUsPerCall.toFixed(1)}`,
    `bare_cpu_us_per_call=${c.bareCpuUsPerCall.toFixed(1)}`,
    `cpu_ratio=${(c.cpuUsPerCall / c.bareCpuUsPerCall).toFixed(3)}`,
  ].join(" ");
}

/** Runs h2load asynchronously (this thread keeps serving); fails with an install hint when it is missing. */
function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(H2LOAD, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") reject(new Error(MISSING));
      else if (err) reject(new Error(`h2load failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Reads h2load's summary: "finished in 4.00s, ...", "requests: ... N failed, N errored, N timeout", "status codes: N 2xx, ...". */
function parse(out: string): Pick<H2loadRun, "rps" | "succeeded" | "failed"> {
  const time = out.match(/finished in ([\d.]+)(m?s),/);
  const req = out.match(/requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, \d+ failed, (\d+) errored, (\d+) timeout/);
  const codes = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  if (!time || !req || !codes) throw new Error(`cannot read h2load's output:\n${out}`);
  const seconds = Number(time[1]) / (time[2] === "ms" ? 1000 : 1);
  const succeeded = Number(codes[1]);
  const failed = [req[1], req[2], codes[2], codes[3], codes[4]].reduce((n, v) => n + Number(v), 0);
  return { rps: succeeded / seconds, succeeded, failed };
}
