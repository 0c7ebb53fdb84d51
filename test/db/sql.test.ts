/**
 * db/sql.ts, the stores' statement runner: EntityManager.query's result shapes, outside and inside a
 * transaction; a connection whose statement Postgres refused stays in the pool; named statements are
 * prepared once per connection (and not at all behind pgbouncer=true).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDataSource, type DataSource } from "../../src/db/data-source.js";
import { sqlOf } from "../../src/db/sql.js";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();
let ds: DataSource;
let unnamed: DataSource;

beforeAll(async () => {
  // One connection: every statement below runs on the same backend unless one is dropped.
  ds = await createDataSource({ url: ctx.db.url, poolSize: 1 }).initialize();
  unnamed = await createDataSource({ url: `${ctx.db.url}${ctx.db.url.includes("?") ? "&" : "?"}pgbouncer=true`, poolSize: 1 }).initialize();
  await ctx.db.sql("CREATE TABLE sql_runner_t (k int PRIMARY KEY, v text)");
});
afterAll(async () => {
  await ds?.destroy();
  await unnamed?.destroy();
});

describe("sqlOf", () => {
  it("gives rows, and [rows, rowCount] for UPDATE and DELETE, as EntityManager.query does, in and out of a transaction", async () => {
    const q = sqlOf(ds);
    expect(await q("INSERT INTO sql_runner_t VALUES (1, 'a'), (2, 'b') RETURNING k", [])).toEqual([{ k: 1 }, { k: 2 }]);
    expect(await q("SELECT v FROM sql_runner_t WHERE k = $1", [2])).toEqual([{ v: "b" }]);
    expect(await q("UPDATE sql_runner_t SET v = v || 'x' RETURNING v", [])).toEqual([[{ v: "ax" }, { v: "bx" }], 2]);
    expect(await q("DELETE FROM sql_runner_t WHERE k = 2", [])).toEqual([[], 1]);
    await ds.transaction(async (tx) => {
      const t = sqlOf(tx);
      expect(await t("UPDATE sql_runner_t SET v = 'y' WHERE k = 1 RETURNING v", [])).toEqual([[{ v: "y" }], 1]);
      expect(await t("SELECT v FROM sql_runner_t", [], { prepare: true })).toEqual([{ v: "y" }]);
    });
  });

  it("keeps a connection whose statement Postgres refused, and gives Postgres's error", async () => {
    const q = sqlOf(ds);
    const [{ pid }] = await q("SELECT pg_backend_pid() AS pid", []);
    for (let i = 0; i < 5; i++) await expect(q("INSERT INTO sql_runner_t VALUES (1, 'dup')", [])).rejects.toMatchObject({ code: "23505" });
    expect(await q("SELECT pg_backend_pid() AS pid", [])).toEqual([{ pid }]);
  });

  it("drops a connection that fails while checked out, without an uncaught error, and goes on with a new one", async () => {
    const q = sqlOf(ds);
    const [{ pid }] = await q("SELECT pg_backend_pid() AS pid", []);
    // The backend is terminated while its connection runs a statement.
    // (Its failure is caught at once: it comes while the terminating statement is awaited.)
    const running = q("SELECT pg_sleep(5)", []).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Terminated once Postgres shows it running (polled, bounded), not after a guessed delay.
    for (const started = Date.now(); Date.now() - started < 10_000; await new Promise((r) => setTimeout(r, 20))) {
      const [row] = await ctx.db.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", [pid]);
      if (row.n === 1) break;
    }
    await ctx.db.sql("SELECT pg_terminate_backend($1::integer)", [pid]); // (Citus adds a bigint overload)
    expect(await running).toMatchObject({ code: "57P01", severity: "FATAL" });
    const [{ pid: next }] = await q("SELECT pg_backend_pid() AS pid", []);
    expect(next).not.toBe(pid);
  });

  it("drops the connection of a prepared statement whose result type a migration changed, so that the next call works", async () => {
    await ctx.db.sql("CREATE TABLE sql_runner_m (k int PRIMARY KEY, v int)");
    await ctx.db.sql("INSERT INTO sql_runner_m VALUES (1, 7)");
    const q = sqlOf(ds);
    const text = "SELECT v FROM sql_runner_m WHERE k = $1";
    expect(await q(text, [1], { prepare: true })).toEqual([{ v: 7 }]);
    await ctx.db.sql("ALTER TABLE sql_runner_m ALTER COLUMN v TYPE text");
    await expect(q(text, [1], { prepare: true })).rejects.toMatchObject({ code: "0A000" });
    expect(await q(text, [1], { prepare: true })).toEqual([{ v: "7" }]);
  });

  it("prepares a statement asked to be prepared once per connection, and never behind pgbouncer=true", async () => {
    const text = "SELECT v FROM sql_runner_t WHERE k = $1 /* prepared-once */";
    for (const [source, expected] of [[ds, 1], [unnamed, 0]] as const) {
      const q = sqlOf(source);
      for (let i = 0; i < 3; i++) expect(await q(text, [1], { prepare: true })).toEqual([{ v: "y" }]);
      const prepared = await q("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE '%prepared-once%' AND statement NOT LIKE '%pg_prepared_statements%'", []);
      expect(prepared).toEqual([{ n: expected }]);
    }
  });
});
