/**
 * The README's start command as a user runs it: `npm start` with no DATABASE_URL starts an embedded
 * Postgres under SESSIOND_DATA_DIR, serves on PORT, keeps data across a restart, and exits cleanly and
 * promptly on SIGTERM. (Runs once, in the embedded project: it does not use the shared test server.)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, inject, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { freePort } from "../../src/net/free-port.js";
import { bearer } from "../setup/auth.js";

const dataDir = mkdtempSync(path.join(os.tmpdir(), "sessiond-process-"));
chmodSync(dataDir, 0o755);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** Starts `npm start` and resolves once it logs that it is listening. */
async function start(port: number): Promise<{ child: ChildProcess; output: () => string; startupMs: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", SESSIOND_DATA_DIR: dataDir };
  delete env.DATABASE_URL;
  const t0 = Date.now();
  // Its own process group, like a terminal job: signals go to the whole group, as Ctrl-C does.
  const child = spawn("npm", ["start", "--silent"], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not listening after 15 s:\n${out}`)), 15_000);
    const check = () => {
      if (out.includes("sessiond listening")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    child.on("exit", (code) => reject(new Error(`exited with ${code}:\n${out}`)));
  });
  return { child, output: () => out, startupMs: Date.now() - t0 };
}

/**
 * Signals the job's process group (npm does not forward signals to its script) and waits until the
 * service has logged its clean stop and the embedded Postgres has shut down (its pid file removed).
 */
async function stop(started: { child: ChildProcess; output: () => string }, signal: NodeJS.Signals): Promise<{ ms: number }> {
  const t0 = Date.now();
  process.kill(-started.child.pid!, signal);
  const pidFile = path.join(dataDir, "pg", "postmaster.pid");
  while (!(started.output().includes('"msg":"stopped"') && !existsSync(pidFile))) {
    if (Date.now() - t0 > 12_000) throw new Error(`did not stop cleanly:\n${started.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ms: Date.now() - t0 };
}

async function until(ok: () => boolean): Promise<void> {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 20))) if (Date.now() - t0 > 5000) throw new Error("timed out");
}

describe.skipIf(inject("database").kind !== "embedded")("npm start", () => {
  it("serves within 15 s on an embedded Postgres, keeps data across restarts, and stops on SIGTERM", async () => {
    const port = await freePort();
    const first = await start(port);
    // The first start of a local install makes an ADMIN key and shows its secret once, outside the log.
    await until(() => /export SESSIOND_KEY=(\S+)/.test(first.output()));
    const key = /export SESSIOND_KEY=(\S+)/.exec(first.output())![1];
    expect(first.output().split(key).length - 1).toBe(1);
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, interceptors: [bearer(key)] }));
    const { session } = await client.createSession({ namespace: "proc", sessionId: "survivor", data: { kept: true } });
    const stopped = await stop(first, "SIGTERM");
    expect(stopped.ms).toBeLessThan(10_000);
    expect(first.output()).toContain("embedded Postgres started");

    const second = await start(port);
    const got = await client.getSession({ namespace: "proc", sessionId: "survivor" });
    expect(second.output()).not.toContain(key);
    expect(second.output()).not.toContain("SESSIOND_KEY=");
    expect(got.session?.id).toBe(session!.id);
    expect(got.session?.data).toEqual({ kept: true });
    expect((await stop(second, "SIGINT")).ms).toBeLessThan(10_000);
  }, 60_000);
});
