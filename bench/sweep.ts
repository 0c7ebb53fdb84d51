/**
 * bench:sweep — BENCH_SESSIONS (default 100,000) sessions past their namespace's retention policy, each
 * with the bulk-delete bench's children (2 participants, 10 turns, 5 traces of 10 spans, an annotation
 * per trace), deleted by the server's own sweeper as a RETENTION_SWEEP operation; then the same data
 * re-seeded and deleted by the raw-SQL baseline (a loop of `DELETE ... WHERE id IN (SELECT the next 500
 * expired sessions)` through pg, no operation, no per-id results). Both run under the same load: GetSession
 * of live sessions of another namespace from 4 closed loops, whose p99 during the sweep is compared with
 * its p99 with no sweep.
 * BENCH_CITUS_URL runs it on a Citus cluster (bench/harness.ts).
 * Targets: ratio (baseline time / sweep time) >= 0.8, p99_during_ms <= 2 x p99_idle_ms.
 */
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { AdminService } from "../gen/sessiond/v1/admin_service_pb.js";
import { OperationKind, OperationService, OperationState } from "../gen/sessiond/v1/operation_service_pb.js";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { encodeSessionId } from "../src/domain/ids.js";
import { namespaceIdOf, seedContents, seedSessions } from "../test/setup/seed.js";
import { benchApp, benchDatabase, grpcTransport } from "./harness.js";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100_000);
const BATCH = 500;
const PROBE_MS = Number(process.env.BENCH_PROBE_MS ?? 5000);
const SHAPE = { participants: 2, turnsPerParticipant: 5, traces: 5, spansPerTrace: 10, annotationsPerTrace: 1 };

const db = await benchDatabase();
// The sweeper looks every second; the policy is set once the data is in place.
const app = await benchApp(db.url, { SESSIOND_SWEEP_INTERVAL_MS: "1000" });
const transport = grpcTransport(app.url);
const sessions = createClient(SessionService, transport);
const admin = createClient(AdminService, transport);
const operations = createClient(OperationService, transport);

/** Seeds `n` sessions with children in `ns`, 10 days old and idle. */
async function seedExpired(n: number, ns: string): Promise<void> {
  for (let i = 0; i < n; i += 2000) {
    const part = await seedSessions(app.dataSource, Math.min(2000, n - i), ns, { prefix: `${ns}-${i}-` });
    await seedContents(app.dataSource, part, SHAPE);
  }
  const namespaceId = await namespaceIdOf(app.dataSource, ns);
  await app.dataSource.query("UPDATE sessions SET create_time = now() - interval '10 days', last_activity_time = now() - interval '10 days' WHERE namespace_id = $1", [namespaceId]);
  await app.dataSource.query("VACUUM ANALYZE");
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))];

/** GetSession latencies of the probe sessions from 4 closed loops until `until()` says stop (at least PROBE_MS). */
async function probe(ids: string[], until: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; performance.now() - start < PROBE_MS || !until(); i += 4) {
        const t = performance.now();
        await sessions.getSession({ id: ids[i % ids.length] });
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

// Live sessions to read meanwhile.
const probeUuids = await seedSessions(app.dataSource, 1000, "probe");
const probeNs = await namespaceIdOf(app.dataSource, "probe");
const probeIds = probeUuids.map((u) => encodeSessionId(probeNs, u));
for (const id of probeIds.slice(0, 200)) await sessions.getSession({ id }); // warm-up

await seedExpired(SESSIONS, "sweep");
const idle = await probe(probeIds, () => true);
console.log(`GetSession with no sweep: ${idle.length} calls, p99 ${p99(idle).toFixed(2)} ms`);

// The sweep: the policy makes every session of "sweep" expired; the sweeper's next pass starts it.
await admin.setRetentionPolicy({ namespace: "sweep", policy: { maxIdle: { seconds: 86_400n } } });
let done = false;
let sweep: Awaited<ReturnType<typeof operations.listOperations>>["operations"][number] | undefined;
const watcher = (async () => {
  for (;;) {
    [sweep] = (await operations.listOperations({ namespace: "sweep", kind: OperationKind.RETENTION_SWEEP, pageSize: 1 })).operations;
    if (sweep && sweep.state !== OperationState.QUEUED && sweep.state !== OperationState.RUNNING) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  done = true;
})();
const during = await probe(probeIds, () => done);
await watcher;
if (sweep?.state !== OperationState.SUCCEEDED || sweep.counters!.deleted !== BigInt(SESSIONS)) throw new Error(`the sweep ended ${OperationState[sweep!.state]} with ${sweep!.counters?.deleted} deleted`);
const ms = (t: { seconds: bigint; nanos: number } | undefined) => Number(t!.seconds) * 1000 + t!.nanos / 1e6;
const sweepS = (ms(sweep.endTime) - ms(sweep.startTime)) / 1000;
console.log(`sweep: ${SESSIONS} sessions in ${sweepS.toFixed(2)} s (${sweep.batches} batches); GetSession meanwhile: ${during.length} calls, p99 ${p99(during).toFixed(2)} ms`);

// Baseline: raw SQL, the next 500 expired sessions at a time, under the same GetSession load.
await seedExpired(SESSIONS, "raw");
const rawNs = await namespaceIdOf(app.dataSource, "raw");
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
let rawDone = false;
const t1 = performance.now();
const rawDelete = (async () => {
  for (;;) {
    const r = await pool.query(
      `DELETE FROM sessions WHERE namespace_id = $1 AND id IN (
         SELECT id FROM sessions WHERE namespace_id = $1 AND last_activity_time < now() - interval '1 day' ORDER BY create_time, id LIMIT $2)`,
      [rawNs, BATCH],
    );
    if (!r.rowCount) break;
  }
  rawDone = true;
  return (performance.now() - t1) / 1000;
})();
const duringRaw = await probe(probeIds, () => rawDone);
const baselineS = await rawDelete;
console.log(`raw SQL baseline: ${SESSIONS} sessions in ${baselineS.toFixed(2)} s; GetSession meanwhile: p99 ${p99(duringRaw).toFixed(2)} ms`);

await pool.end();
await app.stop();
await db.close();
console.log(`RESULT sweep ratio=${(baselineS / sweepS).toFixed(3)} p99_during_ms=${p99(during).toFixed(2)} p99_idle_ms=${p99(idle).toFixed(2)} sweep_s=${sweepS.toFixed(2)} baseline_s=${baselineS.toFixed(2)} p99_during_baseline_ms=${p99(duringRaw).toFixed(2)} sessions=${SESSIONS}`);
process.exit(0);
