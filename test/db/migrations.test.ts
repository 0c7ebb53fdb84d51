import { describe, expect, it } from "vitest";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();

describe("migrations", () => {
  it("match the entities exactly (a schema change without a migration fails here)", async () => {
    const sql = await ctx.db.dataSource.driver.createSchemaBuilder().log();
    expect(sql.upQueries.map((q) => q.query)).toEqual([]);
  });

  it("declare cascades as database foreign keys", async () => {
    const rows = await ctx.db.sql(
      `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent, confdeltype AS action
       FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2`,
    );
    const fk = (child: string, parent: string, action: "c" | "n") => ({ child, parent, action });
    expect(rows).toEqual(
      expect.arrayContaining([
        fk("participants", "sessions", "c"),
        fk("turns", "sessions", "c"),
        fk("turns", "participants", "c"),
        fk("traces", "sessions", "c"),
        fk("spans", "traces", "c"),
        fk("annotations", "sessions", "c"),
        fk("annotations", "traces", "c"),
        fk("annotations", "spans", "c"),
        fk("memories", "sessions", "n"),
        fk("sessions", "namespaces", "c"),
      ]),
    );
  });

  it("index every foreign key", async () => {
    const unindexed = await ctx.db.sql(
      `SELECT c.conrelid::regclass::text AS table, a.attname AS column
       FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
       WHERE c.contype = 'f' AND NOT EXISTS (
         SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])`,
    );
    expect(unindexed).toEqual([]);
  });

  it("every table carries namespace_id", async () => {
    const missing = await ctx.db.sql(
      `SELECT t.table_name FROM information_schema.tables t
       WHERE t.table_schema = 'public' AND t.table_name NOT IN ('namespaces', 'schema_migrations')
         AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_name = t.table_name AND c.column_name = 'namespace_id')`,
    );
    expect(missing).toEqual([]);
  });
});
