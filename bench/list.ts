/**
 * bench:list — ListSessions over 100,000 sessions in one namespace: the first page, and a page 50,000
 * rows deep (reached by following page tokens), each timed as the median of repeated calls over gRPC.
 * Keyset pagination should make both cost the same. Target: deep_over_first <= 1.5.
 */
import { createClient } from "@connectrpc/connect";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { seedSessions } from "../test/setup/seed.js";
import { benchApp, benchDatabase, grpcTransport, median, timeMs } from "./harness.js";

const TOTAL = 100_000;
const DEPTH = 50_000;
const PAGE = 50;
const REPS = Number(process.env.BENCH_REPS ?? 41);

const db = await benchDatabase();
const app = await benchApp(db.url);
for (let i = 0; i < TOTAL; i += 10_000) await seedSessions(app.dataSource, 10_000, "bench", { prefix: `b${i}-` });
await app.dataSource.query("ANALYZE sessions");
// Noise from other namespaces, so that the namespace filter has to do its job.
await seedSessions(app.dataSource, 10_000, "other");

const client = createClient(SessionService, grpcTransport(app.url));

// Walk to 50,000 rows deep with big pages, then continue with PAGE-sized ones.
let token = "";
let seen = 0;
while (seen < DEPTH) {
  const page = await client.listSessions({ namespace: "bench", pageSize: Math.min(1000, DEPTH - seen), pageToken: token });
  seen += page.sessions.length;
  token = page.nextPageToken;
}
const deepToken = token;

const first: number[] = [];
const deep: number[] = [];
for (let i = 0; i < REPS; i++) {
  first.push(await timeMs(() => client.listSessions({ namespace: "bench", pageSize: PAGE })));
  const t = await timeMs(async () => {
    const page = await client.listSessions({ namespace: "bench", pageSize: PAGE, pageToken: deepToken });
    if (page.sessions.length !== PAGE) throw new Error("deep page came back short");
  });
  deep.push(t);
}

await app.stop();
await db.close();

const f = median(first);
const d = median(deep);
console.log(`first page: median ${f.toFixed(2)} ms over ${REPS}; page at row ${DEPTH}: median ${d.toFixed(2)} ms`);
console.log(`RESULT list deep_over_first=${(d / f).toFixed(3)} first_ms=${f.toFixed(2)} deep_ms=${d.toFixed(2)}`);
process.exit(0);
