/**
 * TLS to Postgres: DATABASE_URL's sslmode, sslrootcert, sslcert and sslkey, with libpq's meaning
 * (src/db/postgres-tls.ts), against the machine's Postgres (DATABASE_URL) with TLS switched on by the
 * test (test/setup/postgres-tls.ts: a fresh CA per run; runs take turns on the server). Its server
 * certificate names `localhost` and no IP address, so 127.0.0.1 is a host name it does not hold.
 * Without DATABASE_URL the file is skipped, except under CI, where that is a failure.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startApp } from "../../src/app.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createDataSource, type DataSource } from "../../src/db/data-source.js";
import { createLogger } from "../../src/logger.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { createDatabase, dropDatabase, withDatabase } from "../setup/databases.js";
import { enablePostgresTls, withHost, type PostgresTlsServer } from "../setup/postgres-tls.js";

const DATABASE_URL = process.env.DATABASE_URL;
const skipReason = DATABASE_URL ? "" : "DATABASE_URL is not set: TLS to Postgres is tested against that server (CI sets it), skipped";
if (skipReason && !process.env.CI) console.warn(skipReason);

/** A password the server (trust auth) never asks for: it must appear in no message. */
const PASSWORD = "pw-never-logged-7d1c";

describe("TLS to a Postgres without TLS (the project's embedded server)", () => {
  it("fails to connect with sslmode=require rather than fall back to plaintext, saying so", async () => {
    const adminUrl = inject("database").adminUrl;
    const password = decodeURIComponent(new URL(adminUrl).password);
    const ds = createDataSource({ url: `${adminUrl}?sslmode=require`, poolSize: 1 });
    const err: Error = await ds.initialize().then(() => ds.destroy().then(() => new Error("connected")), (e: Error) => e);
    expect(err.message).toMatch(/^DATABASE_URL: TLS to Postgres at 127\.0\.0\.1:\d+ failed \(sslmode=require\): the server does not offer TLS \(its ssl setting is off\); sessiond does not fall back to an unencrypted connection/);
    if (password) expect(err.message).not.toContain(password);
  });
});

describe.runIf(!DATABASE_URL && process.env.CI)("TLS to Postgres under CI", () => {
  it("has DATABASE_URL to test against", () => {
    throw new Error("DATABASE_URL must be set under CI: the Postgres TLS tests run against that server");
  });
});

