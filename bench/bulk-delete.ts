/**
 * bench:bulk-delete — 10,000 sessions, each with 2 participants, 10 turns, 5 traces of 10 spans and one
 * annotation per trace (500,000 spans), deleted with BulkDeleteSessions over gRPC/HTTP2 by a client that
 * consumes every message; the same data re-seeded and deleted by the raw-SQL baseline (`DELETE FROM
 * sessions WHERE namespace_id = $2 AND id = ANY($1)` through pg, same batch size, no stream, no
 * counting). BENCH_CITUS_URL runs it on a Citus cluster (bench/harness.ts). Also 500 sessions
 * deleted the way a typical TypeORM user would (load the graph, `repository.remove` with ORM cascades).
 * Then (BENCH_MEMORY=0 skips it) 100,000 ids in one call, sampling the process RSS.
 * Also DeleteSession in a loop (BENCH_DELETE_ONE sessions of the same shape, one call after the other)
 * against the same number of sessions in one BulkDeleteSessions call: `delete_one_ratio` is the loop's
 * time over the call's, `delete_one_ms` the median DeleteSession, `get_one_ms` the median GetSession of the
 * same sessions (the floor of any call on one session).
 * Targets: ratio >= 0.8, first message within 100 ms, RSS growth < 50 MB.
 */
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { DataSource, In } from "typeorm";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { encodeSessionId } from "../src/domain/ids.js";
import { namespaceIdOf, seedContents, seedSessions } from "../test/setup/seed.js";
import { benchApp, benchDatabase, grpcTransport, median, timeMs } from "./harness.js";
import { NaiveSession, naiveEntities } from "./naive-entities.js";
import { rssOf, startServerProcess } from "./process.js";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const DELETE_ONE = Number(process.env.BENCH_DELETE_ONE ?? 500);
const SHAPE = { participants: 2, turnsPerParticipant: 5, traces: 5, spansPerTrace: 10, annotationsPerTrace: 1 };

const db = await benchDatabase();
const app = await benchApp(db.url);
const client = createClient(SessionService, grpcTransport(app.url));

async function seed(n: number, ns: string): Promise<string[]> {
  const uuids: string[] = [];
  for (let i = 0; i < n; i += 2000) {
    const part = await seedSessions(app.dataSource, Math.min(2000, n - i), ns, { prefix: `${ns}-${i}-` });
    await seedContents(app.dataSource, part, SHAPE);
    uuids.push(...part);
  }
  await app.dataSource.query("VACUUM ANALYZE");
  return uuids;
}

// Service: the stream, consumed message by message (after one small call has opened the connection).
let uuids = await seed(SESSIONS, "svc");
const svcNamespace = await namespaceIdOf(app.dataSource, "svc");
const svcId = (u: string) => encodeSessionId(svcNamespace, u);
for await (const _ of client.bulkDeleteSessions({ namespace: "svc", selector: { case: "ids", value: { values: [svcId(uuids[0])] } }, dryRun: true }));
const t0 = performance.now();
let firstMs = 0;
let deleted = 0n;
for await (const m of client.bulkDeleteSessions({ namespace: "svc", selector: { case: "ids", value: { values: uuids.map(svcId) } }, batchSize: BATCH })) {
  if (!firstMs) firstMs = performance.now() - t0;
  if (m.event.case === "summary") deleted = m.event.value.counters!.deleted;
}
const serviceS = (performance.now() - t0) / 1000;
if (deleted !== BigInt(SESSIONS)) throw new Error(`service deleted ${deleted} of ${SESSIONS}`);
console.log(`service: ${SESSIONS} sessions in ${serviceS.toFixed(2)} s, first message after ${firstMs.toFixed(1)} ms`);

// Baseline: raw SQL, same batches.
uuids = await seed(SESSIONS, "raw");
const rawNamespace = await namespaceIdOf(app.dataSource, "raw");
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
const t1 = performance.now();
// Naming the namespace, as sessiond does: on Citus that sends each batch to one shard.
for (let i = 0; i < uuids.length; i += BATCH) await pool.query("DELETE FROM sessions WHERE namespace_id = $2 AND id = ANY($1)", [uuids.slice(i, i + BATCH), rawNamespace]);
const baselineS = (performance.now() - t1) / 1000;
console.log(`raw SQL baseline: ${SESSIONS} sessions in ${baselineS.toFixed(2)} s`);

