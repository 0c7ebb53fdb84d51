/**
 * kill -9 of a server process in the middle of a bulk delete: what was committed stays committed,
 * what was not is whole, no child row outlives its session, every session's counters still equal its
 * rows; another server process takes the operation over within 15 seconds (with the default lease and
 * poll settings) and finishes it from the last committed batch; watching it there from the last batch
 * the client saw, every id is reported exactly once across both processes; and the same request sent
 * again reports them all NOT_FOUND.
 */
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { BulkDeleteOutcome, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { OperationService, OperationState } from "../../gen/sessiond/v1/operation_service_pb.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport } from "../setup/server.js";
import { namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";
import { spawnServer } from "./harness.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
});
afterAll(async () => {
  await db?.close();
});

const SHAPE = { participants: 2, turnsPerParticipant: 3, traces: 2, spansPerTrace: 4, annotationsPerTrace: 1, memories: 1 };

/** Child rows whose session (or trace) no longer exists: must always be zero (foreign keys cascade). */
async function orphans(): Promise<Record<string, number>> {
  const [row] = await db.sql(
    `SELECT (SELECT count(*) FROM participants p WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = p.session_id))::int AS participants,
            (SELECT count(*) FROM turns t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id))::int AS turns,
            (SELECT count(*) FROM traces t WHERE t.session_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id))::int AS traces,
            (SELECT count(*) FROM spans sp WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.id = sp.trace_id))::int AS spans,
            (SELECT count(*) FROM annotations a WHERE a.session_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = a.session_id))::int AS annotations`,
  );
  return row;
}

/** Sessions whose counters disagree with their rows. */
async function counterMismatches(): Promise<number> {
  const [{ n }] = await db.sql(
    `SELECT count(*)::int AS n FROM sessions s WHERE
       s.participant_count <> (SELECT count(*) FROM participants p WHERE p.session_id = s.id)
    OR s.turn_count <> (SELECT count(*) FROM turns t WHERE t.session_id = s.id)
    OR s.trace_count <> (SELECT count(*) FROM traces t WHERE t.session_id = s.id)
    OR s.span_count <> (SELECT count(*) FROM spans sp JOIN traces t ON t.namespace_id = sp.namespace_id AND t.id = sp.trace_id WHERE t.namespace_id = s.namespace_id AND t.session_id = s.id)
    OR s.annotation_count <> (SELECT count(*) FROM annotations a WHERE a.session_id = s.id)`,
  );
  return n;
}

