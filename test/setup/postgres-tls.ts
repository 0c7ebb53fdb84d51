/**
 * Switches TLS on in the Postgres server DATABASE_URL names (this machine's: the test writes the
 * server's certificate files itself), with certificates from a fresh test CA, and back off afterwards.
 *
 * Several test runs may share that server (a developer's and CI's, each running the whole suite):
 * - Other test files connect without TLS; `host` lines in pg_hba.conf accept both, and a reload
 *   leaves open connections alone, so switching TLS on or off never disturbs them.
 * - Two runs of this file would each install their own CA's server certificate, and one would fail
 *   to verify the other's. So a run holds a server-wide advisory lock (taken in the `postgres`
 *   database: advisory locks belong to a database, and every run can reach that one; never template1,
 *   which CREATE DATABASE copies and refuses while anyone is connected) from switching TLS on until it
 *   has switched it back: runs of this file take turns, and the lock goes with a run's connection if
 *   the run dies.
 * - The server's files live in one fixed directory inside the data directory, written atomically and
 *   never deleted. A run that dies before switching back leaves ALTER SYSTEM pointing at files that
 *   are still there, so a restart of the server still works (with ssl on and missing files Postgres
 *   would refuse to start). The next run switches back to what was there before that run, treating
 *   settings that point into our directory as left behind by us (reset).
 * - At the end a run restores the settings it found (ALTER SYSTEM values, or none), so the server
 *   is as it was, and the files stay for the reason above (the next run replaces them).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { createPki, issueServerCert, type IssuedCert, type TestCa, type TestPki } from "./certs.js";
import { withDatabase } from "./databases.js";

/** The settings this module changes. */
const SETTINGS = ["ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"] as const;
/** The advisory lock runs of this file take turns on (any constant; "sessiond pg tls" in ASCII). */
const LOCK = 0x7365737370677473n;
/** The directory, in the data directory, of the files the server reads. */
const DIR_NAME = "sessiond-test-tls";
/** Bound of the wait for the reload: only turns a hang into a clear failure. */
const PATIENCE_MS = 30_000;

/** TLS switched on in the server, with what the test needs to connect. */
export interface PostgresTlsServer {
  /** The CA that signed the server's certificate (sslrootcert for verify-ca/verify-full). */
  ca: TestCa;
  /** Another CA, which signed nothing the server trusts or presents. */
  otherCa: TestCa;
  /** A client certificate from `ca` (the server trusts it: ssl_ca_file is `ca`). */
  client: IssuedCert;
  /** A client certificate from `otherCa`. */
  strangerClient: IssuedCert;
  /** The name the server's certificate holds (DNS SAN `localhost`; it names no IP address). */
  serverName: string;
  pki: TestPki;
  /** Restores the server's settings, releases the lock and deletes the client-side files. */
  restore(): Promise<void>;
}

/** Returns `url` with its host name replaced. */
export function withHost(url: string, host: string): string {
  const u = new URL(url);
  u.hostname = host;
  return u.toString();
}

/** Writes `text` to `file` atomically (a reload reads the new file or the old one, never half of one). */
function install(file: string, text: string, uid: number, gid: number, mode: number): void {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, text, { mode });
  chownSync(tmp, uid, gid);
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/**
 * Switches TLS on in `url`'s server (see above); resolves once a verify-full connection to it works.
 * Throws when the server's data directory is not on this machine (its files must be written here).
 */
export async function enablePostgresTls(url: string): Promise<PostgresTlsServer> {
  const lock = new pg.Client({ connectionString: withDatabase(url, "postgres"), ssl: false });
  await lock.connect();
  let pki: TestPki | undefined;
  let restoreSettings: (() => Promise<void>) | undefined;
  try {
    await lock.query("SELECT pg_advisory_lock($1)", [LOCK.toString()]);
    const dataDir: string = (await lock.query("SHOW data_directory")).rows[0].data_directory;
    if (!existsSync(path.join(dataDir, "PG_VERSION"))) throw new Error(`the server's data directory ${dataDir} is not on this machine: its TLS files cannot be written from here`);
    // The server's OS user owns its data directory; the key must be its own with mode 0600.
    const { uid, gid } = statSync(dataDir);
    const dir = path.join(dataDir, DIR_NAME);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, uid, gid);

    // What to restore: the ALTER SYSTEM values in force now, unless a run of ours left them behind.
    const { rows } = await lock.query("SELECT name, setting FROM pg_file_settings WHERE name = ANY($1) AND sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno", [SETTINGS]);
    const found = new Map<string, string>(rows.map((r: { name: string; setting: string }) => [r.name, r.setting]));
    const leftByUs = [...found.values()].some((v) => v.startsWith(dir));
    const before = leftByUs ? new Map<string, string>() : found;
    restoreSettings = async () => {
      for (const name of SETTINGS) {
        const value = before.get(name);
        await lock.query(value === undefined ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${lock.escapeLiteral(value)}`);
      }
      await lock.query("SELECT pg_reload_conf()");
    };

    pki = createPki("sessiond-pg-tls-");
    const ca = pki.createCa("postgres-test-ca");
    const otherCa = pki.createCa("other-test-ca");
    const serverName = "localhost";
    const server = issueServerCert(ca, "postgres-server", { dns: [serverName], ips: [] });
    const client = ca.issue({ name: "client", cn: "sessiond-client", usage: "client" });
    const strangerClient = otherCa.issue({ name: "stranger", cn: "stranger", usage: "client" });
    const files = { ssl_cert_file: path.join(dir, "server.pem"), ssl_key_file: path.join(dir, "server.key"), ssl_ca_file: path.join(dir, "ca.pem") };
    install(files.ssl_cert_file, server.cert, uid, gid, 0o644);
    install(files.ssl_key_file, server.key, uid, gid, 0o600);
    install(files.ssl_ca_file, ca.cert, uid, gid, 0o644);
    for (const [name, file] of Object.entries(files)) await lock.query(`ALTER SYSTEM SET ${name} = ${lock.escapeLiteral(file)}`);
    await lock.query("ALTER SYSTEM SET ssl = on");
    await lock.query("SELECT pg_reload_conf()");

    // The reload is asynchronous: wait until a fully verified connection (our fresh CA, so our
    // certificate) works.
    let lastError: unknown;
    for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
      const probe = new pg.Client({ connectionString: withHost(url, serverName), ssl: { ca: ca.cert } });
      try {
        await probe.connect();
        await probe.end();
        break;
      } catch (err) {
        lastError = err;
        await probe.end().catch(() => {});
      }
      if (Date.now() - t0 > PATIENCE_MS) throw new Error(`Postgres did not serve TLS with the test certificate within ${PATIENCE_MS / 1000} s (see its log): ${String(lastError)}`);
    }
    const ready = { ca, otherCa, client, strangerClient, serverName, pki };
    let restored = false;
    return {
      ...ready,
      async restore() {
        if (restored) return;
        restored = true;
        try {
          await restoreSettings!();
        } finally {
          await lock.end();
          pki!.dispose();
        }
      },
    };
  } catch (err) {
    await restoreSettings?.().catch(() => {});
    await lock.end().catch(() => {});
    pki?.dispose();
    throw err;
  }
}
