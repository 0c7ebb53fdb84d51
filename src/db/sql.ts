/**
 * How the stores run a statement. Inside a transaction it goes through the transaction's EntityManager
 * (its QueryRunner holds the transaction's connection). Outside one, a statement takes a connection of
 * node-postgres's pool (TypeORM's `driver.master`), runs and gives it back: what EntityManager.query
 * does too, without a QueryRunner, a broadcaster and a QueryResult per statement (15-30 µs of CPU a
 * statement, measured under the `bench:unary` load, on calls whose whole server-side cost is 300-700 µs).
 *
 * Results follow EntityManager.query's convention, which every store is written to: the rows, except for
 * UPDATE and DELETE, which give `[rows, rowCount]`. Errors are node-postgres's own (SQLSTATE in `code`),
 * which errors.ts reads as it reads TypeORM's QueryFailedError.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { DataSource, EntityManager } from "typeorm";
import { namedStatements, poolOf } from "./data-source.js";

/** Runs one statement; `prepare` asks for a named (server-side prepared) statement where one may be used. */
export type Sql = (text: string, values?: unknown[], options?: { prepare?: boolean }) => Promise<any[]>;

/** The part of node-postgres's client this uses. */
interface PgClient {
  query(query: pg.Query): void;
  release(err?: Error | boolean): void;
  on(event: "error", listener: (err: Error) => void): unknown;
}

/** Whether `err` is Postgres refusing a statement, the connection staying usable. */
function refusedStatement(err: unknown): boolean {
  // Postgres's errors carry a SQLSTATE and a severity; Node's (EPIPE, ECONNRESET) have no severity.
  const e = err as { code?: unknown; severity?: unknown };
  if (typeof e?.code !== "string" || typeof e.severity !== "string" || !/^[0-9A-Z]{5}$/.test(e.code)) return false;
  return e.severity !== "FATAL" && e.severity !== "PANIC" && !e.code.startsWith("08") && !e.code.startsWith("57P");
}

/** What a connection's `error` listener noted while a statement of this file had it checked out. */
interface Watched {
  checkedOut: boolean;
  broken: Error | undefined;
}

const watched = new WeakMap<PgClient, Watched>();

/**
 * The connection's watch, its listener added on first use and kept: a connection that fails while
 * checked out emits `error` (its statement fails with it too), which without a listener would be an
 * uncaught exception, and the connection is then not given back for reuse. (One listener per connection
 * rather than one added and removed per statement.) While idle in the pool, the pool's own listener
 * handles its errors.
 */
function watch(client: PgClient): Watched {
  let w = watched.get(client);
  if (!w) {
    const state: Watched = { checkedOut: false, broken: undefined };
    client.on("error", (err) => {
      if (state.checkedOut) state.broken = err;
    });
    watched.set(client, (w = state));
  }
  return w;
}

/** Statement names by text: a name is a digest of the text, made once per text (texts are templates). */
const names = new Map<string, string>();
const MAX_NAMES = 1024;

function nameOf(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    if (names.size >= MAX_NAMES) names.clear();
    name = `sessiond_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`;
    names.set(text, name);
  }
  return name;
}

/**
 * The statement runner for `db` (a DataSource, its manager, or a transaction's manager). Named statements
 * are used only outside transactions and when the DataSource allows them (not behind a pooler in
 * transaction mode, see data-source.ts): Postgres then plans the statement once per connection.
 */
export function sqlOf(db: DataSource | EntityManager): Sql {
  const manager = "manager" in db ? db.manager : db;
  if (manager.queryRunner) return (text, values = []) => manager.query(text, values);
  const dataSource = manager.connection;
  const named = namedStatements(dataSource);
  return async (text, values = [], options) => {
    const name = options?.prepare && named ? nameOf(text) : undefined;
    const client = (await poolOf(dataSource)!.connect()) as unknown as PgClient;
    const state = watch(client);
    state.checkedOut = true;
    state.broken = undefined;
    try {
      const r = await run(client, text, values, name);
      return r.command === "UPDATE" || r.command === "DELETE" ? [r.rows, r.rowCount] : r.rows;
    } catch (err) {
      // A statement Postgres refused leaves the connection usable; a failed connection, or a FATAL error
      // (the backend is ending: an administrator's or the server's shutdown), takes it out of the pool.
      // (node-postgres's own pool.query drops the connection after every failed statement, which would
      // reconnect after each duplicate key.)
      if (!refusedStatement(err)) state.broken = err as Error;
      // A prepared statement whose result type a migration changed fails on this connection until it is
      // prepared again, which node-postgres never does for a name it knows: the connection goes.
      else if (name !== undefined && (err as { code?: string }).code === "0A000") state.broken = err as Error;
      throw err;
    } finally {
      state.checkedOut = false;
      client.release(state.broken);
    }
  };
}

type PgResult = { command: string; rows: any[]; rowCount: number | null };

/**
 * Runs a statement on `client` as a pg.Query made from the text (node-postgres copies a query config
 * object, with its property descriptors, for every statement: a few µs of each call's CPU), named after
 * construction when the statement is prepared.
 */
function run(client: PgClient, text: string, values: unknown[], name: string | undefined): Promise<PgResult> {
  return new Promise((resolve, reject) => {
    const query = new pg.Query(text, values) as pg.Query & { name?: string; callback?: (err: Error | null, res: PgResult) => void };
    if (name !== undefined) query.name = name;
    query.callback = (err, res) => (err ? reject(err) : resolve(res));
    client.query(query);
  });
}

const NEEDS_ESCAPE = /["\\]/;
const ARRAY_ESCAPES = /["\\]/g;

/**
 * The Postgres array literal of `values` (for a `$n::text[]` or `$n::jsonb[]` parameter): each element
 * quoted, with `"` and `\` escaped, NULL for null. What node-postgres makes of a string[] parameter, in
 * one pass: it runs two regular-expression replacements on every element, which showed in the
 * AppendTurns profile (every turn's content, roles, speakers, tool calls and metadata).
 */
export function arrayLiteral(values: readonly (string | null)[]): string {
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ",";
    if (v === null) out += "NULL";
    else {
      out += NEEDS_ESCAPE.test(v) ? `"${v.replace(ARRAY_ESCAPES, "\\$&")}"` : `"${v}"`;
    }
  }
  return out + "}";
}