// DeleteSession in a loop, then the same number of sessions (same shape) in one BulkDeleteSessions call.
uuids = await seed(DELETE_ONE, "one");
const oneNamespace = await namespaceIdOf(app.dataSource, "one");
// The floor of a call on one session: GetSession of each, first.
const getMs: number[] = [];
for (const u of uuids) getMs.push(await timeMs(() => client.getSession({ id: encodeSessionId(oneNamespace, u) })));
const oneMs: number[] = [];
const t3 = performance.now();
for (const u of uuids) oneMs.push(await timeMs(() => client.deleteSession({ id: encodeSessionId(oneNamespace, u) })));
const loopS = (performance.now() - t3) / 1000;
uuids = await seed(DELETE_ONE, "onebulk");
const oneBulkNamespace = await namespaceIdOf(app.dataSource, "onebulk");
const t4 = performance.now();
for await (const _ of client.bulkDeleteSessions({ namespace: "onebulk", selector: { case: "ids", value: { values: uuids.map((u) => encodeSessionId(oneBulkNamespace, u)) } }, batchSize: BATCH }));
const oneBulkS = (performance.now() - t4) / 1000;
console.log(
  `DeleteSession in a loop: ${DELETE_ONE} sessions in ${loopS.toFixed(2)} s (median ${median(oneMs).toFixed(2)} ms per call; GetSession ${median(getMs).toFixed(2)} ms); one BulkDeleteSessions call: ${oneBulkS.toFixed(2)} s (${((oneBulkS * 1000) / DELETE_ONE).toFixed(2)} ms per session)`,
);

// Naive TypeORM: load the graph, remove with ORM cascades. Not on Citus: its entities join on ids alone,
// which Citus refuses (a join of distributed tables must include the distribution column).
let naiveMsPerSession = NaN;
if (!process.env.BENCH_CITUS_URL) {
  const NAIVE = 500;
  uuids = await seed(NAIVE, "naive");
  const naiveDs = new DataSource({ type: "postgres", url: db.url, entities: naiveEntities, synchronize: false });
  await naiveDs.initialize();
  const repo = naiveDs.getRepository(NaiveSession);
  const t2 = performance.now();
  for (let i = 0; i < uuids.length; i += 50) {
    const graph = await repo.find({ where: { id: In(uuids.slice(i, i + 50)) }, relations: { participants: { turns: true }, traces: { spans: true, annotations: true } } });
    await repo.remove(graph);
  }
  naiveMsPerSession = (performance.now() - t2) / NAIVE;
  await naiveDs.destroy();
  console.log(`naive TypeORM remove(): ${NAIVE} sessions, ${naiveMsPerSession.toFixed(2)} ms per session`);
}

// Memory: 100,000 ids in one call to a separate sessiond process, whose RSS is sampled from /proc.
let rssGrowthMb = NaN;
if (process.env.BENCH_MEMORY !== "0") {
  const many = await seedSessions(app.dataSource, 100_000, "mem");
  const memNamespace = await namespaceIdOf(app.dataSource, "mem");
  const ids = many.map((u) => encodeSessionId(memNamespace, u));
  const server = await startServerProcess(db.url);
  const memClient = createClient(SessionService, grpcTransport(server.url));
  // Warm up the process (code paths, pools) before taking the baseline.
  for await (const _ of memClient.bulkDeleteSessions({ namespace: "mem", selector: { case: "ids", value: { values: ids.slice(0, 1000) } }, dryRun: true }));
  const base = rssOf(server.pid);
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(server.pid))), 20);
  let n = 0n;
  for await (const m of memClient.bulkDeleteSessions({ namespace: "mem", selector: { case: "ids", value: { values: ids } }, batchSize: BATCH })) {
    if (m.event.case === "summary") n = m.event.value.counters!.deleted;
  }
  clearInterval(sampler);
  server.stop();
  rssGrowthMb = (peak - base) / 1024 / 1024;
  console.log(`100,000 ids: deleted ${n}; server RSS ${(base / 1048576).toFixed(0)} MB -> peak ${(peak / 1048576).toFixed(0)} MB (growth ${rssGrowthMb.toFixed(1)} MB)`);
}

await pool.end();
await app.stop();
await db.close();
console.log(
  `RESULT bulk-delete ratio=${(baselineS / serviceS).toFixed(3)} service_s=${serviceS.toFixed(2)} baseline_s=${baselineS.toFixed(2)} first_message_ms=${firstMs.toFixed(1)} naive_ms_per_session=${naiveMsPerSession.toFixed(2)} rss_growth_mb=${rssGrowthMb.toFixed(1)} delete_one_ratio=${(loopS / oneBulkS).toFixed(2)} delete_one_ms=${median(oneMs).toFixed(2)} get_one_ms=${median(getMs).toFixed(2)}`,
);
process.exit(0);
