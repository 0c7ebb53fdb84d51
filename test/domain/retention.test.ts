/**
 * Retention against a real database: policies per namespace with the default from configuration,
 * sessions past their policy hidden at once from reads and lists, and the sweeper deleting them (and
 * expired sessionless traces, and ended client-request windows) as RETENTION_SWEEP operations, checking
 * each session again under its row lock.
 */
import { describe, expect, it } from "vitest";
import { createServicesOn } from "../../src/app.js";
import { InvalidInputError, NotFoundError } from "../../src/domain/errors.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import type { RetentionPolicy } from "../../src/domain/retention.js";
import { byId, newSession, useDatabase } from "../setup/context.js";
import { countContents, namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";

const ctx = useDatabase();
const DAY = 86_400_000;
const SHAPE = { participants: 1, turnsPerParticipant: 2, traces: 1, spansPerTrace: 2, annotationsPerTrace: 1, memories: 1 };
const policy = (over: Partial<RetentionPolicy>): RetentionPolicy => ({ purgeMemories: false, holdLabels: [], ...over });

/** Moves sessions back in time: created `createdDaysAgo` days ago, last active `idleDaysAgo` days ago. */
async function age(uuids: string[], createdDaysAgo: number, idleDaysAgo = createdDaysAgo) {
  await ctx.db.sql(
    `UPDATE sessions SET create_time = now() - $2 * interval '1 day', last_activity_time = now() - $3 * interval '1 day' WHERE id = ANY($1)`,
    [uuids, createdDaysAgo, idleDaysAgo],
  );
}

async function waitForSweep(namespace: string): Promise<void> {
  for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    const { operations } = await ctx.services.operations.list({ namespace, kind: "retention_sweep", pageSize: 10, pageToken: "" });
    if (operations.length && operations.every((o) => o.state !== "queued" && o.state !== "running")) return;
  }
  throw new Error("the sweep did not end within 20 s");
}

