/**
 * The layout over Citus (src/db/distribution.ts): which tables are distributed, referenced or local,
 * that every table is in exactly one of those lists, and that the step is idempotent; on plain
 * PostgreSQL it changes nothing.
 */
import { describe, expect, inject, it } from "vitest";
import { DISTRIBUTED_FUNCTIONS, DISTRIBUTED_TABLES, LOCAL_TABLES, REFERENCE_TABLES, distribute } from "../../src/db/distribution.js";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();
const citus = inject("database").kind === "citus";

describe("distribution", () => {
  it("names every table of the schema exactly once: distributed, reference or local", async () => {
    const rows: { table_name: string }[] = await ctx.db.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1");
    const listed = [...DISTRIBUTED_TABLES, ...REFERENCE_TABLES, ...LOCAL_TABLES];
    expect(new Set(listed).size).toBe(listed.length);
    expect(rows.map((r) => r.table_name)).toEqual([...listed].sort());
  });

  it.runIf(!citus)("changes nothing on plain PostgreSQL", async () => {
    expect(await distribute(ctx.db.dataSource.manager)).toEqual({ citus: false, distributed: [], referenced: [], functions: [], workers: 0 });
  });

  describe.runIf(citus)("on Citus", () => {
    it("distributes the namespaced tables by namespace_id in one colocation group, and references namespaces and api_keys", async () => {
      const rows: { t: string; method: string; column: string | null; colocation: number; kind: string }[] = await ctx.db.sql(
        `SELECT logicalrelid::regclass::text AS t, partmethod AS method, column_to_column_name(logicalrelid, partkey) AS column, colocationid AS colocation,
                CASE WHEN repmodel = 't' THEN 'reference' ELSE 'other' END AS kind
         FROM pg_dist_partition ORDER BY 1`,
      );
      const byTable = new Map(rows.map((r) => [r.t, r]));
      for (const t of DISTRIBUTED_TABLES) expect(byTable.get(t), t).toMatchObject({ method: "h", column: "namespace_id", colocation: byTable.get("sessions")!.colocation });
      for (const t of REFERENCE_TABLES) expect(byTable.get(t), t).toMatchObject({ method: "n", kind: "reference" });
      for (const t of LOCAL_TABLES) expect(byTable.has(t), t).toBe(false);
    });

    it("places the shards of every distributed table on both workers", async () => {
      const rows: { table_name: string; nodes: number }[] = await ctx.db.sql(
        `SELECT table_name::text, count(DISTINCT nodeport)::int AS nodes FROM citus_shards
         WHERE citus_table_type = 'distributed' AND nodeport IN (SELECT nodeport FROM pg_dist_node WHERE groupid <> 0) GROUP BY 1 ORDER BY 1`,
      );
      expect(rows).toEqual([...DISTRIBUTED_TABLES].sort().map((t) => ({ table_name: t, nodes: 2 })));
    });

    it("distributes sessiond_append_turns by its namespace, colocated with sessions", async () => {
      for (const f of DISTRIBUTED_FUNCTIONS) {
        const [row] = await ctx.db.sql(
          `SELECT o.distribution_argument_index AS arg, o.colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'sessions'::regclass) AS colocated
           FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass AND o.objid = $1::regprocedure`,
          [f.signature],
        );
        expect(row, f.signature).toEqual({ arg: 0, colocated: true });
      }
    });

    it("does nothing when run again", async () => {
      expect(await distribute(ctx.db.dataSource.manager)).toEqual({ citus: true, distributed: [], referenced: [], functions: [], workers: 2 });
    });
  });
});
