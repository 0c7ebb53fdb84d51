/**
 * Plans that do not depend on luck: on tables never analyzed (a bulk load before autovacuum reaches
 * them, or autovacuum off), every hot call still finds its rows by their unique keys. One namespace
 * holds 20,000 sessions (with participants, turns, turn requests, traces, spans, annotations, memories
 * and client requests); autovacuum is off for every table and nothing is analyzed. Each hot call then
 * runs through the real services on connections that load auto_explain, which sends the plan of every
 * statement the call executes (nested ones too: the statements inside sessiond_append_turns(),
 * sessiond_delete_sessions() and sessiond_admit_client_request(), and the foreign keys' cascades) back
 * as a notice, with the rows each scan read and the buffers it touched. No scan may read more than a
 * handful of rows, and no statement touch more than a handful of buffers per row it returns or writes:
 * a scan of the namespace reads 20,000. The one exception is a page of ListSessions (see ONE_PASS).
 *
 * Twice: with custom plans (what a plain statement gets), and with generic plans forced (what a
 * prepared statement, a PL/pgSQL statement or a foreign-key check may get after a few runs, planned
 * without the parameter values, by default selectivities).
 *
 * Not on Citus: there the statements run on the workers, whose plans do not come back to the
 * coordinator's client; citus-routing.test.ts checks that each goes to one shard, where it is planned
 * as here.
 */
import { createHash, randomBytes } from "node:crypto";
import type pg from "pg";
import type { DataSource } from "typeorm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createServicesOn } from "../../src/app.js";
import { createDataSource } from "../../src/db/data-source.js";
import type { NewTurn } from "../../src/domain/conversation-model.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import type { Services } from "../../src/domain/services.js";
import type { SpanInput } from "../../src/domain/trace-model.js";
import { byId, byKey, newSession, useDatabase } from "../setup/context.js";
import { watchingQueries } from "../setup/pg-queries.js";

const NS = "plans";
const SESSIONS = 20_000;
/** The most rows one scan may read (a page of a list reads its page size and one more). */
const MAX_ROWS_READ = 60;
/**
 * Buffers a statement may touch: this many, plus BUFFERS_PER_ROW for each row it returns or writes (a
 * written row touches its heap page and a leaf of every index). A scan of the namespace touches hundreds.
 */
const BASE_BUFFERS = 50;
const BUFFERS_PER_ROW = 15;
/**
 * A page of a list is a top-N, not a row found by a unique key: on tables never analyzed the planner may
 * take it by reading the namespace once and sorting it (ANALYZE settles it; docs/operations.md). What
 * it must not do is more than one pass: joining every session to its namespace before taking the page
 * touched 40,000 buffers for 20 sessions.
 */
const ONE_PASS = { rows: SESSIONS + 100, buffers: 1500 };

/** A statement that calls one of sessiond's PL/pgSQL functions (its statements are reported apart). */
const CALLS_FUNCTION = /\bsessiond_(append_turns|admit_client_request|delete_sessions|record_spans)\s*\(/;

const TABLES = ["namespaces", "sessions", "participants", "turns", "turn_requests", "traces", "spans", "annotations", "memories", "client_requests", "api_keys"];

/** One executed statement's plan, as auto_explain reports it (FORMAT JSON). */
interface Explained {
  query: string;
  plan: PlanNode;
}
interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  "Shared Hit Blocks": number;
  "Shared Read Blocks": number;
  Plans?: PlanNode[];
  [k: string]: unknown;
}

/** The settings of a connection that reports its plans (see the file comment). */
function explainingUrl(url: string, planCacheMode: "force_custom_plan" | "force_generic_plan"): string {
  const settings = {
    session_preload_libraries: "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "json",
    "auto_explain.log_level": "notice",
    plan_cache_mode: planCacheMode,
    jit: "off",
  };
  const u = new URL(url);
  u.searchParams.set("options", Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(" "));
  return u.toString();
}

/** Every plan auto_explain sends to a client of `database` while `work` runs. */
async function capturePlans(database: string, work: () => Promise<unknown>): Promise<Explained[]> {
  const plans: Explained[] = [];
  const listening = new WeakSet<pg.Client>();
  const onNotice = (msg: { message?: string }) => {
    const m = /^duration: [\d.]+ ms\s+plan:\s*([\s\S]*)$/.exec(msg.message ?? "");
    if (!m) return;
    const parsed = JSON.parse(m[1]) as { "Query Text": string; Plan: PlanNode };
    plans.push({ query: parsed["Query Text"], plan: parsed.Plan });
  };
  await watchingQueries(
    database,
    (client) => {
      if (listening.has(client)) return;
      listening.add(client);
      client.on("notice", onNotice);
    },
    work,
  );
  return plans;
}

