/**
 * Erasures as durable operations: one process stops (or loses its database) in the middle of an
 * erasure and another one finishes it from the last committed step, with every count exact and nothing
 * of the subject left.
 */
import type { DataSource } from "typeorm";
import { afterAll, describe, expect, it } from "vitest";
import { createServicesOn } from "../../src/app.js";
import { createDataSource } from "../../src/db/data-source.js";
import type { ErasureEvent } from "../../src/domain/erasure.js";
import type { OperationLimits } from "../../src/domain/operations.js";
import type { Services } from "../../src/domain/services.js";
import { useDatabase } from "../setup/context.js";
import { namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";

const ctx = useDatabase();
const extra: DataSource[] = [];
afterAll(async () => {
  for (const ds of extra) if (ds.isInitialized) await ds.destroy();
});

/** Another "process": its own pool and operations runner over the file's database. */
async function processOn(limits: Partial<OperationLimits>) {
  const ds = createDataSource({ url: ctx.db.url, poolSize: 2 });
  await ds.initialize();
  extra.push(ds);
  return { ...createServicesOn(ds, { operationLimits: limits }).services, ds };
}

/** Seeds `user`'s sessions, and a session of someone else where `user` speaks 20 turns; returns the namespace id and that session. */
async function seedSubject(ns: string, user: string) {
  const own = await seedSessions(ctx.db.dataSource, 6, ns, { user, prefix: `${user}-` });
  await seedContents(ctx.db.dataSource, own, { participants: 2, turnsPerParticipant: 3 });
  const [other] = await seedSessions(ctx.db.dataSource, 1, ns, { user: "amy", prefix: "amy-" });
  const nsId = await namespaceIdOf(ctx.db.dataSource, ns);
  await ctx.db.sql(
    `WITH p AS (INSERT INTO participants (namespace_id, session_id, participant_id, kind, display_name) VALUES ($1, $2, $3, 'user', 'Zed') RETURNING id)
     INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content) SELECT $1, $2, p.id, g, 'user', $3 || ' says ' || g FROM p, generate_series(1, 20) g`,
    [nsId, other, user],
  );
  return { nsId, other };
}

/** Follows an operation to its end through `watcher`; the batch numbers seen and the operation as it ended. */
async function followToEnd(watcher: Services["operations"], ns: string, id: string) {
  const numbers: number[] = [];
  let ended;
  for await (const e of watcher.watch(ns, id, 0, new AbortController().signal)) {
    if (e.type === "batch") numbers.push(e.number);
    if (e.type === "ended") ended = e.operation;
  }
  return { numbers, ended: ended! };
}

/** What is left of `user` in the namespace. */
async function leftOf(nsId: string, other: string, user: string) {
  const [left] = await ctx.db.sql(
    `SELECT (SELECT count(*) FROM sessions WHERE namespace_id = $1 AND user_id = $3)::int AS sessions,
            (SELECT count(*) FROM participants WHERE namespace_id = $1 AND participant_id = $3)::int AS participants,
            (SELECT count(*) FROM turns WHERE namespace_id = $1 AND content LIKE $3 || ' says%')::int AS turns,
            (SELECT count(*) FROM turns WHERE namespace_id = $1 AND session_id = $2 AND content = '[redacted]')::int AS redacted,
            (SELECT count(*) FROM operations WHERE namespace_id = $1 AND request ? 'private')::int AS kept`,
    [nsId, other, user],
  );
  return left;
}

describe("ForgetSubject as an operation", () => {
  it("is handed over between steps and finished by another process, each step counted once", async () => {
    const ns = "takeover";
    const { nsId, other } = await seedSubject(ns, "zed");
    const a = await processOn({ pollMs: 50 });
    const stream = a.operations.forgetSubject({ namespace: ns, subject: { kind: "user", id: "zed" }, batchSize: 2 }, new AbortController().signal);
    const started = (await stream.next()).value as Extract<ErasureEvent, { type: "started" }>;
    expect(started).toMatchObject({ type: "started", subjectKind: "user" });
    let seen = 0;
    while (seen < 3) if (((await stream.next()).value as ErasureEvent).type === "progress") seen++;
    // Process A shuts down between steps: it gives the erasure back (queued), which goes on elsewhere.
    await a.operations.stop();
    await stream.return(undefined);
    const handed = await ctx.services.operations.get(ns, started.operationId);
    expect(handed.state).toBe("queued");
    expect(handed.batches).toBeGreaterThanOrEqual(3);

    const b = await processOn({ pollMs: 50 });
    b.operations.start();
    const { numbers, ended } = await followToEnd(b.operations, ns, started.operationId);
    await b.operations.stop();
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
    // A hand-back is not a failed attempt.
    expect(ended).toMatchObject({ state: "succeeded", attempts: 1 });
    expect(ended.erasure).toMatchObject({ sessionsDeleted: 6, deleted: { participants: 12, turns: 36 }, turnsRedacted: 20, participantsRedacted: 1 });
    expect(await leftOf(nsId, other, "zed")).toEqual({ sessions: 0, participants: 0, turns: 0, redacted: 20, kept: 0 });
  });

  it("is taken over once the lease of a process that lost its database runs out, from its last committed step", async () => {
    const ns = "crash";
    const { nsId, other } = await seedSubject(ns, "yan");
    const a = await processOn({ leaseMs: 300, pollMs: 50 });
    const stream = a.operations.forgetSubject({ namespace: ns, subject: { kind: "user", id: "yan" }, batchSize: 2 }, new AbortController().signal);
    const started = (await stream.next()).value as Extract<ErasureEvent, { type: "started" }>;
    let seen = 0;
    while (seen < 2) if (((await stream.next()).value as ErasureEvent).type === "progress") seen++;
    // Process A loses its database in the middle: it can neither commit nor give the erasure back.
    await a.ds.destroy();
    await stream.return(undefined).catch(() => {});
    const b = await processOn({ leaseMs: 300, pollMs: 50 });
    b.operations.start();
    const { numbers, ended } = await followToEnd(b.operations, ns, started.operationId);
    await b.operations.stop();
    await a.operations.stop().catch(() => {});
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
    expect(ended.state).toBe("succeeded");
    expect(ended.attempts).toBeGreaterThanOrEqual(2);
    expect(ended.erasure).toMatchObject({ sessionsDeleted: 6, deleted: { participants: 12, turns: 36 }, turnsRedacted: 20, participantsRedacted: 1 });
    expect(await leftOf(nsId, other, "yan")).toEqual({ sessions: 0, participants: 0, turns: 0, redacted: 20, kept: 0 });
  });
});
