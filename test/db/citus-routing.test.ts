/**
 * On Citus, every hot path runs on one shard: each statement a call sends that touches a distributed
 * table (or calls a distributed function) is planned by Citus as a single task, with no subplan pulled
 * through the coordinator and no repartition. The statements are the ones the domain services really
 * send (captured at node-postgres' Client#query while the call runs, plain and named alike); each is then
 * EXPLAINed with the same parameter values on the same database. Skipped on plain PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { DISTRIBUTED_FUNCTIONS, DISTRIBUTED_TABLES } from "../../src/db/distribution.js";
import type { BulkDeleteEvent } from "../../src/domain/bulk-delete.js";
import type { NewTurn } from "../../src/domain/conversation-model.js";
import type { Session } from "../../src/domain/session-model.js";
import type { SpanInput } from "../../src/domain/trace-model.js";
import { byId, byKey, newSession, useDatabase } from "../setup/context.js";
import { watchingQueries } from "../setup/pg-queries.js";

/** One statement as sent to the server. */
interface Statement {
  text: string;
  values: unknown[];
  /** The prepared statement's name, for a named one. */
  name?: string;
  /** Sent inside a transaction block (where, for one, Citus does not delegate a distributed function call). */
  inTransaction: boolean;
}

/**
 * Runs `work` and returns every statement sent meanwhile over a connection to `database` (the services'
 * pool and transactions, whichever query form they use). Client#query is restored afterwards.
 */
async function captureStatements(database: string, work: () => Promise<unknown>): Promise<Statement[]> {
  const statements: Statement[] = [];
  await watchingQueries(
    database,
    (client, config, values) => {
      const c = config as { text?: unknown; values?: unknown; name?: unknown } | undefined;
      const text = typeof config === "string" ? config : c?.text;
      const params = Array.isArray(values) ? values : Array.isArray(c?.values) ? c.values : [];
      // The status the server reported after the previous statement: TypeORM awaits each one in turn.
      const inTransaction = client.getTransactionStatus() === "T";
      if (typeof text === "string") statements.push({ text, values: [...params], name: typeof c?.name === "string" ? c.name : undefined, inTransaction });
    },
    work,
  );
  return statements;
}

const CONTROL = /^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|SET|RESET|SHOW|SAVEPOINT|RELEASE)\b/i;
const names = (list: readonly string[]) => list.map((n) => n.replace(/[^\w]/g, "")).join("|");
/** A distributed table named where a statement reads or writes it (not a column or alias of that name). */
const DISTRIBUTED_TABLE = new RegExp(String.raw`\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:ONLY\s+)?"?(?:${names(DISTRIBUTED_TABLES)})"?(?![\w"])`, "i");
const DISTRIBUTED_FUNCTION = new RegExp(String.raw`\b(?:${names(DISTRIBUTED_FUNCTIONS.map((f) => f.signature.slice(0, f.signature.indexOf("("))))})\s*\(`, "i");

/** Whether `s` touches a distributed table or calls a distributed function (so Citus must route it). */
const isDistributed = (s: Statement) => !CONTROL.test(s.text) && (DISTRIBUTED_TABLE.test(s.text) || DISTRIBUTED_FUNCTION.test(s.text));

/** What makes `plan` more than one single-shard task; empty when it is one. */
function routingProblems(plan: string): string[] {
  const problems: string[] = [];
  const counts = [...plan.matchAll(/Task Count: (\d+)/g)].map((m) => Number(m[1]));
  if (!counts.includes(1)) problems.push('no "Task Count: 1" (not a single-task Citus plan)');
  for (const n of counts.filter((n) => n > 1)) problems.push(`Task Count: ${n}`);
  for (const [pattern, what] of [
    [/Distributed Subplan/i, "a distributed subplan"],
    [/pull to coordinator/i, "rows pulled to the coordinator"],
    [/repartition/i, "a repartition"],
  ] as const) {
    if (pattern.test(plan)) problems.push(what);
  }
  return problems;
}

