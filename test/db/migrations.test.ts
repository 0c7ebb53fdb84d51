import { describe, expect, inject, it } from "vitest";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();
/** On Citus the tables are distributed (src/db/distribution.ts), with one documented difference. */
const citus = inject("database").kind === "citus";

describe("migrations", () => {
  it("match the entities exactly (a schema change without a migration fails here)", async () => {
    const sql = await ctx.db.dataSource.driver.createSchemaBuilder().log();
    // Citus refuses ON DELETE SET NULL on a key that includes the distribution column: there the link
    // from memories to their session is NO ACTION, and deleteBatch empties it (distribution.ts).
    const citusOnly = [
      `ALTER TABLE "memories" DROP CONSTRAINT "fk_memories_source_session"`,
      `ALTER TABLE "memories" ADD CONSTRAINT "fk_memories_source_session" FOREIGN KEY ("source_session_id", "namespace_id") REFERENCES "sessions"("id","namespace_id") ON DELETE SET NULL ON UPDATE NO ACTION`,
    ];
    expect(sql.upQueries.map((q) => q.query)).toEqual(citus ? citusOnly : []);
  });

  it("declare cascades as database foreign keys", async () => {
    const rows = await ctx.db.sql(
      `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent, confdeltype AS action
       FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2`,
    );
    const fk = (child: string, parent: string, action: "c" | "n" | "a") => ({ child, parent, action });
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
        fk("memories", "sessions", citus ? "a" : "n"),
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
       WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND t.table_name NOT IN ('namespaces', 'schema_migrations')
         AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_name = t.table_name AND c.column_name = 'namespace_id')`,
    );
    expect(missing).toEqual([]);
  });
});