function* nodes(n: PlanNode): Generator<PlanNode> {
  yield n;
  for (const child of n.Plans ?? []) yield* nodes(child);
}

/** Rows a scan node read (returned or filtered out), over all its loops. */
const rowsRead = (n: PlanNode) => (n["Actual Rows"] + (n["Rows Removed by Filter"] ?? 0) + (n["Rows Removed by Index Recheck"] ?? 0)) * Math.max(1, n["Actual Loops"]);
const buffers = (n: PlanNode) => n["Shared Hit Blocks"] + n["Shared Read Blocks"];
const describeNode = (n: PlanNode) => `${n["Node Type"]}${n["Index Name"] ? ` using ${n["Index Name"]}` : ""}${n["Relation Name"] ? ` on ${n["Relation Name"]}` : ""}`;

/** What is wrong with one statement's plan: scans that read too many rows, too many buffers. */
function problems(e: Explained, onePass: boolean): string[] {
  const out: string[] = [];
  const maxRows = onePass ? ONE_PASS.rows : MAX_ROWS_READ;
  for (const n of nodes(e.plan)) {
    if ((n["Relation Name"] || n["Index Name"]) && rowsRead(n) > maxRows) out.push(`${describeNode(n)} read ${rowsRead(n)} rows`);
  }
  // A call of one of sessiond's PL/pgSQL functions counts the buffers of its statements, which are
  // reported (and checked) one by one.
  if (CALLS_FUNCTION.test(e.query)) return out;
  // Rows it returns, or writes (what each ModifyTable is fed: its RETURNING may return none).
  const writes = [...nodes(e.plan)].filter((n) => n["Node Type"] === "ModifyTable").flatMap((n) => [n, ...(n.Plans ?? [])]);
  const rows = Math.max(e.plan["Actual Rows"], ...writes.map((n) => n["Actual Rows"]));
  const budget = onePass ? ONE_PASS.buffers : BASE_BUFFERS + BUFFERS_PER_ROW * rows;
  if (buffers(e.plan) > budget) out.push(`touched ${buffers(e.plan)} buffers (budget ${budget} for ${rows} rows)`);
  return out;
}

/** A one-line summary of a plan: its scans and the buffers it touched. */
function summary(e: Explained): string {
  const scans = [...nodes(e.plan)].filter((n) => n["Relation Name"] || n["Index Name"]).map((n) => `${describeNode(n)} (${rowsRead(n)} rows)`);
  return `${buffers(e.plan)} buffers; ${scans.join(", ") || "no scans"}`;
}

