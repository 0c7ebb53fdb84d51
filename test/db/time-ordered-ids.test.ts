/**
 * Time-ordered ids: the database's sessiond_uuid_v7() (the TimeOrderedIds migration) makes UUIDv7s that
 * sort in the order they were made, which is what makes (create_time, id) a creation-ordered key for every
 * list. (newUuid(), its twin in the service, is tested in test/unit/ids.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { isUuid } from "../../src/domain/ids.js";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();

/** Unix ms of a UUIDv7. */
const msOf = (uuid: string) => parseInt(uuid.replace(/-/g, "").slice(0, 12), 16);

function expectVersion7(ids: string[]) {
  for (const id of ids) {
    expect(isUuid(id), id).toBe(true);
    expect(id[14], id).toBe("7");
    expect("89ab", id).toContain(id[19]);
  }
}

function expectStrictlyIncreasing(ids: string[]) {
  const bad = ids.findIndex((id, i) => i > 0 && !(ids[i - 1] < id));
  expect(bad, bad > 0 ? `${ids[bad - 1]} then ${ids[bad]}` : "").toBe(-1);
}

describe("sessiond_uuid_v7()", () => {
  it("is monotonic across 10,000 calls in one statement, with the version 7 and variant bits set", async () => {
    const rows = await ctx.db.sql<{ id: string }>("SELECT sessiond_uuid_v7()::text AS id FROM generate_series(1, 10000) ORDER BY generate_series");
    const ids = rows.map((r) => r.id);
    expect(ids).toHaveLength(10_000);
    expectStrictlyIncreasing(ids);
    expectVersion7(ids);
    // Valid for Postgres too: the same uuid after a round trip through the uuid type.
    const [{ same }] = await ctx.db.sql("SELECT bool_and(x::uuid::text = x) AS same FROM unnest($1::text[]) x", [ids]);
    expect(same).toBe(true);
  });

  it("stays monotonic across statements and transactions of one connection", async () => {
    const ids = await ctx.db.dataSource.transaction(async (tx) => {
      const out: string[] = [];
      for (let i = 0; i < 200; i++) out.push((await tx.query("SELECT sessiond_uuid_v7()::text AS id"))[0].id);
      return out;
    });
    const runner = ctx.db.dataSource.createQueryRunner();
    try {
      for (let i = 0; i < 50; i++) {
        await runner.startTransaction();
        ids.push((await runner.query("SELECT sessiond_uuid_v7()::text AS id"))[0].id);
        // A rolled-back transaction forgets the last value it set; ids after it still go up.
        if (i % 2) await runner.rollbackTransaction();
        else await runner.commitTransaction();
      }
    } finally {
      await runner.release();
    }
    expectStrictlyIncreasing(ids);
    expectVersion7(ids);
  });

  it("orders ids made one after another by different connections", async () => {
    const runners = [ctx.db.dataSource.createQueryRunner(), ctx.db.dataSource.createQueryRunner(), ctx.db.dataSource.createQueryRunner()];
    try {
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) ids.push((await runners[i % runners.length].query("SELECT sessiond_uuid_v7()::text AS id"))[0].id);
      expectStrictlyIncreasing(ids);
    } finally {
      for (const r of runners) await r.release();
    }
  });

  it("carries the clock's time in ms", async () => {
    const [{ id, before, after }] = await ctx.db.sql(
      "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS before, sessiond_uuid_v7()::text AS id, (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS after",
    );
    expect(msOf(id)).toBeGreaterThanOrEqual(Math.floor(before));
    expect(msOf(id)).toBeLessThanOrEqual(Math.ceil(after));
  });

  it("is the default of every uuid primary key", async () => {
    const rows = await ctx.db.sql(
      `SELECT c.table_name, c.column_default FROM information_schema.columns c
       JOIN information_schema.key_column_usage k ON k.table_name = c.table_name AND k.column_name = c.column_name AND k.table_schema = c.table_schema
       JOIN information_schema.table_constraints t ON t.constraint_name = k.constraint_name AND t.constraint_type = 'PRIMARY KEY'
       WHERE c.table_schema = 'public' AND c.column_name = 'id' AND c.data_type = 'uuid' ORDER BY 1`,
    );
    expect(rows.map((r) => r.table_name)).toEqual(["annotations", "api_keys", "audit_events", "memories", "namespaces", "operations", "participants", "sessions", "traces"]);
    for (const r of rows) expect(r.column_default, r.table_name).toBe("sessiond_uuid_v7()");
  });
});
