/**
 * Global setup of the "pgbouncer" project: a real PgBouncer (Debian's 1.18, which keeps no named
 * prepared statement across transactions) in transaction pooling mode, in front of the Postgres the
 * layer projects use (DATABASE_URL's when set, else the embedded one, shared with them). The template
 * and CREATE/DROP DATABASE go straight to Postgres; the test files, and the sessiond they start, connect
 * through PgBouncer with `?pgbouncer=true` (unnamed statements only), to per-file databases routed by
 * its `*` entry. Pools of 5 server connections per database, under client pools of 10, make the
 * sharing real: consecutive transactions of one client connection land on different server connections.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { freePort } from "../../src/net/free-port.js";
import type { TestDatabaseServer } from "./databases.js";
import databaseUrlSetup from "./global-database-url.js";
import embeddedSetup from "./global-embedded.js";

/** The pgbouncer binary (Debian puts it in /usr/sbin, which a non-root PATH may lack), or undefined. */
function findPgbouncer(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin"];
  return dirs.filter((dir) => path.isAbsolute(dir)).map((dir) => path.join(dir, "pgbouncer")).find((file) => existsSync(file));
}

/** Server connections per (database, user) pool: fewer than a client pool holds. */
const POOL_SIZE = 5;

/** Resolves when `port` accepts a connection; rejects when `child` exits first or after `timeoutMs`. */
async function accepting(port: number, child: ChildProcess, log: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode}):\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.once("connect", () => (socket.destroy(), resolve(true))).once("error", () => (socket.destroy(), resolve(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within ${timeoutMs} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts PgBouncer in front of `server`; returns the URL clients use and how to stop it. */
async function startPgbouncer(bin: string, server: TestDatabaseServer): Promise<{ clientUrl: string; stop(): Promise<void> }> {
  const admin = new URL(server.adminUrl);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-test-pgbouncer-"));
  chmodSync(dir, 0o755); // read by the `postgres` OS user when we are root (see below)
  // Trust between the tests and PgBouncer; PgBouncer logs in to Postgres with the password listed here.
  writeFileSync(path.join(dir, "userlist.txt"), `"${decodeURIComponent(admin.username)}" "${decodeURIComponent(admin.password)}"\n`, { mode: 0o644 });
  writeFileSync(
    path.join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=${admin.hostname} port=${admin.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${path.join(dir, "userlist.txt")}`,
      "pool_mode = transaction",
      `default_pool_size = ${POOL_SIZE}`,
      "max_client_conn = 500",
      "log_connections = 0",
      "log_disconnections = 0",
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  // PgBouncer refuses to run as root: as root, run it as the `postgres` OS user (the embedded Postgres
  // and Debian's postgresql package both have one).
  const asRoot = process.getuid?.() === 0;
  const child = spawn(bin, [...(asRoot ? ["-u", "postgres"] : []), path.join(dir, "pgbouncer.ini")], { stdio: ["ignore", "ignore", "pipe"] });
  // Its last log lines, for the message when it fails to start.
  let lines: string[] = [];
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => void (lines = [...lines, ...chunk.split("\n").filter(Boolean)].slice(-50)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await accepting(port, child, () => lines.join("\n"));
    const clientUrl = new URL(server.adminUrl);
    clientUrl.hostname = "127.0.0.1";
    clientUrl.port = String(port);
    clientUrl.search = "?pgbouncer=true";
    // One query through it, on the admin database (never the template: a connection to it would make
    // CREATE DATABASE ... TEMPLATE fail).
    const check = new pg.Client({ connectionString: clientUrl.toString().replace("?pgbouncer=true", "") });
    await check.connect();
    await check.query("SELECT 1").finally(() => check.end());
    return { clientUrl: clientUrl.toString(), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export default async function setup(project: TestProject) {
  const bin = findPgbouncer();
  // vitest.config.ts leaves this project out when pgbouncer is missing, except under CI.
  if (!bin) throw new Error("pgbouncer not found (CI installs Debian's: apt-get install pgbouncer); the pgbouncer project cannot run without it");
  // The server behind it: the one the layer projects of that kind use (shared by name, see serverKey).
  const kind = process.env.DATABASE_URL ? "database-url" : "embedded-pg";
  let server: TestDatabaseServer | undefined;
  const backend = { name: `${project.name}:${kind}`, provide: (_key: string, value: TestDatabaseServer) => void (server = value) } as unknown as TestProject;
  const release = await (kind === "database-url" ? databaseUrlSetup : embeddedSetup)(backend);
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
  try {
    bouncer = await startPgbouncer(bin, server!);
  } catch (err) {
    await release();
    throw err;
  }
  project.provide("database", { ...server!, clientUrl: bouncer.clientUrl });
  return async () => {
    await bouncer.stop();
    await release();
  };
}
