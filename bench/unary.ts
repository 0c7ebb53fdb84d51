/**
 * bench:unary — GetSession requests/s over gRPC/HTTP2 with 32 concurrent calls against the real server,
 * and in the same run a bare connect-node server on a plain HTTP/2 port answering the same call with the
 * same SELECT through `pg` (no ORM, no port sharing, no interceptors). Rounds alternate between the two;
 * medians are compared. Target: ratio >= 0.75.
 */
import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { GetSessionResponseSchema, SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { SessionState } from "../gen/sessiond/v1/session_pb.js";
import { decodeSessionId, encodeSessionId } from "../src/domain/ids.js";
import { namespaceIdOf, seedSessions } from "../test/setup/seed.js";
import { benchApp, benchDatabase, grpcTransport, load, median } from "./harness.js";

const CONCURRENCY = 32;
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SESSIONS = 2000;

const db = await benchDatabase();
const app = await benchApp(db.url);
const uuids = await seedSessions(app.dataSource, SESSIONS, "bench");
const namespaceId = await namespaceIdOf(app.dataSource, "bench");
const ids = uuids.map((u) => encodeSessionId(namespaceId, u));

// The bare baseline: one SELECT through pg, mapped straight to the response.
const pool = new pg.Pool({ connectionString: db.url, max: 10 });
const bareRoutes = (router: ConnectRouter) =>
  router.service(SessionService, {
    async getSession(req) {
      const { uuid, namespaceId } = decodeSessionId(req.id);
      const { rows } = await pool.query(
        `SELECT s.*, n.name AS namespace_name FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.namespace_id = $1 AND s.id = $2`,
        [namespaceId, uuid],
      );
      const r = rows[0];
      return create(GetSessionResponseSchema, {
        session: {
          id: req.id, sessionId: r.external_id, namespace: r.namespace_name, user: r.user_id, data: r.data, labels: r.labels,
          state: SessionState.ACTIVE, createTime: timestampFromDate(r.create_time), updateTime: timestampFromDate(r.update_time),
          expireTime: timestampFromDate(r.expire_time), etag: `"v${r.version}"`, maxRequestsPerMinute: r.max_requests_per_minute,
          workflow: { id: r.workflow_id, version: r.workflow_version },
          stats: { participantCount: r.participant_count, turnCount: r.turn_count, traceCount: r.trace_count, spanCount: r.span_count },
        },
      });
    },
  });
const bare = http2.createServer(connectNodeAdapter({ routes: bareRoutes }));
await new Promise<void>((r) => bare.listen(0, "127.0.0.1", r));
const barePort = (bare.address() as { port: number }).port;

const serviceClient = createClient(SessionService, grpcTransport(app.url));
const bareClient = createClient(SessionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${barePort}` }));
const call = (client: typeof serviceClient) => (i: number) => client.getSession({ id: ids[i % ids.length] });

// Warm up both paths (connections, JIT, caches).
await load(CONCURRENCY, 1500, call(serviceClient));
await load(CONCURRENCY, 1500, call(bareClient));

const service: number[] = [];
const baseline: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  service.push(await load(CONCURRENCY, ROUND_MS, call(serviceClient)));
  baseline.push(await load(CONCURRENCY, ROUND_MS, call(bareClient)));
  console.log(`round ${round + 1}: service ${service.at(-1)!.toFixed(0)} rps, bare ${baseline.at(-1)!.toFixed(0)} rps`);
}

bare.close();
await pool.end();
await app.stop();
await db.close();

const s = median(service);
const b = median(baseline);
console.log(`RESULT unary ratio=${(s / b).toFixed(3)} service_rps=${s.toFixed(0)} bare_rps=${b.toFixed(0)}`);
process.exit(0);
