/**
 * Real sessiond processes for the fault suite: spawned as operators run them (`node` on src/main.ts),
 * each on a free loopback port, with their JSON log collected. A test may kill one with any signal,
 * wait for a log line, or wait for the process to exit. Every process started here is killed when
 * the test file ends, whatever happened.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { afterAll } from "vitest";
import { freePort } from "../../src/net/free-port.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";

/** A running (or exited) sessiond process. */
export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far, parsed. */
  logs(): Record<string, any>[];
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
  /** Resolves with the first log line `match` accepts; rejects after `timeoutMs` with the output so far. */
  waitForLog(match: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
}

const live = new Set<ChildProcess>();
afterAll(() => {
  for (const child of live) child.kill("SIGKILL");
});

/** Options of {@link spawnServer}. */
export interface SpawnOptions {
  databaseUrl: string;
  /** Extra environment (configuration) for the process. */
  env?: Record<string, string>;
  /** Port to listen on; a free one when omitted. */
  port?: number;
  /** How long to wait for "sessiond listening" (default 30 s). */
  startTimeoutMs?: number;
}

/** Starts `node --import tsx src/main.ts` (with npm start's V8 flags) and resolves once it listens. */
export async function spawnServer(opts: SpawnOptions): Promise<ServerProcess> {
  const port = opts.port ?? (await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: opts.databaseUrl,
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "debug",
    SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
    ...opts.env,
  };
  const child = spawn(process.execPath, ["--max-semi-space-size=4", "--import", "tsx", path.resolve("src/main.ts")], { env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let out = "";
  const parsed: Record<string, any>[] = [];
  let partial = "";
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    partial += d;
    const lines = partial.split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      try {
        parsed.push(JSON.parse(line));
      } catch {}
    }
    for (const w of waiters) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", (d: Buffer) => {
    out += d;
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
      for (const w of waiters) w();
    });
  });
  let done = false;
  exited.then(() => (done = true));

  const waitForLog = (match: (line: Record<string, any>) => boolean, timeoutMs = 30_000) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const check = () => {
        const hit = parsed.find(match);
        if (hit) {
          cleanup();
          resolve(hit);
        } else if (done) {
          cleanup();
          reject(new Error(`process exited before the awaited log line:\n${out.slice(-4000)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`awaited log line not seen within ${timeoutMs} ms:\n${out.slice(-4000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const proc: ServerProcess = {
    child,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    logs: () => parsed,
    exited,
    kill: (signal) => child.kill(signal),
    waitForLog,
  };
  await waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("sessiond listening"), opts.startTimeoutMs ?? 30_000);
  return proc;
}

/** Polls `check` until it returns a truthy value (or throws its last error after `timeoutMs`). */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 25): Promise<NonNullable<T>> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > timeoutMs) throw last ?? new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
