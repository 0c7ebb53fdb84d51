/**
 * Test databases: one migrated template per test run, and a clone of it per test file
 * (CREATE DATABASE ... TEMPLATE: a few milliseconds), so files never see each other's rows.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source.js";
import { migrate } from "../../src/db/distribution.js";

/** What a global setup provides to the test files of its project. */
export interface TestDatabaseServer {
  /** URL of a database on the server that may run CREATE/DROP DATABASE. */
  adminUrl: string;
  /** Name of the migrated template database. */
  template: string;
  /** Which server: the embedded Postgres, the one DATABASE_URL names, or a Citus coordinator. */
  kind: "embedded" | "database-url" | "citus";
  /**
   * Admin URLs of the Citus workers: every database (template and per-file clone) is made on each of
   * them too, under the same name, since the coordinator reaches its shards in the same-named database.
   */
  workerUrls?: string[];
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

/** The nodes of the Citus cluster whose coordinator `adminUrl` names: its workers as admin URLs, from pg_dist_node. */
export async function citusCluster(adminUrl: string): Promise<{ adminUrl: string; workerUrls: string[] }> {
  const workers = await admin(adminUrl, async (c) => (await c.query("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeport")).rows);
  const workerUrls = workers.map((w: { nodename: string; nodeport: number }) => {
    const u = new URL(adminUrl);
    u.hostname = w.nodename;
    u.port = String(w.nodeport);
    return u.toString();
  });
  return { adminUrl, workerUrls };
}

/** The admin URLs of every node of `server`: the server itself, then its Citus workers. */
function nodes(server: Pick<TestDatabaseServer, "adminUrl" | "workerUrls">): string[] {
  return [server.adminUrl, ...(server.workerUrls ?? [])];
}

/**
 * Creates the empty database `name` on every node of `server`. On a Citus cluster it gets the citus
 * extension on each node, and the coordinator's copy knows the coordinator and the workers, so the
 * migrations distribute the tables over them (src/db/distribution.ts).
 */
export async function createDatabase(server: Pick<TestDatabaseServer, "adminUrl" | "workerUrls">, name: string): Promise<void> {
  for (const url of nodes(server)) await admin(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  if (!server.workerUrls) return;
  for (const url of nodes(server)) await admin(withDatabase(url, name), (c) => c.query("CREATE EXTENSION citus"));
  await admin(withDatabase(server.adminUrl, name), async (c) => {
    const coordinator = new URL(server.adminUrl);
    await c.query("SELECT citus_set_coordinator_host($1, $2)", [coordinator.hostname, Number(coordinator.port || 5432)]);
    for (const url of server.workerUrls!) {
      const worker = new URL(url);
      await c.query("SELECT citus_add_node($1, $2)", [worker.hostname, Number(worker.port || 5432)]);
    }
  });
}

/**
 * Creates the migrated template on `server`'s nodes and returns its name. On a Citus cluster the
 * template is made on every node with the citus extension, the workers are added to the coordinator's
 * copy, and the migrations distribute the tables; then no one may connect to it (Citus keeps a
 * maintenance daemon and deadlock-detection connections in every database that has the extension,
 * and CREATE DATABASE ... TEMPLATE refuses a template in use), so each node's copy can be cloned.
 */
export async function createTemplate(server: Pick<TestDatabaseServer, "adminUrl" | "workerUrls">, prefix: string): Promise<string> {
  const template = `${prefix}_tpl`;
  await createDatabase(server, template);
  const ds = createDataSource({ url: withDatabase(server.adminUrl, template), poolSize: 1 });
  await ds.initialize();
  try {
    await migrate(ds);
  } finally {
    await ds.destroy();
  }
  if (server.workerUrls) {
    for (const url of nodes(server)) await admin(url, (c) => c.query(`ALTER DATABASE "${template}" ALLOW_CONNECTIONS false`));
    for (let attempt = 0; ; attempt++) {
      let left = 0;
      for (const url of nodes(server)) {
        await admin(url, async (c) => {
          const { rows } = await c.query("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [template]);
          left += rows[0].n;
        });
      }
      if (!left) break;
      if (attempt >= 50) throw new Error(`the Citus template ${template} is still in use`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return template;
}

/**
 * Drops `name` on `url`'s server. WITH (FORCE) ends client connections, but a Citus maintenance daemon
 * or another node's deadlock detector can be between connections at that instant: retry briefly.
 */
export async function dropDatabase(url: string, name: string): Promise<void> {
  await admin(url, async (c) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        return;
      } catch (err) {
        if (attempt >= 50 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
}

/** Drops every database whose name starts with `prefix`, on every node. */
export async function dropDatabases(server: Pick<TestDatabaseServer, "adminUrl" | "workerUrls">, prefix: string): Promise<void> {
  for (const url of nodes(server)) {
    await admin(url, async (c) => {
      const { rows } = await c.query("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${prefix}%`]);
      for (const { datname } of rows) await dropDatabase(url, datname);
    });
  }
}

/** A fresh database for one test file. */
export interface TestDatabase {
  url: string;
  /** The same database without a pooler in front (equal to `url` unless the project puts PgBouncer there). */
  directUrl: string;
  name: string;
  dataSource: DataSource;
  /** Raw SQL on the test database (for arranging and for checking rows directly). */
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** Clones the template into a new database and opens a DataSource on it. */
export async function createTestDatabase(server: TestDatabaseServer): Promise<TestDatabase> {
  const name = `${server.template.replace(/_tpl$/, "")}_${randomBytes(5).toString("hex")}`;
  // Workers first: the coordinator's copy reaches its shards in them.
  for (const url of nodes(server).reverse()) {
    await admin(url, async (c) => {
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
  }
  const url = withDatabase(server.clientUrl ?? server.adminUrl, name);
  const dataSource = createDataSource({ url, poolSize: 10 });
  await dataSource.initialize();
  return {
    url,
    directUrl: withDatabase(server.adminUrl, name),
    name,
    dataSource,
    sql: (text, params = []) => dataSource.query(text, params),
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
      for (const url of nodes(server)) await dropDatabase(url, name);
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
