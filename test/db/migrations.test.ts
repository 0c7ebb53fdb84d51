import { randomBytes } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { SessionActivity1796125000000 } from "../../src/db/migrations/1796125000000-SessionActivity.js";
import { newSession, useDatabase } from "../setup/context.js";

const ctx = useDatabase();
/** On Citus the tables are distributed (src/db/distribution.ts), with one documented difference. */
const citus = inject("database").kind === "citus";

describe("migrations", () => {
  it("match the entities exactly (a schema change without a migration fails here)", async () => {
    // TypeORM finds a generated column's expression in schema_metadata by the database's name, which
    // is the template's in this clone of it (a database migrated where it runs has its own).
    await ctx.db.sql(`UPDATE schema_metadata SET "database" = current_database()`);
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

  it("every table carries namespace_id (but operation_batches, which hangs from its operation on the coordinator)", async () => {
    const missing = await ctx.db.sql(
      `SELECT t.table_name FROM information_schema.tables t
       WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND t.table_name NOT IN ('namespaces', 'schema_migrations', 'schema_metadata', 'operation_batches')
         AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_name = t.table_name AND c.column_name = 'namespace_id')`,
    );
    expect(missing).toEqual([]);
  });

  it("SessionActivity gives each session the latest of its update, its turns, its traces, its annotations and its participants' binding", async () => {
    const ns = "backfill";
    const byId = (id: string) => ({ id, namespace: "", sessionId: "" });
    const [plain, talked, traced, annotated, joined] = await Promise.all(["plain", "talked", "traced", "annotated", "joined"].map((id) => ctx.sessions.create(newSession({ namespace: ns, sessionId: id }))));
    await ctx.services.conversations.bind({ address: byId(joined.id), participantId: "p", kind: "user", displayName: "", metadata: {} });
    await ctx.services.conversations.bind({ address: byId(talked.id), participantId: "u", kind: "user", displayName: "", metadata: {} });
    await ctx.services.conversations.append(byId(talked.id), [{ participantId: "u", role: "", content: "hi", toolCalls: [], metadata: {} }], "");
    const span = (traceId: string) => ({ traceId, spanId: randomBytes(8).toString("hex"), parentSpanId: "", name: "s", kind: 1, startTime: new Date(), endTime: new Date(), statusCode: 0, statusMessage: "", attributes: {}, events: [] });
    const [t1, t2] = [randomBytes(16).toString("hex"), randomBytes(16).toString("hex")];
    await ctx.services.tracing.record({ namespace: ns, session: traced.id, sessionId: "", spans: [span(t1)] });
    await ctx.services.tracing.record({ namespace: ns, session: annotated.id, sessionId: "", spans: [span(t2)] });
    await ctx.services.tracing.annotate({ namespace: ns, target: { kind: "trace", traceId: t2 }, name: "q", annotatorKind: "human", label: "", score: undefined, explanation: "", metadata: {}, identifier: "" });
    const T = (day: number) => new Date(Date.UTC(2031, 0, day));
    const uuids = [plain, talked, traced, annotated, joined].map((s) => s.uuid);
    await ctx.db.sql("UPDATE sessions SET update_time = $2 WHERE id = ANY($1::uuid[])", [uuids, T(1)]);
    await ctx.db.sql("UPDATE sessions SET update_time = $2 WHERE id = $1", [annotated.uuid, T(9)]);
    await ctx.db.sql("UPDATE turns SET create_time = $2 WHERE session_id = $1", [talked.uuid, T(2)]);
    await ctx.db.sql("UPDATE traces SET create_time = $2 WHERE session_id = $1", [traced.uuid, T(3)]);
    await ctx.db.sql("UPDATE traces SET create_time = $2 WHERE session_id = $1", [annotated.uuid, T(4)]);
    await ctx.db.sql("UPDATE annotations SET update_time = $2 WHERE session_id = $1", [annotated.uuid, T(5)]);
    await ctx.db.sql("UPDATE participants SET bound_time = $2 WHERE session_id = $1", [joined.uuid, T(6)]);
    // The migration again, from before it, in a transaction left unfinished.
    const runner = ctx.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      const migration = new SessionActivity1796125000000();
      await migration.down(runner);
      await migration.up(runner);
      const rows: { id: string; t: Date }[] = await runner.query("SELECT id, last_activity_time AS t FROM sessions WHERE id = ANY($1::uuid[])", [uuids]);
      const of = new Map(rows.map((r) => [r.id, r.t]));
      // The update time, unless something later happened in the session (an update later than all of them stays).
      expect(uuids.map((u) => of.get(u))).toEqual([T(1), T(2), T(3), T(9), T(6)]);
      await runner.query("UPDATE sessions SET update_time = $2 WHERE id = $1", [annotated.uuid, T(1)]);
      await migration.down(runner);
      await migration.up(runner);
      expect((await runner.query("SELECT last_activity_time AS t FROM sessions WHERE id = $1", [annotated.uuid]))[0].t).toEqual(T(5));
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
  });
});