describe.runIf(inject("database").kind !== "citus")("hot statements on tables never analyzed", () => {
  const ctx = useDatabase();
  let namespaceId = "";
  /** Loaded sessions, in creation order: [uuid, external id]. */
  let loaded: { id: string; external_id: string }[] = [];

  beforeAll(async () => {
    const sql = ctx.db.sql;
    for (const t of TABLES) await sql(`ALTER TABLE ${t} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)`);
    [{ id: namespaceId }] = await sql("INSERT INTO namespaces (name) VALUES ($1) RETURNING id", [NS]);
    // Created in order (create_time one millisecond apart), mostly active, some cancelled or soft-deleted.
    loaded = await sql(
      `INSERT INTO sessions (namespace_id, external_id, user_id, state, delete_time, expire_time, max_requests_per_minute, create_time, update_time,
                             participant_count, turn_count, trace_count, span_count, annotation_count, last_turn_seq, memories_extracted)
       SELECT $1, 'load-' || g, 'user-' || (g % 100), CASE WHEN g % 50 = 0 THEN 'cancelled' ELSE 'active' END,
              CASE WHEN g % 97 = 0 THEN now() END, now() + interval '1 day', 1000,
              now() - interval '1 hour' + g * interval '1 millisecond', now(), 2, 4, 1, 2, 1, 4, 1
       FROM generate_series(1, $2) g ORDER BY g RETURNING id, external_id`,
      [namespaceId, SESSIONS],
    );
    await sql(
      `INSERT INTO participants (namespace_id, session_id, participant_id, kind)
       SELECT s.namespace_id, s.id, k.p, k.kind FROM sessions s, (VALUES ('u', 'user'), ('a', 'agent')) k(p, kind) WHERE s.namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content)
       SELECT p.namespace_id, p.session_id, p.id, CASE p.participant_id WHEN 'u' THEN 2 * g - 1 ELSE 2 * g END, p.kind, 'turn ' || g
       FROM participants p, generate_series(1, 2) g WHERE p.namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO turn_requests (namespace_id, session_id, request_id, first_seq, turn_count, fingerprint)
       SELECT namespace_id, id, 'load', 1, 4, md5(id::text) FROM sessions WHERE namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO traces (namespace_id, session_id, otel_trace_id, root_name, span_count)
       SELECT namespace_id, id, md5(id::text), 'root', 2 FROM sessions WHERE namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO spans (namespace_id, trace_id, otel_span_id, name, start_time, end_time)
       SELECT t.namespace_id, t.id, lpad(to_hex(g), 16, '0'), 'span', now(), now() FROM traces t, generate_series(1, 2) g WHERE t.namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO annotations (namespace_id, session_id, trace_id, target_kind, target_key, name, annotator_kind, label)
       SELECT namespace_id, session_id, id, 'trace', 'trace:' || id, 'quality', 'human', 'good' FROM traces WHERE namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO memories (namespace_id, source_session_id, subject_user, content)
       SELECT namespace_id, id, user_id, 'memory' FROM sessions WHERE namespace_id = $1`,
      [namespaceId],
    );
    await sql(
      `INSERT INTO client_requests (namespace_id, session_id, at)
       SELECT namespace_id, id, now() - interval '10 seconds' FROM sessions WHERE namespace_id = $1`,
      [namespaceId],
    );
  }, 120_000);

  it("the tables hold the load and were never analyzed (the precondition of every other test)", async () => {
    const rows: { relname: string; reltuples: number; analyzed: boolean; n: number }[] = await ctx.db.sql(
      `SELECT c.relname, c.reltuples, (s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL) AS analyzed
       FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = ANY($1)`,
      [TABLES],
    );
    expect(rows.map((r) => r.relname).sort()).toEqual([...TABLES].sort());
    for (const r of rows) {
      expect(r.analyzed, `${r.relname} was analyzed`).toBe(false);
      expect([-1, 0], `${r.relname}: pg_class.reltuples`).toContain(r.reltuples);
    }
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM sessions WHERE namespace_id = $1", [namespaceId]);
    expect(n).toBe(SESSIONS);
  });

  for (const mode of ["force_custom_plan", "force_generic_plan"] as const) {
    describe(mode === "force_custom_plan" ? "custom plans" : "generic plans", () => {
      let ds: DataSource;
      let services: Services;
      /** Sessions this mode works on (apart from the other mode's), by index into `loaded`. */
      const base = mode === "force_custom_plan" ? 1000 : 11_000;
      let round = 0;

      beforeAll(async () => {
        // One connection: statements prepared once per connection (AppendTurns', PL/pgSQL's) are reused.
        ds = createDataSource({ url: explainingUrl(ctx.db.url, mode), poolSize: 1 });
        await ds.initialize();
        services = createServicesOn(ds).services;
      });
      afterAll(async () => {
        await ds?.destroy();
      });

      const turn = (participantId: string, content: string): NewTurn => ({ participantId, role: "", content, toolCalls: [], metadata: {} });
      const span = (traceId: string, parentSpanId = ""): SpanInput => ({
        traceId,
        spanId: randomBytes(8).toString("hex"),
        parentSpanId,
        name: "step",
        kind: 1,
        startTime: new Date(Date.now() - 10),
        endTime: new Date(),
        statusCode: 0,
        statusMessage: "",
        attributes: {},
        events: [],
      });
      /** A loaded, active session (a different one every round). */
      const pick = (offset: number) => {
        for (let i = base + round * 200 + offset; ; i++) if ((i + 1) % 50 !== 0 && (i + 1) % 97 !== 0) return { ...loaded[i], global: encodeSessionId(namespaceId, loaded[i].id) };
      };

      /** The hot calls; `onePass`: a page of a list (see ONE_PASS). */
      const CALLS: [name: string, call: () => Promise<unknown>, onePass?: boolean][] = [
        ["CreateSession", () => services.sessions.create(newSession({ namespace: NS, sessionId: `new-${mode}-${round}` }))],
        [
          "CreateSession binding a user and an agent",
          () =>
            services.sessions.create(
              newSession({
                namespace: NS,
                sessionId: `chat-${mode}-${round}`,
                participants: [
                  { participantId: "user", kind: "user", displayName: "", metadata: {} },
                  { participantId: "agent", kind: "agent", displayName: "", metadata: {} },
                ],
              }),
            ),
        ],
        ["GetSession by global id", () => services.sessions.get(byId(pick(0).global), false)],
        ["GetSession by session id", () => services.sessions.get(byKey(pick(1).external_id, NS), false)],
        ["UpdateSession", () => services.sessions.update({ address: byId(pick(2).global), paths: ["labels"], values: { data: {}, labels: { k: "v" }, user: "", workflow: { id: "", version: "" } }, etag: "" })],
        ["ListSessions, first page", () => services.sessions.list({ namespace: NS, pageSize: 20, pageToken: "", filter: {}, showDeleted: false, ascending: false }), true],
        ["ListSessions, first page of active ones", () => services.sessions.list({ namespace: NS, pageSize: 20, pageToken: "", filter: { state: "active" }, showDeleted: false, ascending: false }), true],
        ["BindParticipant", () => services.conversations.bind({ address: byId(pick(3).global), participantId: "tool", kind: "tool", displayName: "", metadata: {} })],
        ["ListParticipants", () => services.conversations.participants(byId(pick(4).global))],
        ["AppendTurns by global id", () => services.conversations.append(byId(pick(5).global), [turn("u", "hello"), turn("a", "hi")], "")],
        ["AppendTurns by session id, with a request id", () => services.conversations.append(byKey(pick(6).external_id, NS), [turn("u", "hello")], `r-${round}`)],
        [
          "AppendTurns retried with its request id",
          async () => {
            const address = byId(pick(16).global);
            await services.conversations.append(address, [turn("u", "again")], `again-${round}`);
            await services.conversations.append(address, [turn("u", "again")], `again-${round}`);
          },
        ],
        ["ListTurns", () => services.conversations.listTurns({ address: byId(pick(7).global), participantId: "", afterSeq: 0, pageSize: 10, pageToken: "" } as never)],
        ["ListTurns, the last 10 (newest_first)", () => services.conversations.listTurns({ address: byId(pick(7).global), participantId: "", afterSeq: 0, pageSize: 10, pageToken: "", newestFirst: true } as never)],
        ["ListTurns of one participant", () => services.conversations.listTurns({ address: byId(pick(8).global), participantId: "a", afterSeq: 0, pageSize: 10, pageToken: "" } as never)],
        [
          "RecordSpans (19 new traces and a known one)",
          () => {
            const s = pick(9);
            const traceIds = [createHash("md5").update(s.id).digest("hex"), ...Array.from({ length: 19 }, () => randomBytes(16).toString("hex"))];
            return services.tracing.record({ namespace: NS, session: s.global, sessionId: "", spans: traceIds.map((t) => span(t)) });
          },
        ],
        [
          "client secret: authenticate and admit",
          async () => {
            const created = await services.sessions.create(newSession({ namespace: NS, sessionId: `secret-${mode}-${round}` }));
            const principal = await services.credentials.authenticate(created.clientSecret.value);
            if (principal.kind !== "client") throw new Error("not a client principal");
            await services.credentials.admit(principal);
          },
        ],
        [
          "API key: authenticate",
          async () => {
            const { secret } = await services.apiKeys.create({ displayName: "k", role: "writer", namespace: NS, expiresAfterMs: undefined, createdBy: "test" });
            await services.credentials.authenticate(secret);
          },
        ],
        ["DeleteSession", () => services.sessions.delete(byId(pick(10).global), "")],
        [
          "DeleteSession with an etag",
          async () => {
            const s = await services.sessions.get(byId(pick(17).global), false);
            await services.sessions.delete(byId(s.id), s.etag);
          },
        ],
        [
          "BulkDeleteSessions, one batch of 100",
          async () => {
            // 100 of the namespace's sessions (pick's offsets 20 to 119: none of the other calls').
            const ids = Array.from({ length: 100 }, (_, i) => pick(20 + i).global);
            for await (const _ of services.sessions.bulkDelete({ namespace: NS, selector: { kind: "ids", values: ids }, dryRun: false, purgeMemories: false, batchSize: 0 }, new AbortController().signal));
          },
        ],
      ];

      for (const [name, call, onePass = false] of CALLS) {
        it(name, async () => {
          // A first run warms the connection up (catalog caches, prepared statements), on other rows.
          await call();
          round++;
          const plans = await capturePlans(ctx.db.name, call);
          round++;
          expect(plans.length, "auto_explain reported no plan: nothing was checked").toBeGreaterThan(0);
          const failures = plans.flatMap((e) => problems(e, onePass).map((p) => `${p}:\n  ${e.query.trim().replace(/\s+/g, " ").slice(0, 400)}\n  ${summary(e)}`));
          if (process.env.PLANS_VERBOSE) console.log(`${mode} ${name}\n${plans.map((e) => `  ${summary(e)} <- ${e.query.trim().replace(/\s+/g, " ").slice(0, 160)}`).join("\n")}`);
          expect(failures, `${failures.length} statement(s) of ${plans.length} read more than their rows:\n\n${failures.join("\n\n")}\n`).toEqual([]);
        });
      }
    });
  }
});