const shown = (v: unknown) => {
  const s = Buffer.isBuffer(v) ? `<${v.length} bytes>` : v instanceof Date ? v.toISOString() : JSON.stringify(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
};

describe.runIf(inject("database").kind === "citus")("on Citus, each hot path runs on a single shard", () => {
  const ctx = useDatabase();
  const NS = "routing";

  /**
   * Runs `call` while capturing its statements, then EXPLAINs each one on a distributed table with its
   * values (in a transaction when it was sent in one) and asserts that Citus plans it as one task on
   * one shard (and that there was at least one). Statements matching `except` are left out.
   */
  async function expectSingleShard(call: () => Promise<unknown>, except?: RegExp) {
    const statements = (await captureStatements(ctx.db.name, call)).filter((s) => isDistributed(s) && !except?.test(s.text));
    expect(statements.length, "the call sent no statement on a distributed table: nothing was checked").toBeGreaterThan(0);
    const failures: string[] = [];
    for (const s of statements) {
      const explain = `EXPLAIN ${s.text}`;
      const rows: { "QUERY PLAN": string }[] = s.inTransaction ? await ctx.db.dataSource.transaction((tx) => tx.query(explain, s.values)) : await ctx.db.sql(explain, s.values);
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      const problems = routingProblems(plan);
      if (problems.length) {
        failures.push(
          [`not single-shard (${problems.join("; ")}):`, s.name ? `-- named statement ${s.name}` : "", s.inTransaction ? "-- in a transaction" : "", s.text.trim(), `-- values: ${s.values.map((v, i) => `$${i + 1}=${shown(v)}`).join(", ")}`, "-- plan:", plan]
            .filter(Boolean)
            .join("\n"),
        );
      }
    }
    expect(failures.length, `${failures.length} of ${statements.length} statement(s) are not routed to one shard:\n\n${failures.join("\n\n")}\n`).toBe(0);
  }

  const turn = (participantId: string, content: string): NewTurn => ({ participantId, role: "", content, toolCalls: [], metadata: {} });
  const traceHex = () => randomBytes(16).toString("hex");
  const spanHex = () => randomBytes(8).toString("hex");
  const span = (traceId: string, over: Partial<SpanInput> = {}): SpanInput => ({
    traceId,
    spanId: spanHex(),
    parentSpanId: "",
    name: "step",
    kind: 1,
    startTime: new Date(Date.now() - 10),
    endTime: new Date(),
    statusCode: 0,
    statusMessage: "",
    attributes: { k: "v" },
    events: [],
    ...over,
  });

  /** A session with a user "u" and an agent "a" bound, and a few turns. */
  async function conversation(sessionId: string): Promise<Session> {
    const s = await ctx.sessions.create(newSession({ namespace: NS, sessionId, user: "alice" }));
    await ctx.services.conversations.bind({ address: byId(s.id), participantId: "u", kind: "user", displayName: "Alice", metadata: {} });
    await ctx.services.conversations.bind({ address: byId(s.id), participantId: "a", kind: "agent", displayName: "Helper", metadata: {} });
    await ctx.services.conversations.append(byId(s.id), [turn("u", "hello"), turn("a", "hi")], "");
    return s;
  }

  it("the check fails a call whose statement reaches every shard (a global id of the old form, without its namespace)", async () => {
    const s = await conversation("old-form-id");
    const oldFormId = Buffer.from(`Session:${s.uuid}`, "utf8").toString("base64url");
    await expect(expectSingleShard(() => ctx.sessions.get(byId(oldFormId), false))).rejects.toThrow(/not routed to one shard[\s\S]*Task Count: ([2-9]|\d{2,})\b/);
  });

  it("GetSession by caller id", async () => {
    const s = await conversation("get-by-key");
    await expectSingleShard(async () => expect((await ctx.sessions.get(byKey("get-by-key", NS), false)).id).toBe(s.id));
  });

  it("GetSession by global id", async () => {
    const s = await conversation("get-by-id");
    await expectSingleShard(async () => expect((await ctx.sessions.get(byId(s.id), false)).uuid).toBe(s.uuid));
  });

  it("AppendTurns without a request id", async () => {
    const s = await conversation("append");
    await expectSingleShard(async () => expect((await ctx.services.conversations.append(byId(s.id), [turn("u", "one"), turn("a", "two")], "")).turns.map((t) => t.seq)).toEqual([3, 4]));
  });

  it("AppendTurns with a request id", async () => {
    const s = await conversation("append-request");
    await expectSingleShard(async () => expect((await ctx.services.conversations.append(byKey("append-request", NS), [turn("u", "one")], "req-1")).turns.map((t) => t.seq)).toEqual([3]));
  });

  const listTurns = (s: Session, participantId: string) => ctx.services.conversations.listTurns({ address: byId(s.id), participantId, afterSeq: 0, pageSize: 0, pageToken: "" });

  it("ListTurns", async () => {
    const s = await conversation("list-turns");
    await expectSingleShard(async () => expect((await listTurns(s, "")).turns).toHaveLength(2));
  });

  it("ListTurns of one participant", async () => {
    const s = await conversation("list-turns-of");
    await expectSingleShard(async () => expect((await listTurns(s, "a")).turns.map((t) => t.content)).toEqual(["hi"]));
  });

  it("ListTurns newest first (the last N), and its next page", async () => {
    const s = await conversation("list-turns-newest");
    await ctx.services.conversations.append(byId(s.id), [turn("u", "three"), turn("a", "four")], "");
    const last = (pageToken: string) => ctx.services.conversations.listTurns({ address: byId(s.id), participantId: "", afterSeq: 0, pageSize: 2, pageToken, newestFirst: true });
    let first: Awaited<ReturnType<typeof last>> | undefined;
    await expectSingleShard(async () => expect((first = await last("")).turns.map((t) => t.seq)).toEqual([4, 3]));
    await expectSingleShard(async () => expect((await last(first!.nextPageToken)).turns.map((t) => t.seq)).toEqual([2, 1]));
  });

  it("CreateSession with participants, then AppendTurns", async () => {
    const participants = [
      { participantId: "u", kind: "user" as const, displayName: "", metadata: {} },
      { participantId: "a", kind: "agent" as const, displayName: "", metadata: {} },
    ];
    let created: Session | undefined;
    // What binding adds to the create: the participants' INSERT and the count. The session's own INSERT
    // (session-store.ts) is the one every CreateSession sends, whose join with the reference table
    // namespaces goes through the coordinator: not what this checks.
    const create = () => ctx.sessions.create(newSession({ namespace: NS, sessionId: "create-with-participants", participants }));
    await expectSingleShard(async () => expect((created = await create()).participants).toHaveLength(2), /INSERT INTO sessions\b/);
    await expectSingleShard(async () => expect((await ctx.services.conversations.append(byId(created!.id), [turn("u", "hi"), turn("a", "hello")], "")).lastSeq).toBe(2));
  });

  it("RecordSpans", async () => {
    const s = await conversation("record");
    const t = traceHex();
    const root = span(t);
    const spans = [root, span(t, { parentSpanId: root.spanId }), span(traceHex())];
    await expectSingleShard(async () => expect(await ctx.services.tracing.record({ namespace: NS, session: s.id, sessionId: "", spans })).toMatchObject({ recorded: 3, tracesCreated: 2 }));
  });

  it("Annotate a session", async () => {
    const s = await conversation("annotate-session");
    const annotate = () =>
      ctx.services.tracing.annotate({ namespace: NS, target: { kind: "session", id: s.id }, name: "quality", annotatorKind: "human", label: "good", score: 1, explanation: "", metadata: {}, identifier: "" });
    await expectSingleShard(async () => expect((await annotate()).created).toBe(true));
  });

  it("Annotate a span", async () => {
    const s = await conversation("annotate-span");
    const sp = span(traceHex());
    await ctx.services.tracing.record({ namespace: NS, session: s.id, sessionId: "", spans: [sp] });
    const annotate = () =>
      ctx.services.tracing.annotate({ namespace: NS, target: { kind: "span", traceId: sp.traceId, spanId: sp.spanId }, name: "latency", annotatorKind: "code", label: "", score: 0.5, explanation: "", metadata: {}, identifier: "run-1" });
    await expectSingleShard(async () => expect((await annotate()).created).toBe(true));
  });

  it("DeleteSession", async () => {
    const s = await conversation("delete");
    await ctx.services.tracing.record({ namespace: NS, session: s.id, sessionId: "", spans: [span(traceHex())] });
    await expectSingleShard(async () => expect((await ctx.sessions.delete(byId(s.id), "")).deleted).toMatchObject({ participants: 2, turns: 2, traces: 1, spans: 1 }));
  });

  it("BulkDeleteSessions by filter (one batch)", async () => {
    for (const id of ["bulk-1", "bulk-2", "bulk-3"]) await ctx.sessions.create(newSession({ namespace: "routing-bulk", sessionId: id }));
    const events: BulkDeleteEvent[] = [];
    const run = async () => {
      const input = { namespace: "routing-bulk", selector: { kind: "filter" as const, filter: {}, includeDeleted: false }, dryRun: false, purgeMemories: false, batchSize: 0 };
      for await (const e of ctx.sessions.bulkDelete(input, new AbortController().signal)) events.push(e);
    };
    // A batch runs sessiond_delete_sessions() in the transaction that records it in its operation (on
    // the coordinator), so that it is reported exactly once: there Citus does not delegate the call, and
    // the function's own statements, each naming the namespace, go to its shard one by one.
    await expectSingleShard(run, /sessiond_delete_sessions/);
    const summary = events.find((e) => e.type === "summary");
    expect(summary?.type === "summary" && summary.counters).toMatchObject({ total: 3, deleted: 3 });
  });

  describe("ListSessions", () => {
    const list = (pageToken: string) => ctx.sessions.list({ namespace: "routing-list", pageSize: 2, pageToken, filter: {}, showDeleted: false, ascending: false });
    beforeAll(async () => {
      for (let i = 0; i < 5; i++) await ctx.sessions.create(newSession({ namespace: "routing-list", sessionId: `list-${i}` }));
    });

    it("first page", async () => {
      await expectSingleShard(async () => expect((await list("")).sessions.map((s) => s.sessionId)).toEqual(["list-4", "list-3"]));
    });

    it("a later page", async () => {
      const first = await list("");
      expect(first.nextPageToken).not.toBe("");
      await expectSingleShard(async () => expect((await list(first.nextPageToken)).sessions.map((s) => s.sessionId)).toEqual(["list-2", "list-1"]));
    });
  });
});
