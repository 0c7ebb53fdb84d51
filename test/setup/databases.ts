/**
 * Test databases: one migrated template per test run, and a clone of it per test file
 * (CREATE DATABASE ... TEMPLATE: a few milliseconds), so files never see each other's rows.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source.js";

/** What a global setup provides to the test files of its project. */
export interface TestDatabaseServer {
  /** URL of a database on the server that may run CREATE/DROP DATABASE. */
  adminUrl: string;
  /** Name of the migrated template database. */
  template: string;
  /** Which server: the embedded Postgres, or the one DATABASE_URL names. */
  kind: "embedded" | "database-url";
  /**
   * Where the test files connect instead of `adminUrl` (its database name is replaced), e.g. a PgBouncer
   * in front of the server; the template and CREATE/DROP DATABASE still go to `adminUrl`.
   */
  clientUrl?: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    database: TestDatabaseServer;
  }
}

/** Returns `url` with its database name replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(adminUrl: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates the migrated template on `adminUrl`'s server and returns its name. */
export async function createTemplate(adminUrl: string, prefix: string): Promise<string> {
  const template = `${prefix}_tpl`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE "${template}"`));
  const ds = createDataSource({ url: withDatabase(adminUrl, template), poolSize: 1 });
  await ds.initialize();
  try {
    await ds.runMigrations({ transaction: "each" });
  } finally {
    await ds.destroy();
  }
  return template;
}

/** Drops every database whose name starts with `prefix`. */
export async function dropDatabases(adminUrl: string, prefix: string): Promise<void> {
  await admin(adminUrl, async (c) => {
    const { rows } = await c.query("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${prefix}%`]);
    for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  });
}

/** A fresh database for one test file. */
export interface TestDatabase {
  url: string;
  name: string;
  dataSource: DataSource;
  /** Raw SQL on the test database (for arranging and for checking rows directly). */
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** Clones the template into a new database and opens a DataSource on it. */
export async function createTestDatabase(server: TestDatabaseServer): Promise<TestDatabase> {
  const name = `${server.template.replace(/_tpl$/, "")}_${randomBytes(5).toString("hex")}`;
  await admin(server.adminUrl, async (c) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await c.query(`CREATE DATABASE "${name}" TEMPLATE "${server.template}"`);
        return;
      } catch (err) {
        // Two clones starting at the same instant may see each other on the template: retry.
        if (attempt >= 20 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  });
  const url = withDatabase(server.clientUrl ?? server.adminUrl, name);
  const dataSource = createDataSource({ url, poolSize: 10 });
  await dataSource.initialize();
  return {
    url,
    name,
    dataSource,
    sql: (text, params = []) => dataSource.query(text, params),
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
      await admin(server.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

/** A database server as a global setup starts it: what the test files get, and how to stop it. */
export interface StartedServer {
  server: TestDatabaseServer;
  stop(): Promise<void>;
}

interface SharedServer {
  users: number;
  started: Promise<StartedServer>;
}

// On globalThis, not in this module: vitest loads each project's global setup through that project's
// own module runner, so module state is not shared between projects; the main process is.
const SHARED: Map<string, SharedServer> = ((globalThis as Record<symbol, unknown>)[Symbol.for("sessiond.test.sharedServers")] ??= new Map()) as Map<string, SharedServer>;

/**
 * One server (and one migrated template) per `key` for the whole run, however many projects ask for
 * it: the test layers (db, rpc, e2e) of one database kind are separate vitest projects, and vitest
 * runs every project's global setup before the first test file and every teardown after the last one.
 * The first caller starts the server; the last `release` stops it.
 */
export async function shareServer(key: string, start: () => Promise<StartedServer>): Promise<{ server: TestDatabaseServer; release(): Promise<void> }> {
  let entry = SHARED.get(key);
  if (!entry) {
    entry = { users: 0, started: start() };
    SHARED.set(key, entry);
  }
  const mine = entry;
  mine.users++;
  let started: StartedServer;
  try {
    started = await mine.started;
  } catch (err) {
    if (--mine.users === 0 && SHARED.get(key) === mine) SHARED.delete(key);
    throw err;
  }
  let released = false;
  return {
    server: started.server,
    async release() {
      if (released) return;
      released = true;
      if (--mine.users > 0) return;
      if (SHARED.get(key) === mine) SHARED.delete(key);
      await started.stop();
    },
  };
}

/**
 * The sharing key of a project's database server: projects named `<layer>:<kind>` share one server
 * per kind; any other project (the fault suite, which stops and starves servers) gets its own.
 */
export function serverKey(projectName: string, kind: string): string {
  return projectName.endsWith(`:${kind}`) ? kind : projectName;
}

/** A unique prefix for the databases of one test run. */
export function runPrefix(): string {
  return `sessiond_test_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
}