describe.skipIf(!DATABASE_URL)("TLS to Postgres (DATABASE_URL's server, TLS switched on by the test)", { timeout: 60_000 }, () => {
  let server: PostgresTlsServer;
  beforeAll(async () => {
    server = await enablePostgresTls(DATABASE_URL!);
  }, 180_000);
  afterAll(() => server?.restore());

  /** DATABASE_URL with a password, `host` and the query `params` (values encoded as a user would). */
  function url(host: string, params: Record<string, string>, database?: string): string {
    const u = new URL(withHost(database ? withDatabase(DATABASE_URL!, database) : DATABASE_URL!, host));
    u.password = PASSWORD;
    u.search = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    return u.toString();
  }

  /** Connects sessiond's DataSource to `databaseUrl` and reports its connection's TLS state. */
  async function tlsState(databaseUrl: string): Promise<{ ssl: boolean; version: string | null; client_dn: string | null }> {
    const ds: DataSource = createDataSource({ url: databaseUrl, poolSize: 1 });
    await ds.initialize();
    try {
      const [row] = await ds.query("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
      return row;
    } finally {
      await ds.destroy();
    }
  }

  /** The message connecting with `databaseUrl` fails with (and that it fails). */
  async function failure(databaseUrl: string): Promise<string> {
    const ds = createDataSource({ url: databaseUrl, poolSize: 1 });
    const err = await ds.initialize().then(
      async () => (await ds.destroy(), undefined),
      (e: unknown) => e,
    );
    expect(err, `${databaseUrl} connected`).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).not.toContain(PASSWORD);
    return message;
  }

  it("connects with verify-full by the name in the server's certificate, over TLS 1.2 or later", async () => {
    const state = await tlsState(url("localhost", { sslmode: "verify-full", sslrootcert: server.ca.certFile }));
    expect(state.ssl).toBe(true);
    expect(state.version).toMatch(/^TLSv1\.[23]$/);
  });

  it("refuses verify-full when the server's certificate does not name the host, saying so", async () => {
    const message = await failure(url("127.0.0.1", { sslmode: "verify-full", sslrootcert: server.ca.certFile }));
    expect(message).toContain("DATABASE_URL: TLS to Postgres at 127.0.0.1:");
    expect(message).toContain("sslmode=verify-full");
    expect(message).toMatch(/certificate does not name the host.*127\.0\.0\.1/);
  });

  it("refuses verify-full when the server's certificate is not from the CA in sslrootcert, saying so", async () => {
    const message = await failure(url("localhost", { sslmode: "verify-full", sslrootcert: server.otherCa.certFile }));
    expect(message).toContain(`sslrootcert=${server.otherCa.certFile}`);
    expect(message).toMatch(/: the server's certificate is not signed by a CA in sslrootcert \(/);
  });

  it("refuses verify-full without sslrootcert against a private CA (Node's CAs are trusted then)", async () => {
    expect(await failure(url("localhost", { sslmode: "verify-full" }))).toMatch(/not signed by a CA in Node's CAs/);
  });

  it("checks the CA but not the host name with verify-ca", async () => {
    expect((await tlsState(url("127.0.0.1", { sslmode: "verify-ca", sslrootcert: server.ca.certFile }))).ssl).toBe(true);
    expect(await failure(url("127.0.0.1", { sslmode: "verify-ca", sslrootcert: server.otherCa.certFile }))).toMatch(/not signed by a CA in sslrootcert/);
  });

  it("encrypts without verifying with require and prefer (libpq's meaning), and verifies the CA when sslrootcert is given", async () => {
    for (const sslmode of ["require", "prefer"]) {
      const state = await tlsState(url("127.0.0.1", { sslmode }));
      expect(state.ssl, sslmode).toBe(true);
      expect(state.version, sslmode).toMatch(/^TLSv1\.[23]$/);
      expect((await tlsState(url("127.0.0.1", { sslmode, sslrootcert: server.ca.certFile }))).ssl, sslmode).toBe(true);
      expect(await failure(url("127.0.0.1", { sslmode, sslrootcert: server.otherCa.certFile }))).toMatch(/not signed by a CA in sslrootcert/);
    }
  });

  it("connects without TLS with sslmode=disable and with no TLS parameter", async () => {
    expect((await tlsState(url("127.0.0.1", { sslmode: "disable", sslrootcert: "/nonexistent/ignored.pem" }))).ssl).toBe(false);
    expect((await tlsState(url("127.0.0.1", {}))).ssl).toBe(false);
  });

  it("presents the client certificate of sslcert and sslkey", async () => {
    const state = await tlsState(url("localhost", { sslmode: "verify-full", sslrootcert: server.ca.certFile, sslcert: server.client.certFile, sslkey: server.client.keyFile }));
    expect(state.ssl).toBe(true);
    expect(state.client_dn).toBe("/CN=sessiond-client");
    // The server checks a certificate it is shown against its ssl_ca_file: a stranger's is refused.
    const message = await failure(url("localhost", { sslmode: "verify-full", sslrootcert: server.ca.certFile, sslcert: server.strangerClient.certFile, sslkey: server.strangerClient.keyFile }));
    expect(message).toMatch(/failed \(sslmode=verify-full, sslrootcert=\S+\): the server refused the client certificate \(sslcert\) or its absence: tlsv1 alert unknown ca; it must be signed by a CA in the server's ssl_ca_file$/);
  });

  it("rejects bad TLS parameters before connecting, naming DATABASE_URL", () => {
    const base = url("localhost", {});
    const config = (query: string) => () => loadConfig({ DATABASE_URL: `${base}?${query}` });
    expect(config("sslmode=verify_full")).toThrow(ConfigError);
    expect(config("sslmode=verify_full")).toThrow(/^DATABASE_URL: sslmode must be disable, prefer, require, verify-ca or verify-full, got "verify_full"$/);
    expect(config("sslmode=allow")).toThrow(/^DATABASE_URL: sslmode .*"allow" \(sessiond cannot fall back/);
    for (const sslmode of ["disable", "prefer", "require", "verify-ca", "verify-full"]) expect(loadConfig({ DATABASE_URL: `${base}?sslmode=${sslmode}` }).databaseUrl).toContain(sslmode);
    // The same checks where no config is loaded (the migration CLI), and those that need the files.
    const make = (query: string) => () => createDataSource({ url: `${base}?${query}` });
    expect(make("sslmode=verify_full")).toThrow(/^DATABASE_URL: sslmode must be one of/);
    expect(make("sslmode=allow")).toThrow(/^DATABASE_URL: sslmode=allow is not supported/);
    expect(make("sslmode=verify-ca")).toThrow(/^DATABASE_URL: sslmode=verify-ca needs sslrootcert/);
    expect(make("sslmode=require&sslrootcert=system")).toThrow(/^DATABASE_URL: sslrootcert=system needs sslmode=verify-full/);
    expect(make(`sslmode=verify-full&sslcert=${server.client.certFile}`)).toThrow(/^DATABASE_URL: sslcert and sslkey go together/);
    expect(make("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")).toThrow(/^DATABASE_URL: sslrootcert: cannot read "\/nonexistent\/ca\.pem" \(ENOENT\)$/);
    expect(make("sslmode=require&ssl=true")).toThrow(/^DATABASE_URL: ssl= is node-postgres' own parameter/);
    for (const query of ["sslmode=allow", "sslmode=verify-ca", "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"]) {
      let message = "";
      try {
        make(query)();
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toContain(PASSWORD);
    }
    // sslrootcert=system: the operating system's CAs, and verify-full by default (as libpq 16).
    expect(make("sslrootcert=system")).not.toThrow();
  });

  describe("a sessiond over a verify-full connection", () => {
    const name = `sessiond_test_tls_${randomBytes(5).toString("hex")}`;
    let created = false;
    beforeAll(async () => {
      await createDatabase({ adminUrl: DATABASE_URL! }, name);
      created = true;
    });
    afterAll(async () => {
      if (created) await dropDatabase(DATABASE_URL!, name);
    });

    it("migrates and serves calls with every database connection encrypted", async () => {
      const databaseUrl = url("localhost", { sslmode: "verify-full", sslrootcert: server.ca.certFile }, name);
      const logs: string[] = [];
      const sink = new Writable({ write: (chunk, _enc, done) => (logs.push(chunk.toString()), done()) });
      const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: databaseUrl, LOG_LEVEL: "debug", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY });
      const app = await startApp(config, createLogger(config.logLevel, sink));
      try {
        const client = createClient(SessionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.port}`, interceptors: [bearer(TEST_ADMIN_KEY)] }));
        const { session } = await client.createSession({ namespace: "tls", sessionId: "s1" });
        expect((await client.getSession({ namespace: "tls", sessionId: "s1" })).session?.sessionId).toBe(session?.sessionId);
        const [row] = await app.dataSource.query(
          "SELECT count(*)::int AS connections, bool_and(s.ssl) AS all_ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database() AND a.application_name = 'sessiond'",
        );
        expect(row.connections).toBeGreaterThan(0);
        expect(row.all_ssl).toBe(true);
      } finally {
        await app.stop();
      }
      expect(logs.join("")).not.toContain(PASSWORD);
    });

    it("does not start when the server fails verification, and says why without the password", async () => {
      const databaseUrl = url("localhost", { sslmode: "verify-full", sslrootcert: server.otherCa.certFile }, name);
      const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: databaseUrl, LOG_LEVEL: "silent", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY });
      await expect(startApp(config, createLogger("silent"))).rejects.toThrow(/^DATABASE_URL: TLS to Postgres at localhost:\d+ failed \(sslmode=verify-full, sslrootcert=.*\): the server's certificate is not signed by a CA in sslrootcert/);

      // As an operator sees it: `npm start` exits with one line on stderr.
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", HOST: "127.0.0.1", DATABASE_URL: url("127.0.0.1", { sslmode: "verify-full", sslrootcert: server.ca.certFile }, name), SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY };
      const child = spawn("npm", ["start", "--silent"], { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code, out).toBe(1);
      expect(out).toMatch(/sessiond: failed to start: DATABASE_URL: TLS to Postgres at 127\.0\.0\.1:\d+ failed \(sslmode=verify-full, sslrootcert=\S+\): the server's certificate does not name the host in DATABASE_URL/);
      expect(out).not.toContain(PASSWORD);
    });
  });
});
