/**
 * bench:unary — unary calls driven by h2load (bench/h2load.ts: 64 calls in flight on one HTTP/2
 * connection, a fixed request) against sessiond (one port, every interceptor, the request gate) and, in
 * the same run, a bare connect-node server (bench/bare.ts: plain ports, no interceptors) answering the
 * same calls with the same SQL through `pg`. h2load is a C program in another process, so the servers,
 * alone on this thread, get the cores a real deployment would give them, and this thread's CPU time
 * divided by the calls is each server's CPU per call. Rounds alternate between the two; medians.
 *
 * Rows (BENCH_CALLS=<call>,... runs only some): `Health/Check` over gRPC and over Connect HTTP/1.1
 * (`Health/Check:connect-h1`: 64 connections, one call each in flight), `GetSession` over gRPC (one
 * SELECT), and reading a session's last 20 turns (of 1,000) two ways: `ListTurns.newest_first` (one call,
 * newest_first and page_size 20; the bare server runs the same descending SELECT), and the way clients
 * had before it, `GetSession+ListTurns`: GetSession for turn_count, then ListTurns(after_seq =
 * turn_count - 20, page_size = 20). h2load sends both of those calls with one body (both requests'
 * fields in it: GetSession ignores after_seq and page_size), alternating; a read is two calls.
 *
 * Targets (issue 16): sessiond's CPU per call <= 1.25x the bare server's, its calls/s >= 0.85x; and the
 * historical `RESULT unary ratio=` (GetSession calls/s against the bare server) >= 0.75.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { ParticipantKind } from "../gen/sessiond/v1/conversation_pb.js";
import { GetSessionRequestSchema, ListTurnsRequestSchema, SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { decodeSessionId, encodeSessionId } from "../src/domain/ids.js";
import { bearer } from "../test/setup/auth.js";
import { namespaceIdOf, seedSessions } from "../test/setup/seed.js";
import { bareCounts, bareTally, SESSION_COLUMNS, sessionOfRow, startBare, TURN_COLUMNS, turnOfRow } from "./bare.js";
import { compare, comparisonFields, metricsCounts, requireH2load, type Contender, type H2loadTarget } from "./h2load.js";
import { BENCH_KEY, benchApp, benchDatabase, grpcTransport } from "./harness.js";

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARM_UP_MS = 2000;
const ONLY = process.env.BENCH_CALLS?.split(",");
const TURNS = 1000;
const LAST = 20;

requireH2load();
const db = await benchDatabase();
const app = await benchApp(db.url);
const [uuid] = await seedSessions(app.dataSource, 1, "bench");
const sessionId = encodeSessionId(await namespaceIdOf(app.dataSource, "bench"), uuid);

// The bare server: Health answering SERVING, GetSession as one SELECT, ListTurns as one SELECT.
const pool = new pg.Pool({ connectionString: db.url, max: 10 });
const bareRoutes = (router: ConnectRouter) => {
  router.service(Health, {
    async check() {
      bareTally.ok++;
      return { status: ServingStatus.SERVING };
    },
  });
  router.service(SessionService, {
    async getSession(req) {
      const { uuid, namespaceId } = decodeSessionId(req.id);
      const { rows } = await pool.query(`SELECT ${SESSION_COLUMNS} FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.namespace_id = $1 AND s.id = $2`, [namespaceId, uuid]);
      bareTally.ok++;
      return { session: sessionOfRow(rows[0], req.id) };
    },
    async listTurns(req) {
      const { uuid, namespaceId } = decodeSessionId(req.id);
      const { rows } = await pool.query(
        `SELECT ${TURN_COLUMNS} FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
         WHERE t.namespace_id = $1 AND t.session_id = $2 AND t.seq > $3 ORDER BY t.seq${req.newestFirst ? " DESC" : ""} LIMIT $4`,
        [namespaceId, uuid, req.afterSeq, req.pageSize + 1],
      );
      bareTally.ok++;
      const turns = rows.slice(0, req.pageSize);
      return { turns: turns.map(turnOfRow), nextPageToken: rows.length > req.pageSize ? String(turns.at(-1).seq) : "" };
    },
  });
};
const bare = await startBare(bareRoutes);

const clients = (url: string, h1Url = url) => ({
  health: createClient(Health, grpcTransport(url)),
  healthH1: createClient(Health, createConnectTransport({ baseUrl: h1Url, httpVersion: "1.1", interceptors: [bearer(BENCH_KEY)] })),
  sessions: createClient(SessionService, grpcTransport(url)),
});
const svc = clients(app.url);
const bareClients = clients(bare.h2Url, bare.h1Url);

// The LastTurns session: a user and an agent, TURNS turns appended through the API.
const { session: chat } = await svc.sessions.createSession({ namespace: "bench", sessionId: "last-turns" });
for (const [participantId, kind] of [["user", ParticipantKind.USER], ["agent", ParticipantKind.AGENT]] as const) await svc.sessions.bindParticipant({ id: chat!.id, participantId, kind });
for (let seq = 0; seq < TURNS; seq += 20) {
  const turns = Array.from({ length: 20 }, (_, k) => ({ participantId: k % 2 ? "agent" : "user", content: `turn ${seq + k + 1}: ${"a support conversation, about two hundred bytes of text a turn. ".repeat(3)}` }));
  await svc.sessions.appendTurns({ id: chat!.id, turns });
}

const expect = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`check failed: ${what}`);
};
// service = "" written out (field 1, length 0) rather than omitted: h2load cannot send an empty body file.
const healthBody = new Uint8Array([0x0a, 0x00]);
const getBody = toBinary(GetSessionRequestSchema, create(GetSessionRequestSchema, { id: sessionId }));
const lastBody = toBinary(ListTurnsRequestSchema, create(ListTurnsRequestSchema, { id: chat!.id, afterSeq: BigInt(TURNS - LAST), pageSize: LAST }));
const newestBody = toBinary(ListTurnsRequestSchema, create(ListTurnsRequestSchema, { id: chat!.id, newestFirst: true, pageSize: LAST }));
type Clients = ReturnType<typeof clients>;
const rows: { name: string; paths: string[]; body: Uint8Array; h1?: boolean; check: (c: Clients) => Promise<void> }[] = [
  {
    name: "Health/Check",
    paths: ["/grpc.health.v1.Health/Check"],
    body: healthBody,
    check: async (c) => expect((await c.health.check(fromBinary(HealthCheckRequestSchema, healthBody))).status === ServingStatus.SERVING, "Health SERVING"),
  },
  {
    name: "Health/Check:connect-h1",
    paths: ["/grpc.health.v1.Health/Check"],
    body: healthBody,
    h1: true,
    check: async (c) => expect((await c.healthH1.check(fromBinary(HealthCheckRequestSchema, healthBody))).status === ServingStatus.SERVING, "Health SERVING over HTTP/1.1"),
  },
  {
    name: "GetSession",
    paths: ["/sessiond.v1.SessionService/GetSession"],
    body: getBody,
    check: async (c) => expect((await c.sessions.getSession(fromBinary(GetSessionRequestSchema, getBody))).session?.id === sessionId, "GetSession returns the session"),
  },
  {
    name: "ListTurns.newest_first",
    paths: ["/sessiond.v1.SessionService/ListTurns"],
    body: newestBody,
    async check(c) {
      const { turns } = await c.sessions.listTurns(fromBinary(ListTurnsRequestSchema, newestBody));
      expect(turns.length === LAST && turns[0].seq === BigInt(TURNS) && turns.at(-1)!.seq === BigInt(TURNS - LAST + 1), "ListTurns newest_first returns the last turns, newest first");
    },
  },
  {
    name: "GetSession+ListTurns",
    paths: ["/sessiond.v1.SessionService/GetSession", "/sessiond.v1.SessionService/ListTurns"],
    body: lastBody,
    async check(c) {
      const { session } = await c.sessions.getSession(fromBinary(GetSessionRequestSchema, lastBody));
      expect(session?.stats?.turnCount === TURNS, "GetSession counts the turns");
      const { turns } = await c.sessions.listTurns(fromBinary(ListTurnsRequestSchema, lastBody));
      expect(turns.length === LAST && turns[0].seq === BigInt(TURNS - LAST + 1) && turns.at(-1)!.seq === BigInt(TURNS), "ListTurns returns the last turns");
    },
  },
];

let getSession: { rps: number; bareRps: number } | undefined;
const results: string[] = [];
for (const row of rows.filter((r) => !ONLY || ONLY.includes(r.name))) {
  const target = (baseUrl: string): H2loadTarget => ({ baseUrl, paths: row.paths, message: row.body, protocol: row.h1 ? "connect-h1" : "grpc" });
  const service: Contender = { target: target(app.url), tally: metricsCounts(app.url, row.paths), check: () => row.check(svc) };
  const baseline: Contender = { target: target(row.h1 ? bare.h1Url : bare.h2Url), tally: bareCounts, check: () => row.check(bareClients) };
  const c = await compare(row.name, service, baseline, { rounds: ROUNDS, roundMs: ROUND_MS, warmUpMs: WARM_UP_MS });
  const [call, protocol] = row.name.split(":");
  const perRead = row.paths.length > 1 ? ` calls_per_read=${row.paths.length} reads_per_s=${(c.rps / row.paths.length).toFixed(0)} cpu_us_per_read=${(c.cpuUsPerCall * row.paths.length).toFixed(1)} bare_cpu_us_per_read=${(c.bareCpuUsPerCall * row.paths.length).toFixed(1)}` : "";
  results.push(`RESULT unary call=${call} protocol=${protocol ?? "grpc"} ${comparisonFields(c, protocol ? "vs_bare" : "vs_bare_grpc")}${perRead}`);
  if (row.name === "GetSession") getSession = c;
}

bare.close();
await pool.end();
await app.stop();
await db.close();

for (const line of results) console.log(line);
// The historical summary: GetSession calls/s against the bare server (target >= 0.75).
if (getSession) console.log(`RESULT unary ratio=${(getSession.rps / getSession.bareRps).toFixed(3)} service_rps=${getSession.rps.toFixed(0)} bare_rps=${getSession.bareRps.toFixed(0)}`);
process.exit(0);
