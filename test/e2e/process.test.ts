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

/** Generous bound of every wait below: it only turns a hang into a clear failure, and is no deadline. */
const PATIENCE_MS = 60_000;

/** Waits until `ok()` holds; fails after PATIENCE_MS with `what` and the process's output. */
async function until(ok: () => boolean, what: string, output: () => string): Promise<void> {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() - t0 > PATIENCE_MS) throw new Error(`${what}: still not the case after ${PATIENCE_MS / 1000} s; output:\n${output()}`);
  }
}

/** Starts `npm start` and resolves once it logs that it is listening. */
async function start(port: number): Promise<{ child: ChildProcess; output: () => string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", SESSIOND_DATA_DIR: dataDir };
  delete env.DATABASE_URL;
  // Its own process group, like a terminal job: signals go to the whole group, as Ctrl-C does.
  const child = spawn("npm", ["start", "--silent"], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const output = () => out;
  await until(
    () => {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before listening:\n${out}`);
      return out.includes("sessiond listening");
    },
    "npm start is listening",
    output,
  );
  return { child, output };
}

/**
 * Signals the job's process group (npm does not forward signals to its script) and waits until the
 * service has logged its clean stop and the embedded Postgres has shut down (its pid file removed).
 * A clean stop is one the process finished itself: its own timer ends a shutdown that outlasts the
 * grace period plus 1.5 s (10 s at most, as the README promises) with "shutdown took too long".
 */
async function stop(started: { child: ChildProcess; output: () => string }, signal: NodeJS.Signals): Promise<void> {
  process.kill(-started.child.pid!, signal);
  const pidFile = path.join(dataDir, "pg", "postmaster.pid");
  await until(() => started.output().includes('"msg":"stopped"') && !existsSync(pidFile), `a clean stop on ${signal}`, started.output);
  expect(started.output()).not.toContain("shutdown took too long");
  expect(started.output()).not.toContain("error during shutdown");
}

describe.skipIf(inject("database").kind !== "embedded")("npm start", () => {
  it("serves on an embedded Postgres, keeps data across restarts, and stops cleanly within its grace period on SIGTERM and SIGINT", async () => {
    const port = await freePort();
    const first = await start(port);
    // The first start of a local install makes an ADMIN key and shows its secret once, outside the log.
    await until(() => /export SESSIOND_KEY=(\S+)/.test(first.output()), "the first start shows an ADMIN key", first.output);
    const key = /export SESSIOND_KEY=(\S+)/.exec(first.output())![1];
    expect(first.output().split(key).length - 1).toBe(1);
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, interceptors: [bearer(key)] }));
    const { session } = await client.createSession({ namespace: "proc", sessionId: "survivor", data: { kept: true } });
    await stop(first, "SIGTERM");
    expect(first.output()).toContain("embedded Postgres started");

    const second = await start(port);
    const got = await client.getSession({ namespace: "proc", sessionId: "survivor" });
    expect(second.output()).not.toContain(key);
    expect(second.output()).not.toContain("SESSIOND_KEY=");
    expect(got.session?.id).toBe(session!.id);
    expect(got.session?.data).toEqual({ kept: true });
    await stop(second, "SIGINT");
  }, 5 * PATIENCE_MS);
});