describe("kill -9 during BulkDeleteSessions", () => {
  it("leaves no orphan and no half-deleted session; another process takes the operation over within 15 s and every id is reported exactly once", async () => {
    const ns = "kill9";
    const uuids = await seedSessions(db.dataSource, 2000, ns);
    await seedContents(db.dataSource, uuids, SHAPE);
    const namespaceId = await namespaceIdOf(db.dataSource, ns);
    const ids = uuids.map((u) => encodeSessionId(namespaceId, u));

    // Two processes on one database, with the default lease (9 s) and poll (2 s) settings.
    const [first, second] = await Promise.all([spawnServer({ databaseUrl: db.url }), spawnServer({ databaseUrl: db.url })]);
    const client = createClient(SessionService, grpcTransport(first.url));
    const reported = new Map<string, BulkDeleteOutcome>();
    let operationId = "";
    let lastBatch = 0;
    let killedAt = 0;
    const call = (async () => {
      for await (const m of client.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids } }, batchSize: 10 })) {
        if (m.event.case === "started") operationId = m.event.value.operationId;
        if (m.event.case !== "progress") continue;
        lastBatch++;
        for (const r of m.event.value.results) {
          expect(reported.has(r.identifier)).toBe(false);
          reported.set(r.identifier, r.outcome);
        }
        // Mid-stream: some batches committed, more to come.
        if (reported.size >= 50 && !killedAt) {
          first.kill("SIGKILL");
          killedAt = Date.now();
        }
      }
    })();
    const err = await call.catch((e) => e);
    expect(err, "the stream must not end cleanly when its server dies").toBeInstanceOf(Error);
    expect((await first.exited).signal).toBe("SIGKILL");
    expect(operationId).not.toBe("");
    expect(reported.size).toBeGreaterThanOrEqual(50);
    expect(reported.size).toBeLessThan(ids.length);
    // A batch is one statement: the one the process sent before it died still runs to its end (and
    // commits, whole, or not at all). What is left is read once the dead process's connections are done.
    for (const started = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
      const busy = await db.sql<{ pid: number; state: string; query: string }>("SELECT pid, state, left(query, 80) AS query FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()");
      if (!busy.length) break;
      if (Date.now() - started > 60_000) throw new Error(`the dead process's statements are still running after 60 s: ${JSON.stringify(busy)}`);
    }

    // Every id reported DELETED is gone; every remaining session is whole.
    const left = new Set((await db.sql<{ id: string }>("SELECT id FROM sessions WHERE id = ANY($1)", [uuids])).map((r) => r.id));
    for (const [identifier, outcome] of reported) {
      expect(outcome).toBe(BulkDeleteOutcome.DELETED);
      expect(left.has(uuids[ids.indexOf(identifier)])).toBe(false);
    }
    expect(await orphans()).toEqual({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
    expect(await counterMismatches()).toBe(0);
    const [whole] = await db.sql(
      `SELECT count(*)::int AS sessions, sum(participant_count)::int AS participants, sum(turn_count)::int AS turns, sum(span_count)::int AS spans
       FROM sessions WHERE id = ANY($1)`,
      [uuids],
    );
    // (Read in one statement: the other process may take the operation over and go on meanwhile.)
    expect(whole).toEqual({ sessions: whole.sessions, participants: whole.sessions * 2, turns: whole.sessions * 6, spans: whole.sessions * 8 });
    expect(whole.sessions).toBeLessThanOrEqual(left.size);
    // Memories are kept (not purged) and detached from deleted sessions, never lost.
    const [{ memories }] = await db.sql("SELECT count(*)::int AS memories FROM memories m JOIN namespaces n ON n.id = m.namespace_id WHERE n.name = $1", [ns]);
    expect(memories).toBe(uuids.length);

    // The other process takes the operation over (its lease ran out) and goes on from the last committed batch.
    const operations = createClient(OperationService, grpcTransport(second.url));
    for (;;) {
      const { operation } = await operations.getOperation({ namespace: ns, id: operationId });
      if (operation!.attempts >= 2) break;
      expect(Date.now() - killedAt, "taken over within 15 s of the kill").toBeLessThan(15_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Watching from the last batch the client saw: the batches committed meanwhile, then the rest.
    let ended: OperationState | undefined;
    for await (const m of operations.watchOperation({ namespace: ns, id: operationId, afterBatch: BigInt(lastBatch) })) {
      if (m.event.case === "batch") {
        expect(Number(m.event.value.number)).toBe(++lastBatch);
        for (const r of m.event.value.progress!.results) {
          expect(reported.has(r.identifier), `${r.identifier} reported twice`).toBe(false);
          reported.set(r.identifier, r.outcome);
        }
      }
      if (m.event.case === "ended") {
        ended = m.event.value.state;
        expect(m.event.value).toMatchObject({ attempts: 2, counters: { completed: BigInt(ids.length), deleted: BigInt(ids.length), notFound: 0n } });
      }
    }
    expect(ended).toBe(OperationState.SUCCEEDED);
    expect(reported.size).toBe(ids.length);
    for (const outcome of reported.values()) expect(outcome).toBe(BulkDeleteOutcome.DELETED);
    const [{ n }] = await db.sql("SELECT count(*)::int AS n FROM sessions WHERE id = ANY($1)", [uuids]);
    expect(n).toBe(0);
    expect(await orphans()).toEqual({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
    const [{ memories: kept }] = await db.sql("SELECT count(*)::int AS memories FROM memories m JOIN namespaces n ON n.id = m.namespace_id WHERE n.name = $1", [ns]);
    expect(kept).toBe(uuids.length);

    // The same request again: everything went, each id once, NOT_FOUND.
    const again = createClient(SessionService, grpcTransport(second.url));
    const outcomes = new Map<string, BulkDeleteOutcome>();
    for await (const m of again.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids } }, batchSize: 500 })) {
      if (m.event.case !== "progress") continue;
      for (const r of m.event.value.results) {
        expect(outcomes.has(r.identifier)).toBe(false);
        outcomes.set(r.identifier, r.outcome);
      }
    }
    expect(outcomes.size).toBe(ids.length);
    for (const outcome of outcomes.values()) expect(outcome).toBe(BulkDeleteOutcome.NOT_FOUND);
    second.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
  });
});
