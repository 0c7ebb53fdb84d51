/**
 * bench:create — CreateSession driven by h2load (bench/h2load.ts: 64 calls in flight on one HTTP/2
 * connection) against sessiond and, in the same run, the bare connect-node server (bench/bare.ts) doing
 * the same INSERT through `pg`: namespace id cached, a v7 uuid, a client secret and its SHA-256, one
 * `INSERT INTO sessions ... RETURNING` joined to the namespace's name, the row mapped to the response.
 * h2load sends one fixed request, so session_id is empty and each call creates a session under a
 * generated id. Rounds alternate between the two; medians of calls/s and of this thread's CPU per call.
 *
 * Second row, `CreateSession+participants`: a chat's start in one call, CreateSession binding a user and
 * an agent (`participants`); the bare server runs the same statements in one transaction (INSERT the
 * session, INSERT the two participants, UPDATE its participant_count).
 *
 * Targets (issue 16): sessiond's CPU per call <= 1.25x the bare server's, its calls/s >= 0.85x.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import pg from "pg";
import { ParticipantKind, ParticipantSchema } from "../gen/sessiond/v1/conversation_pb.js";
import { CreateSessionRequestSchema, SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { hashSecret, newSecret } from "../src/domain/access.js";
import { encodeSessionId, newUuid } from "../src/domain/ids.js";
import { bareCounts, bareTally, SESSION_COLUMNS, sessionOfRow, startBare } from "./bare.js";
import { compare, comparisonFields, metricsCounts, requireH2load, type Contender } from "./h2load.js";
import { benchApp, benchDatabase, grpcTransport } from "./harness.js";

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARM_UP_MS = 2000;
const ONLY = process.env.BENCH_CALLS?.split(",");
const NS = "bench";
const PATH = "/sessiond.v1.SessionService/CreateSession";

requireH2load();
const db = await benchDatabase();
const app = await benchApp(db.url);
const pool = new pg.Pool({ connectionString: db.url, max: 10 });

const INSERT_SESSION = `WITH s AS (
    INSERT INTO sessions (id, namespace_id, external_id, user_id, workflow_id, workflow_version, data, labels,
                          expire_time, max_requests_per_minute, client_secret_hash)
    VALUES ($11, $1, $2, $3, $4, $5, $6, $7, now() + $8 * interval '1 millisecond', $9, $10)
    RETURNING *)
  SELECT ${SESSION_COLUMNS} FROM s JOIN namespaces n ON n.id = s.namespace_id`;
const KINDS: Record<number, string> = { [ParticipantKind.USER]: "user", [ParticipantKind.AGENT]: "agent", [ParticipantKind.SYSTEM]: "system", [ParticipantKind.TOOL]: "tool" };
const KIND_OF: Record<string, ParticipantKind> = Object.fromEntries(Object.entries(KINDS).map(([k, v]) => [v, Number(k)]));

// The bare server: CreateSession as sessiond's statements, in a transaction when it binds participants.
const namespaces = new Map<string, string>();
const bareRoutes = (router: ConnectRouter) =>
  router.service(SessionService, {
    async createSession(req) {
      const name = req.namespace || "default";
      let namespaceId = namespaces.get(name);
      if (!namespaceId) {
        await pool.query("INSERT INTO namespaces (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);
        namespaceId = (await pool.query("SELECT id FROM namespaces WHERE name = $1", [name])).rows[0].id as string;
        namespaces.set(name, namespaceId);
      }
      const uuid = newUuid();
      const secret = newSecret("cs", uuid, namespaceId);
      const params = [namespaceId, req.sessionId || crypto.randomUUID(), req.user, "", "", "{}", "{}", 600_000, 10, hashSecret(secret), uuid];
      const client = req.participants.length ? await pool.connect() : undefined;
      let row;
      let bound: any[] = [];
      try {
        if (!client) row = (await pool.query(INSERT_SESSION, params)).rows[0];
        else {
          await client.query("BEGIN");
          row = (await client.query(INSERT_SESSION, params)).rows[0];
          const values: unknown[] = [namespaceId, uuid];
          const tuples = req.participants.map((p) => {
            values.push(p.participantId, KINDS[p.kind], p.displayName, JSON.stringify(p.metadata ?? {}));
            const n = values.length;
            return `($1, $2, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
          });
          bound = (await client.query(`INSERT INTO participants (namespace_id, session_id, participant_id, kind, display_name, metadata) VALUES ${tuples.join(", ")} RETURNING participant_id, kind, display_name, metadata, bound_time`, values)).rows;
          await client.query("UPDATE sessions SET participant_count = participant_count + $3 WHERE namespace_id = $1 AND id = $2", [namespaceId, uuid, bound.length]);
          await client.query("COMMIT");
          row.participant_count += bound.length;
        }
      } catch (err) {
        await client?.query("ROLLBACK");
        throw err;
      } finally {
        client?.release();
      }
      const session = sessionOfRow(row, encodeSessionId(namespaceId, uuid));
      bareTally.ok++;
      return {
        session,
        clientSecret: { value: secret, expireTime: session.expireTime },
        participants: bound.map((p) =>
          create(ParticipantSchema, { participantId: p.participant_id, kind: KIND_OF[p.kind], displayName: p.display_name, metadata: p.metadata, bindTime: timestampFromDate(p.bound_time) }),
        ),
      };
    },
  });
const bare = await startBare(bareRoutes);

const svc = createClient(SessionService, grpcTransport(app.url));
const bareClient = createClient(SessionService, grpcTransport(bare.h2Url));

const rows = [
  { name: "CreateSession", body: toBinary(CreateSessionRequestSchema, create(CreateSessionRequestSchema, { namespace: NS })) },
  {
    name: "CreateSession+participants",
    body: toBinary(CreateSessionRequestSchema, create(CreateSessionRequestSchema, { namespace: NS, participants: [{ participantId: "user", kind: ParticipantKind.USER }, { participantId: "agent", kind: ParticipantKind.AGENT }] })),
  },
];
const results: string[] = [];
for (const row of rows.filter((r) => !ONLY || ONLY.includes(r.name))) {
  const request = fromBinary(CreateSessionRequestSchema, row.body);
  const check = (client: typeof svc) => async () => {
    const res = await client.createSession(request);
    const ok = res.session?.id && res.clientSecret?.value && res.participants.length === request.participants.length && res.session.stats?.participantCount === request.participants.length;
    if (!ok) throw new Error(`check failed: ${row.name} returns the session, its secret and its participants`);
  };
  const service: Contender = { target: { baseUrl: app.url, paths: [PATH], message: row.body }, tally: metricsCounts(app.url, [PATH]), check: check(svc) };
  const baseline: Contender = { target: { baseUrl: bare.h2Url, paths: [PATH], message: row.body }, tally: bareCounts, check: check(bareClient) };
  const c = await compare(row.name, service, baseline, { rounds: ROUNDS, roundMs: ROUND_MS, warmUpMs: WARM_UP_MS });
  results.push(`RESULT create call=${row.name} protocol=grpc ${comparisonFields(c)}`);
}

bare.close();
await pool.end();
await app.stop();
await db.close();
for (const line of results) console.log(line);
process.exit(0);