describe("retention policies", () => {
  it("are set per namespace and read back; a namespace without one follows the default", async () => {
    await ctx.services.namespaces.create("ret-policy");
    expect(await ctx.services.retention.get("ret-policy")).toEqual({ policy: { purgeMemories: false, holdLabels: [] }, isDefault: true });
    const set = await ctx.services.retention.set("ret-policy", policy({ maxAgeMs: 30 * DAY, maxIdleMs: 7 * DAY, holdLabels: ["legal-hold", "legal-hold"], sessionlessTraceTtlMs: DAY }));
    expect(set).toEqual({ maxAgeMs: 30 * DAY, maxIdleMs: 7 * DAY, purgeMemories: false, holdLabels: ["legal-hold"], sessionlessTraceTtlMs: DAY });
    const got = await ctx.services.retention.get("ret-policy");
    expect(got).toMatchObject({ policy: set, isDefault: false });
    expect(got.updateTime).toBeInstanceOf(Date);
    // Replaced whole: an empty policy keeps everything.
    expect(await ctx.services.retention.set("ret-policy", policy({}))).toEqual({ purgeMemories: false, holdLabels: [] });
  });

  it.each([
    [{ maxAgeMs: -1 }, "policy.max_age", /negative/],
    [{ maxIdleMs: 1000 }, "policy.max_idle", /at least 1 minute/],
    [{ sessionlessTraceTtlMs: 200 * 365 * DAY }, "policy.sessionless_trace_ttl", /at most 100 years/],
    [{ holdLabels: ["ok", "not ok"] }, "policy.hold_labels[1]", /characters/],
  ] as const)("refuses %o naming %s", async (over, field, message) => {
    await ctx.services.namespaces.create(`ret-bad-${field.replace(/[^a-z]/g, "")}`).catch(() => {});
    const err = await ctx.services.retention.set(`ret-bad-${field.replace(/[^a-z]/g, "")}`, policy(over as Partial<RetentionPolicy>)).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it("refuses an unknown namespace with NOT_FOUND", async () => {
    await expect(ctx.services.retention.get("ret-nowhere")).rejects.toBeInstanceOf(NotFoundError);
    await expect(ctx.services.retention.set("ret-nowhere", policy({ maxAgeMs: DAY }))).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("sessions past their policy", () => {
  it("are hidden at once from reads and lists, except those on hold; others' namespaces are untouched", async () => {
    const ns = "ret-hidden";
    const [old, held, idle, fresh] = await Promise.all(["old", "held", "idle", "fresh"].map((id) => ctx.sessions.create(newSession({ namespace: ns, sessionId: id, labels: id === "held" ? { "legal-hold": "case-7" } : {} }))));
    const other = await ctx.sessions.create(newSession({ namespace: "ret-hidden-other", sessionId: "old" }));
    await age([old.uuid, held.uuid, other.uuid], 40, 1);
    await age([idle.uuid], 5, 3);
    await ctx.services.retention.set(ns, policy({ maxAgeMs: 30 * DAY, maxIdleMs: 2 * DAY, holdLabels: ["legal-hold"] }));
    for (const gone of [old, idle]) await expect(ctx.sessions.get(byId(gone.id), false)).rejects.toBeInstanceOf(NotFoundError);
    for (const kept of [held, fresh]) expect((await ctx.sessions.get(byId(kept.id), false)).id).toBe(kept.id);
    expect((await ctx.sessions.get(byId(other.id), false)).id).toBe(other.id);
    const listed = await ctx.sessions.list({ namespace: ns, filter: {}, showDeleted: false, ascending: true, pageSize: 10, pageToken: "" });
    expect(listed.sessions.map((s) => s.sessionId).sort()).toEqual(["fresh", "held"]);
    // Other calls on the session find it gone too.
    await expect(ctx.services.conversations.participants(byId(old.id))).rejects.toBeInstanceOf(NotFoundError);
    // Without the policy they are back (nothing was deleted yet).
    await ctx.services.retention.set(ns, policy({}));
    expect((await ctx.sessions.get(byId(old.id), false)).id).toBe(old.id);
  });
});

describe("the sweeper", () => {
  it("deletes expired sessions with everything under them as a RETENTION_SWEEP operation, keeps held and active ones, and the audit log records it", async () => {
    const ns = "ret-sweep";
    const expired = await seedSessions(ctx.db.dataSource, 30, ns);
    const held = await seedSessions(ctx.db.dataSource, 3, ns, { prefix: "held-", labels: { "legal-hold": "yes" } });
    const active = await seedSessions(ctx.db.dataSource, 4, ns, { prefix: "active-" });
    await seedContents(ctx.db.dataSource, [...expired, ...held, ...active], SHAPE);
    await age([...expired, ...held], 10);
    await age(active, 10, 0);
    const namespaceId = await namespaceIdOf(ctx.db.dataSource, ns);
    // A sessionless trace past its TTL, and one within it.
    await ctx.db.sql(
      `INSERT INTO traces (namespace_id, otel_trace_id, session_id, create_time) VALUES ($1, repeat('a', 32), NULL, now() - interval '3 days'), ($1, repeat('b', 32), NULL, now())`,
      [namespaceId],
    );
    await ctx.services.retention.set(ns, policy({ maxIdleMs: 7 * DAY, holdLabels: ["legal-hold"], purgeMemories: true, sessionlessTraceTtlMs: 2 * DAY }));

    const pass = await ctx.services.sweeper.pass();
    expect(pass.offered).toBeGreaterThanOrEqual(1);
    expect(pass.lagMs).toBeGreaterThan(2 * DAY);
    await waitForSweep(ns);
    const { operations } = await ctx.services.operations.list({ namespace: ns, kind: "retention_sweep", pageSize: 10, pageToken: "" });
    expect(operations).toHaveLength(1);
    expect(operations[0]).toMatchObject({ state: "succeeded", actor: "system:retention", progress: { counters: { deleted: 30 }, memories: 30 }, result: { traces: 1 } });

    expect(await countContents(ctx.db.dataSource, expired)).toMatchObject({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
    expect(await countContents(ctx.db.dataSource, [...held, ...active])).toMatchObject({ sessions: 7, participants: 7, turns: 14 });
    const [{ n: purged }] = await ctx.db.sql("SELECT count(*)::int AS n FROM memories WHERE namespace_id = $1", [namespaceId]);
    expect(purged).toBe(7);
    expect((await ctx.db.sql("SELECT otel_trace_id FROM traces WHERE namespace_id = $1 AND session_id IS NULL", [namespaceId])).map((r: any) => r.otel_trace_id)).toEqual(["b".repeat(32)]);

    await ctx.services.audit.flush();
    const { events } = await ctx.services.audit.list({ namespace: ns, actor: "system:retention", pageSize: 10, pageToken: "" });
    expect(events).toEqual([expect.objectContaining({ method: "sessiond.v1.OperationService/RetentionSweep", itemCount: 31, code: "ok", requestId: operations[0].id })]);

    // Nothing left to sweep: the next pass offers nothing, and reports no lag.
    const again = await ctx.services.sweeper.pass();
    expect(again).toMatchObject({ lagMs: 0 });
    const after = await ctx.services.operations.list({ namespace: ns, kind: "retention_sweep", pageSize: 10, pageToken: "" });
    expect(after.operations).toHaveLength(1);
  });

  it("keeps a session that became active after it was read: each session is checked again under its row lock", async () => {
    const ns = "ret-recheck";
    const [a, b] = await seedSessions(ctx.db.dataSource, 2, ns);
    await age([a, b], 10);
    const namespaceId = await namespaceIdOf(ctx.db.dataSource, ns);
    const c = { idleBefore: new Date(Date.now() - 7 * DAY), holdLabels: [] };
    const { stores } = createServicesOn(ctx.db.dataSource);
    const plan = { selector: { kind: "filter", filter: {}, includeDeleted: true }, dryRun: false, purgeMemories: false, batchSize: 500 };
    const op = await stores.operations.insertSweep({ namespaceId, namespace: ns, kind: "retention_sweep", request: plan, cursor: { offset: 0 }, progress: {}, detach: true, actor: "system:retention" });
    // The page was read with both; then b got a turn (its last activity moved) before the batch ran.
    const page = await stores.sweeps.expiredPage(namespaceId, c, undefined, 10);
    expect(page.uuids.sort()).toEqual([a, b].sort());
    await ctx.db.sql("UPDATE sessions SET last_activity_time = now() WHERE id = $1", [b]);
    const claimed = await stores.operations.claim("test-process", 60_000, op!.uuid);
    expect(claimed?.kind).toBe("retention_sweep");
    let recorded: string[] = [];
    await stores.operations.commitBatch({ uuid: claimed!.uuid, owner: claimed!.leaseOwner! }, 60_000, 1, { namespaceId, keys: { kind: "uuid", values: page.uuids }, opts: { dryRun: false, purgeMemories: false }, recheck: c }, (found) => {
      recorded = found.map((f) => f.uuid);
      return { batch: {}, cursor: { offset: 2 }, progress: {} };
    });
    expect(recorded).toEqual([a]);
    expect((await ctx.db.sql("SELECT id FROM sessions WHERE id = ANY($1)", [[a, b]])).map((r: any) => r.id)).toEqual([b]);
    await stores.operations.end({ uuid: claimed!.uuid, owner: claimed!.leaseOwner! }, "succeeded", "", { traces: 0 });
  });

  it("offers one sweep per namespace at a time, whichever process asks", async () => {
    const ns = "ret-once";
    const uuids = await seedSessions(ctx.db.dataSource, 2, ns);
    await age(uuids, 10);
    const namespaceId = await namespaceIdOf(ctx.db.dataSource, ns);
    const { stores } = createServicesOn(ctx.db.dataSource);
    const plan = { selector: { kind: "filter", filter: {}, includeDeleted: true }, dryRun: false, purgeMemories: false, batchSize: 500 };
    const first = await stores.operations.insertSweep({ namespaceId, namespace: ns, kind: "retention_sweep", request: plan, cursor: { offset: 0 }, progress: {}, detach: true, actor: "system:retention" });
    const second = await stores.operations.insertSweep({ namespaceId, namespace: ns, kind: "retention_sweep", request: plan, cursor: { offset: 0 }, progress: {}, detach: true, actor: "system:retention" });
    expect(first).toBeDefined();
    expect(second).toBeUndefined();
    expect(await ctx.services.operations.offerSweep(namespaceId, ns)).toBe(false);
    await stores.operations.requestCancel(first!.uuid);
    expect(await stores.operations.insertSweep({ namespaceId, namespace: ns, kind: "retention_sweep", request: plan, cursor: { offset: 0 }, progress: {}, detach: true, actor: "system:retention" })).toBeDefined();
  });

  it("follows the default policy in namespaces without their own, and prunes ended client-request windows", async () => {
    const { services } = createServicesOn(ctx.db.dataSource, { retentionDefault: policy({ maxAgeMs: 5 * DAY }) });
    const ns = "ret-default";
    const [old] = await seedSessions(ctx.db.dataSource, 1, ns);
    await age([old], 6);
    const namespaceId = await namespaceIdOf(ctx.db.dataSource, ns);
    await expect(services.sessions.get(byId(encodeSessionId(namespaceId, old)), false)).rejects.toBeInstanceOf(NotFoundError);
    await ctx.db.sql("INSERT INTO client_requests (namespace_id, session_id, at) SELECT namespace_id, id, now() - interval '10 minutes' FROM sessions WHERE id = $1", [old]);
    // An operation that ended 8 days ago goes, with its batches; one that ended 6 days ago stays.
    const ended = await ctx.db.sql(
      `INSERT INTO operations (namespace_id, namespace, kind, state, request, cursor, progress, detach, actor, end_time)
       VALUES ($1, $2, 'bulk_delete_sessions', 'succeeded', '{}', '{}', '{}', false, 'test', now() - interval '8 days'),
              ($1, $2, 'bulk_delete_sessions', 'succeeded', '{}', '{}', '{}', false, 'test', now() - interval '6 days') RETURNING id`,
      [namespaceId, ns],
    );
    await ctx.db.sql("INSERT INTO operation_batches (operation_id, number, progress) VALUES ($1, 1, '{}')", [ended[0].id]);
    const pass = await services.sweeper.pass();
    expect(pass.clientRequests).toBeGreaterThanOrEqual(1);
    expect(services.sweeper.stats().operations).toBeGreaterThanOrEqual(1);
    expect((await ctx.db.sql("SELECT id FROM operations WHERE id = ANY($1)", [ended.map((r: any) => r.id)])).map((r: any) => r.id)).toEqual([ended[1].id]);
    expect(await ctx.db.sql("SELECT 1 FROM operation_batches WHERE operation_id = $1", [ended[0].id])).toEqual([]);
    expect(pass.offered).toBeGreaterThanOrEqual(1);
    for (const end = Date.now() + 20_000; (await ctx.db.sql("SELECT 1 FROM sessions WHERE id = $1", [old])).length && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    expect(await ctx.db.sql("SELECT 1 FROM sessions WHERE id = $1", [old])).toEqual([]);
    await services.operations.stop();
  });
});
