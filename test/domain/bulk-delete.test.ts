import { Code } from "@connectrpc/connect";
import type { DataSource } from "typeorm";
import { afterAll, describe, expect, it } from "vitest";
import { createServicesOn } from "../../src/app.js";
import { createDataSource } from "../../src/db/data-source.js";
import type { OperationLimits } from "../../src/domain/operations.js";
import type { BulkDeleteEvent, BulkDeleteInput, BulkResult } from "../../src/domain/bulk-delete.js";
import { CancelledError, InvalidInputError, RateLimitedError } from "../../src/domain/errors.js";
import { encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { toConnectError } from "../../src/handlers/errors.js";
import { createLogger } from "../../src/logger.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { useDatabase } from "../setup/context.js";
import { countContents, namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";

const ctx = useDatabase();
const SHAPE = { participants: 2, turnsPerParticipant: 5, traces: 2, spansPerTrace: 3, annotationsPerTrace: 1, memories: 1 };

function input(over: Partial<BulkDeleteInput>): BulkDeleteInput {
  return { namespace: "", selector: { kind: "none" }, dryRun: false, purgeMemories: false, batchSize: 0, ...over };
}

async function run(over: Partial<BulkDeleteInput>, signal = new AbortController().signal) {
  const events: BulkDeleteEvent[] = [];
  for await (const e of ctx.sessions.bulkDelete(input(over), signal)) events.push(e);
  const results = events.flatMap((e) => (e.type === "progress" ? e.results : []));
  return { events, results, byId: new Map(results.map((r) => [r.identifier, r])) };
}

/** Namespace ids of the sessions seeded here, by session uuid: what their global ids carry. */
const namespaceOfSession = new Map<string, string>();

/** Seeds sessions (seedSessions) and notes their namespace, for gid. */
async function seed(n: number, namespace: string, opts: Parameters<typeof seedSessions>[3] = {}): Promise<string[]> {
  const uuids = await seedSessions(ctx.db.dataSource, n, namespace, opts);
  const namespaceId = await namespaceIdOf(ctx.db.dataSource, namespace);
  for (const u of uuids) namespaceOfSession.set(u, namespaceId);
  return uuids;
}

/** The global id of a seeded session. */
const gid = (uuid: string) => encodeSessionId(namespaceOfSession.get(uuid)!, uuid);
/** A session's global id of the old form (no namespace), as handed out before ids carried it. */
const oldGid = (uuid: string) => Buffer.from(`Session:${uuid}`).toString("base64url");

describe("BulkDeleteSessions (domain)", () => {
  it("reports a batch that fails for a reason other than an outage as FAILED, rolls it back, and goes on", async () => {
    const uuids = await seed(6, "bulk-fail");
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    // A real fault inside Postgres: a trigger that refuses to delete one session (the third).
    await ctx.db.sql(`UPDATE sessions SET labels = '{"explode":"yes"}' WHERE id = $1`, [uuids[2]]);
    await ctx.db.sql(
      `CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF OLD.labels ? 'explode' THEN RAISE EXCEPTION 'refusing to delete %', OLD.id; END IF; RETURN OLD; END $$`,
    );
    // Citus allows a trigger on a distributed table only when asked (a no-op setting elsewhere).
    const unsafeTriggers = (sql: string) => ctx.db.dataSource.transaction(async (m) => (await m.query("SET LOCAL citus.enable_unsafe_triggers = on"), await m.query(sql)));
    await unsafeTriggers("CREATE TRIGGER refuse_delete BEFORE DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_delete()");
    try {
      const { events, byId } = await run({ namespace: "bulk-fail", selector: { kind: "ids", values: uuids.map(gid) }, batchSize: 2 });
      expect(uuids.map((u) => byId.get(gid(u))?.outcome)).toEqual(["deleted", "deleted", "failed", "failed", "deleted", "deleted"]);
      expect(byId.get(gid(uuids[2]))).toMatchObject({ id: gid(uuids[2]), error: "the batch could not be deleted; the session is untouched (see server logs)" });
      expect(byId.get(gid(uuids[2]))?.error).not.toContain("refusing");
      expect(events.at(-1)).toMatchObject({ type: "summary", counters: { completed: 6, deleted: 4, failed: 2, notFound: 0 } });
      const left = await ctx.db.sql("SELECT id FROM sessions WHERE id = ANY($1) ORDER BY id", [uuids]);
      expect(left.map((r: { id: string }) => r.id)).toEqual([uuids[2], uuids[3]].sort());
      expect(await countContents(ctx.db.dataSource, [uuids[2], uuids[3]])).toMatchObject({ participants: 4, turns: 20, spans: 12 });
    } finally {
      await unsafeTriggers("DROP TRIGGER refuse_delete ON sessions");
      await ctx.db.sql("DROP FUNCTION refuse_delete()");
    }
  });

  it("streams started, one progress per batch and a summary, reporting every id once with its cascade counts", async () => {
    const uuids = await seed(7, "bulk-a");
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const missing = encodeSessionId(namespaceOfSession.get(uuids[0])!, crypto.randomUUID());
    const ids = [...uuids.map(gid), missing, uuids.map(gid)[0], "garbage!", encodeGlobalId("Trace", crypto.randomUUID())];
    const { events, results, byId } = await run({ namespace: "bulk-a", selector: { kind: "ids", values: ids }, batchSize: 3 });

    expect(events[0]).toEqual({ type: "started", total: 10, dryRun: false, batchSize: 3, operationId: expect.any(String) });
    expect(events.filter((e) => e.type === "progress")).toHaveLength(4);
    expect(results.map((r) => r.identifier)).toEqual([...uuids.map(gid), missing, "garbage!", ids[10]]);
    for (const u of uuids) expect(byId.get(gid(u))).toMatchObject({ outcome: "deleted", id: gid(u), counts: { participants: 2, turns: 10, traces: 2, spans: 6, annotations: 2 }, memories: 1 });
    expect(byId.get(missing)?.outcome).toBe("not_found");
    expect(byId.get("garbage!")).toMatchObject({ outcome: "invalid_id", error: "id: not a valid Session id" });
    expect(byId.get(ids[10])).toMatchObject({ outcome: "invalid_id", error: "id: is a Trace id, expected a Session id" });
    const summary = events.at(-1)!;
    expect(summary).toMatchObject({ type: "summary", counters: { completed: 10, total: 10, deleted: 7, notFound: 1, invalid: 2, failed: 0 }, deleted: { participants: 14, turns: 70, traces: 14, spans: 42, annotations: 14 } });

    expect(await countContents(ctx.db.dataSource, uuids)).toEqual({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 });
    // Memories survive by default, detached from their source.
    expect((await ctx.db.sql("SELECT count(*)::int AS n FROM memories WHERE source_session_id IS NULL AND content LIKE 'memory%'"))[0].n).toBeGreaterThanOrEqual(7);
  });

  it("purges memories only when asked", async () => {
    const uuids = await seed(3, "bulk-mem");
    await seedContents(ctx.db.dataSource, uuids, { memories: 2 });
    const before = (await ctx.db.sql("SELECT count(*)::int AS n FROM memories"))[0].n;
    const { byId } = await run({ namespace: "bulk-mem", selector: { kind: "ids", values: uuids.map(gid) }, purgeMemories: true });
    expect(byId.get(gid(uuids[0]))?.memories).toBe(2);
    expect((await ctx.db.sql("SELECT count(*)::int AS n FROM memories"))[0].n).toBe(before - 6);
  });

  it("dry run reports WOULD_DELETE with counts and deletes nothing", async () => {
    const uuids = await seed(4, "bulk-dry");
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const before = await countContents(ctx.db.dataSource, uuids);
    const { results, events } = await run({ namespace: "bulk-dry", selector: { kind: "ids", values: uuids.map(gid) }, dryRun: true });
    expect(results.every((r) => r.outcome === "would_delete" && r.counts?.spans === 6)).toBe(true);
    expect(events.at(-1)).toMatchObject({ dryRun: true, counters: { deleted: 4 } });
    expect(await countContents(ctx.db.dataSource, uuids)).toEqual(before);
  });

  it("never touches another namespace's sessions: their ids are NOT_FOUND", async () => {
    const theirs = await seed(3, "bulk-theirs");
    const { results } = await run({ namespace: "bulk-mine", selector: { kind: "ids", values: theirs.map(gid) } });
    expect(results.map((r) => r.outcome)).toEqual(["not_found", "not_found", "not_found"]);
    expect((await countContents(ctx.db.dataSource, theirs)).sessions).toBe(3);
  });

  it("reports ids of another namespace's sessions NOT_FOUND in a namespace that exists, whatever their form, and deletes only its own", async () => {
    const theirs = await seed(3, "bulk-theirs-2");
    const mine = await seed(2, "bulk-mine-2");
    const mineNamespace = namespaceOfSession.get(mine[0])!;
    // Their ids as issued, of the old form, and their uuids under this namespace's uuid.
    const foreign = [...theirs.map(gid), ...theirs.map(oldGid), ...theirs.map((u) => encodeSessionId(mineNamespace, u))];
    const { results, events } = await run({ namespace: "bulk-mine-2", selector: { kind: "ids", values: [...foreign, ...mine.map(gid)] }, batchSize: 4 });
    expect(results.map((r) => [r.identifier, r.outcome, r.id])).toEqual([...foreign.map((id) => [id, "not_found", id]), ...mine.map((u) => [gid(u), "deleted", gid(u)])]);
    expect(events.at(-1)).toMatchObject({ type: "summary", counters: { completed: 11, deleted: 2, notFound: 9, invalid: 0, failed: 0 } });
    expect((await countContents(ctx.db.dataSource, theirs)).sessions).toBe(3);
    expect((await countContents(ctx.db.dataSource, mine)).sessions).toBe(0);
  });

  it("still deletes by ids of the old form, answering with the current form", async () => {
    const uuids = await seed(3, "bulk-old-ids");
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const { results } = await run({ namespace: "bulk-old-ids", selector: { kind: "ids", values: uuids.map(oldGid) } });
    expect(results.map((r) => [r.identifier, r.outcome, r.id])).toEqual(uuids.map((u) => [oldGid(u), "deleted", gid(u)]));
    expect(results[0].counts).toEqual({ participants: 2, turns: 10, traces: 2, spans: 6, annotations: 2, archivedTurns: 0, compactions: 0 });
    expect((await countContents(ctx.db.dataSource, uuids)).sessions).toBe(0);
  });

  it("deletes by caller session ids", async () => {
    await seed(3, "bulk-ext", { prefix: "ext-" });
    const { results } = await run({ namespace: "bulk-ext", selector: { kind: "sessionIds", values: ["ext-1", "ext-3", "ext-9", ""] } });
    expect(results.map((r) => [r.identifier, r.outcome])).toEqual([["ext-1", "deleted"], ["ext-3", "deleted"], ["ext-9", "not_found"], ["", "invalid_id"]]);
    expect(results[0].id).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("a retried call reports the already deleted ids as NOT_FOUND and finishes the rest", async () => {
    const uuids = await seed(6, "bulk-retry");
    await run({ namespace: "bulk-retry", selector: { kind: "ids", values: uuids.slice(0, 3).map(gid) } });
    const { results } = await run({ namespace: "bulk-retry", selector: { kind: "ids", values: uuids.map(gid) } });
    expect(results.map((r) => r.outcome)).toEqual(["not_found", "not_found", "not_found", "deleted", "deleted", "deleted"]);
  });

  it("two overlapping calls together report each id DELETED exactly once", async () => {
    const uuids = await seed(400, "bulk-race");
    await seedContents(ctx.db.dataSource, uuids, { participants: 1, turnsPerParticipant: 2, traces: 1, spansPerTrace: 2 });
    const ids = uuids.map(gid);
    const reversed = [...ids].reverse();
    const [a, b] = await Promise.all([
      run({ namespace: "bulk-race", selector: { kind: "ids", values: ids }, batchSize: 37 }),
      run({ namespace: "bulk-race", selector: { kind: "ids", values: reversed }, batchSize: 53 }),
    ]);
    for (const id of ids) {
      const outcomes = [a.byId.get(id)!.outcome, b.byId.get(id)!.outcome].sort();
      expect(outcomes).toEqual(["deleted", "not_found"]);
    }
    expect((await countContents(ctx.db.dataSource, uuids)).sessions).toBe(0);
  });

  it("filter mode deletes only what existed when the call began (snapshot), with the total up front", async () => {
    await seed(25, "bulk-filter", { user: "doomed" });
    await seed(5, "bulk-filter", { user: "spared" });
    const events: BulkDeleteEvent[] = [];
    let late = "";
    for await (const e of ctx.sessions.bulkDelete(input({ namespace: "bulk-filter", selector: { kind: "filter", filter: { user: "doomed" }, includeDeleted: false }, batchSize: 10 }), new AbortController().signal)) {
      events.push(e);
      if (e.type === "started") {
        // Arrives while the call runs: must not be caught.
        late = (await ctx.sessions.create({ namespace: "bulk-filter", sessionId: "late", user: "doomed", workflow: { id: "", version: "" }, data: {}, labels: {}, maxRequestsPerMinute: 0 })).uuid;
      }
    }
    expect(events[0]).toMatchObject({ type: "started", total: 25 });
    expect(events.at(-1)).toMatchObject({ counters: { completed: 25, deleted: 25 } });
    const left = await ctx.db.sql("SELECT user_id, count(*)::int AS n FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = 'bulk-filter' GROUP BY 1 ORDER BY 1");
    expect(left).toEqual([{ user_id: "doomed", n: 1 }, { user_id: "spared", n: 5 }]);
    expect((await countContents(ctx.db.dataSource, [late])).sessions).toBe(1);
  });

  it("cancellation stops after the batch in hand and throws the reason; exactly the committed batches are gone, no session is half-deleted", async () => {
    const uuids = await seed(50, "bulk-cancel");
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const abort = new AbortController();
    const seen: BulkResult[] = [];
    const reason = new Error("client went away");
    let operationId = "";
    const err = await (async () => {
      for await (const e of ctx.sessions.bulkDelete(input({ namespace: "bulk-cancel", selector: { kind: "ids", values: uuids.map(gid) }, batchSize: 10 }), abort.signal)) {
        if (e.type === "started") operationId = e.operationId;
        if (e.type === "progress") {
          seen.push(...e.results);
          if (seen.length === 20) abort.abort(reason);
        }
      }
    })().catch((e) => e);
    expect(err).toBe(reason);
    expect(seen).toHaveLength(20);
    // The operation runs ahead of its reader: it stops after the batch it has in hand, and ends CANCELLED.
    let op = await ctx.services.operations.get("bulk-cancel", operationId);
    for (const t = Date.now(); op.state !== "cancelled" && Date.now() - t < 10_000; op = await ctx.services.operations.get("bulk-cancel", operationId)) await new Promise((r) => setTimeout(r, 20));
    expect(op.state).toBe("cancelled");
    const done = op.progress.counters.deleted;
    expect(done).toBeGreaterThanOrEqual(20);
    expect(done).toBeLessThan(50);
    expect(done % 10).toBe(0);
    // Exactly the committed batches' sessions are gone, with everything under them; the rest are whole.
    const gone = uuids.slice(0, done);
    const kept = uuids.slice(done);
    expect(await countContents(ctx.db.dataSource, gone)).toMatchObject({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0 });
    expect(await countContents(ctx.db.dataSource, kept)).toMatchObject({ sessions: kept.length, participants: 2 * kept.length, turns: 10 * kept.length, spans: 6 * kept.length });
  });

  it.each([
    ["selector", { selector: { kind: "none" } }],
    ["ids.values", { selector: { kind: "ids", values: [] } }],
    ["ids.values", { selector: { kind: "ids", values: Array.from({ length: 100_001 }, (_, i) => `x${i}`) } }],
    ["batch_size", { selector: { kind: "ids", values: ["a"] }, batchSize: 5001 }],
    ["namespace", { namespace: "NO!", selector: { kind: "ids", values: ["a"] } }],
  ] as const)("rejects a bad %s before anything is deleted", async (field, over) => {
    const err = await run(over as Partial<BulkDeleteInput>).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.field).toBe(field);
  });
});

/** Resolves once `check()` holds (polling; fails the test by its timeout otherwise). */
async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

/** Extra DataSources on the file's database, closed when the file ends. */
const extra: DataSource[] = [];
afterAll(async () => {
  for (const ds of extra) if (ds.isInitialized) await ds.destroy();
});

/** Services over a pool of `poolSize` connections on the file's database, with the given operation limits. */
async function servicesOn(poolSize: number, limits?: Partial<OperationLimits>, connectTimeoutMs = 5000) {
  const ds = createDataSource({ url: ctx.db.url, poolSize, connectTimeoutMs });
  await ds.initialize();
  extra.push(ds);
  const { stores, services } = createServicesOn(ds, { operationLimits: limits });
  const pool = (ds.driver as any).master as { totalCount: number; idleCount: number; waitingCount: number };
  return { ds, stores, services, pool, inUse: () => pool.totalCount - pool.idleCount };
}

const filterAll = (namespace: string, batchSize = 10) => input({ namespace, selector: { kind: "filter", filter: {}, includeDeleted: false }, dryRun: true, batchSize });

describe("BulkDeleteSessions and the database pool (issue 12)", () => {
  it("a bulk delete by filter holds no pooled connection while waiting for another, so it runs to the end on a pool of one, whether or not its reader reads", async () => {
    await seed(35, "pool-one");
    const { services, inUse, pool } = await servicesOn(1);
    const events: BulkDeleteEvent[] = [];
    for await (const e of services.sessions.bulkDelete(filterAll("pool-one"), new AbortController().signal)) {
      // The reader dawdles at its first progress message: the operation goes on without it.
      if (e.type === "progress" && events.length === 1) await new Promise((r) => setTimeout(r, 200));
      events.push(e);
    }
    expect(events[0]).toMatchObject({ type: "started", total: 35 });
    expect(events.at(-1)).toMatchObject({ type: "summary", counters: { completed: 35, deleted: 35 } });
    expect(events.filter((e) => e.type === "progress")).toHaveLength(4);
    expect(services.operations.stats()).toEqual({ running: 0 });
    expect(inUse()).toBe(0);
    expect(pool.waitingCount).toBe(0);
  });

  it("waiting for a pooled connection is bounded: an exhausted pool fails unavailable with a retry hint, logged at warn", async () => {
    const { ds, stores } = await servicesOn(1, undefined, 200);
    const holder = ds.createQueryRunner();
    await holder.connect();
    try {
      await holder.query("SELECT 1");
      const err = await stores.keys.any().catch((e) => e);
      const lines: any[] = [];
      const logger = createLogger("debug", { write: (line: string) => void lines.push(JSON.parse(line)) });
      const mapped = toConnectError(err, "req-pool", logger);
      expect(mapped.code).toBe(Code.Unavailable);
      expect(mapped.message).toContain("req-pool");
      expect(Number(mapped.metadata.get("retry-after"))).toBeGreaterThan(0);
      expect(mapped.findDetails(RetryInfoSchema)[0]?.retryDelay).toBeDefined();
      expect(lines.map((l) => l.level)).toEqual([40]);
    } finally {
      await holder.release();
    }
  });

  it("beyond the process's slots an operation waits QUEUED; beyond the namespace's queue it is refused with a retry hint", async () => {
    await seed(300, "slots");
    const { services, stores } = await servicesOn(4, { maxRunning: 1, maxQueued: 1 });
    const signal = new AbortController().signal;
    // 300 batches of one: the first is still running while the others come.
    const first = services.sessions.bulkDelete(filterAll("slots", 1), signal);
    expect((await first.next()).value).toMatchObject({ type: "started", total: 300 });
    const second = services.sessions.bulkDelete(filterAll("slots"), signal);
    const started = (await second.next()).value as Extract<BulkDeleteEvent, { type: "started" }>;
    expect(started).toMatchObject({ type: "started", total: 300 });
    expect((await services.operations.get("slots", started.operationId)).state).toBe("queued");
    const refused = await services.sessions.bulkDelete(filterAll("slots"), signal).next().catch((e) => e);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    // DeleteNamespace takes the same slots and queue.
    const nsRefused = await services.namespaces.delete({ name: "slots", batchSize: 10 }, signal).next().catch((e) => e);
    expect(nsRefused).toBeInstanceOf(RateLimitedError);
    expect((await ctx.db.sql("SELECT count(*)::int AS n FROM namespaces WHERE name = 'slots'"))[0].n).toBe(1);
    for await (const _ of first);
    // The slot passes to the queued one as the first ends.
    const rest: BulkDeleteEvent[] = [];
    for await (const e of second) rest.push(e);
    expect(rest.at(-1)).toMatchObject({ type: "summary", counters: { completed: 300, deleted: 300 } });
    expect(services.operations.stats()).toEqual({ running: 0 });
    expect(await stores.operations.countQueued(await namespaceIdOf(ctx.db.dataSource, "slots"))).toBe(0);
  });

  it("a process that polls while its slots are full still claims queued work once one frees", async () => {
    await seed(200, "slots-poll");
    const { services } = await servicesOn(4, { maxRunning: 1, pollMs: 50 });
    const signal = new AbortController().signal;
    const first = services.sessions.bulkDelete(filterAll("slots-poll", 1), signal);
    await first.next();
    const second = services.sessions.bulkDelete(filterAll("slots-poll"), signal);
    const started = (await second.next()).value as Extract<BulkDeleteEvent, { type: "started" }>;
    expect((await services.operations.get("slots-poll", started.operationId)).state).toBe("queued");
    // Polls now (start() polls at once), with the one slot taken, and keeps polling.
    services.operations.start();
    for await (const _ of first);
    const rest: BulkDeleteEvent[] = [];
    for await (const e of second) rest.push(e);
    expect(rest.at(-1)).toMatchObject({ type: "summary", counters: { completed: 200 } });
    await services.operations.stop();
  });

  it("a queued operation whose client goes away is cancelled at once, and never runs", async () => {
    await seed(300, "slots-wait");
    const { services } = await servicesOn(4, { maxRunning: 1, maxQueued: 4 });
    const holder = services.sessions.bulkDelete(filterAll("slots-wait", 1), new AbortController().signal);
    await holder.next();
    const abort = new AbortController();
    const reason = new Error("client went away");
    const queued = services.sessions.bulkDelete(filterAll("slots-wait"), abort.signal);
    const started = (await queued.next()).value as Extract<BulkDeleteEvent, { type: "started" }>;
    const waiting = queued.next().catch((e) => e);
    abort.abort(reason);
    expect(await waiting).toBe(reason);
    const op = await services.operations.get("slots-wait", started.operationId);
    expect(op).toMatchObject({ state: "cancelled", batches: 0, attempts: 0 });
    for await (const _ of holder);
    expect(services.operations.stats()).toEqual({ running: 0 });
    expect((await services.operations.get("slots-wait", started.operationId)).state).toBe("cancelled");
  });

  it("CancelOperation ends a follower's stream with CancelledError", async () => {
    await seed(300, "cancel-op");
    const { services } = await servicesOn(4, { maxRunning: 1 });
    // 300 batches of one: the operation is still running when it is cancelled.
    const stream = services.sessions.bulkDelete(filterAll("cancel-op", 1), new AbortController().signal);
    const started = (await stream.next()).value as Extract<BulkDeleteEvent, { type: "started" }>;
    await stream.next(); // a first batch committed
    const cancelled = await services.operations.cancel("cancel-op", started.operationId);
    expect(["running", "cancelled"]).toContain(cancelled.state);
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(CancelledError);
    const op = await services.operations.get("cancel-op", started.operationId);
    expect(op.state).toBe("cancelled");
    expect(op.progress.counters.completed).toBeLessThan(300);
    expect(op.cancelRequested).toBe(false);
  });
});
