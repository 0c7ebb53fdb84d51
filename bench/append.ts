/**
 * bench:append — turns/s written by AppendTurns over gRPC/HTTP2 (one shared transport) from 16 concurrent
 * writers, each on a session of its own with a user and an agent participant, 20 turns of ~200 bytes of
 * text per call, against the floor: the same 16 writers doing ONE parameterised multi-row
 * `INSERT INTO turns ... VALUES (...), ...` of 20 rows through a pg.Pool of the service's pool size,
 * numbering seq from a per-writer counter (no locking, no counters, no validation, no protobuf).
 * Rounds alternate between the two after a warm-up; medians are compared. Target: ratio >= 0.6.
 *
 * The load generator (gRPC client and baseline pg pool alike) runs in a worker thread, so the main
 * thread is the server alone, as it would be in production where clients are other machines.
 *
 * For scale, a third contender is measured too: a bare connect-node server (plain HTTP/2 port, no
 * interceptors, no validation, no locking) whose AppendTurns handler runs the baseline INSERT. It shows
 * what gRPC itself costs on this machine; RESULT reports the service against it as `vs_bare_grpc`.
 *
 * CPU: the main thread's own CPU time (process.threadCpuUsage) over each service and bare round, which
 * the worker marks (harness.ts cpuRound), divided by the round's calls: `cpu_us_per_call` and, per turn,
 * `cpu_us_per_row` (the bare server's as `bare_cpu_*`). Target (issue 16): cpu_ratio <= 1.25 and
 * vs_bare_grpc >= 0.85.
 */
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import pg from "pg";
import { ParticipantKind } from "../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { decodeSessionId } from "../src/domain/ids.js";
import { cpuRound, grpcTransport, load, loadCounted, serveForWorker } from "./harness.js";

const WRITERS = 16;
const TURNS = 20;
const POOL = 10;
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NS = "bench";

// The baseline statement: 20 rows of 8 parameters each.
const COLS = 8;
const VALUES = Array.from({ length: TURNS }, (_, r) => `(${Array.from({ length: COLS }, (_, c) => `$${r * COLS + c + 1}`).join(", ")})`).join(", ");
const INSERT = `INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata) VALUES ${VALUES}`;

/** The bare gRPC contender: AppendTurns as the baseline INSERT, sessions and speakers cached, seq counted in memory. */
function bareRoutes(pool: pg.Pool) {
  const known = new Map<string, { namespaceId: string; refs: Record<string, string>; seq: number }>();
  return (router: ConnectRouter) =>
    router.service(SessionService, {
      async appendTurns(req) {
        const uuid = decodeSessionId(req.id).uuid;
        let s = known.get(uuid);
        if (!s) {
          const { rows } = await pool.query("SELECT s.namespace_id, p.participant_id, p.id FROM participants p JOIN sessions s ON s.id = p.session_id WHERE s.id = $1", [uuid]);
          s = { namespaceId: rows[0].namespace_id, refs: Object.fromEntries(rows.map((r) => [r.participant_id, r.id])), seq: 0 };
          known.set(uuid, s);
        }
        const params: unknown[] = [];
        const first = s.seq + 1;
        for (const t of req.turns) params.push(s.namespaceId, uuid, s.refs[t.participantId], ++s.seq, t.participantId === "user" ? "user" : "assistant", t.content, "[]", "{}");
        await pool.query(INSERT, params);
        return { turns: req.turns.map((_, k) => ({ seq: BigInt(first + k) })) };
      },
    });
}

if (isMainThread) {
  const { service: s, baseline: b, bare: g, cpuUsPerCall: cpu, bareCpuUsPerCall: bareCpu } = await serveForWorker(new URL(import.meta.url), POOL, bareRoutes);
  console.log(
    `RESULT append ratio=${(s / b).toFixed(3)} service_tps=${s.toFixed(0)} baseline_tps=${b.toFixed(0)} bare_grpc_tps=${g.toFixed(0)} vs_bare_grpc=${(s / g).toFixed(3)}` +
      ` cpu_us_per_call=${cpu.toFixed(0)} bare_cpu_us_per_call=${bareCpu.toFixed(0)} cpu_us_per_row=${(cpu / TURNS).toFixed(1)} bare_cpu_us_per_row=${(bareCpu / TURNS).toFixed(1)} cpu_ratio=${(cpu / bareCpu).toFixed(3)}`,
  );
  process.exit(0);
}

// The load generator.
const { url, bareUrl, dbUrl } = workerData as { url: string; bareUrl: string; dbUrl: string };
const bareClient = createClient(SessionService, grpcTransport(bareUrl));
const client = createClient(SessionService, grpcTransport(url));
const pool = new pg.Pool({ connectionString: dbUrl, max: POOL });

// ~200-byte turns that read like a support conversation, varied per turn so no two rows are alike.
const USER = [
  "Hi, I was charged twice for my subscription this month and I can't find where to request a refund.",
  "I tried resetting my password from the mobile app but the email with the link never arrived.",
  "Can you tell me whether the premium plan includes priority support and how the billing cycle works?",
];
const AGENT = [
  "I'm sorry about the double charge. I can see both payments on your account; I've started a refund.",
  "Thanks for waiting. The reset emails were held by a spam filter; I've sent a fresh link just now.",
  "Yes, premium includes priority support with a four-hour response time, billed monthly from signup.",
];
const text = (i: number, user: boolean) => {
  const base = (user ? USER : AGENT)[i % 3];
  const tail = user
    ? "Please reply by email if you can, I only check this chat once a day while I'm at work."
    : "Is there anything else I can help you with today? I'll keep this ticket open until then.";
  return `${base} (ref #${100000 + ((i * 7919) % 899999)}) ${tail}`;
};
const turnsOf = (call: number) =>
  Array.from({ length: TURNS }, (_, k) => ({ participantId: k % 2 ? "agent" : "user", content: text(call * TURNS + k, k % 2 === 0) }));

/** Creates WRITERS sessions with a user and an agent through the RPCs; returns what the baseline needs. */
async function sessions(prefix: string) {
  return Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      const { session } = await client.createSession({ namespace: NS, sessionId: `${prefix}-${w}` });
      await client.bindParticipant({ id: session!.id, participantId: "user", kind: ParticipantKind.USER });
      await client.bindParticipant({ id: session!.id, participantId: "agent", kind: ParticipantKind.AGENT });
      const uuid = decodeSessionId(session!.id).uuid;
      const { rows } = await pool.query(
        `SELECT s.namespace_id, p.participant_id, p.id FROM participants p JOIN sessions s ON s.id = p.session_id WHERE p.session_id = $1`,
        [uuid],
      );
      const ref = Object.fromEntries(rows.map((r) => [r.participant_id, r.id as string]));
      return { id: session!.id, uuid, namespaceId: rows[0].namespace_id as string, user: ref.user, agent: ref.agent, seq: 0 };
    }),
  );
}
const svc = await sessions("svc");
const raw = await sessions("raw");
const bareSessions = await sessions("bare");

let serviceCalls = 0;
const serviceCall = async (i: number) => {
  const res = await client.appendTurns({ id: svc[i % WRITERS].id, turns: turnsOf(i) });
  if (res.turns.length !== TURNS) throw new Error(`AppendTurns returned ${res.turns.length} turns`);
  serviceCalls++;
};

const baselineCall = async (i: number) => {
  const s = raw[i % WRITERS];
  const params: unknown[] = [];
  turnsOf(i).forEach((t, k) => {
    const user = k % 2 === 0;
    params.push(s.namespaceId, s.uuid, user ? s.user : s.agent, ++s.seq, user ? "user" : "assistant", t.content, "[]", "{}");
  });
  await pool.query(INSERT, params);
};

// Warm up both paths (connections, JIT, plans), then alternate rounds.
await load(WRITERS, 1500, serviceCall);
await load(WRITERS, 1500, baselineCall);
const bareCall = async (i: number) => {
  const res = await bareClient.appendTurns({ id: bareSessions[i % WRITERS].id, turns: turnsOf(i) });
  if (res.turns.length !== TURNS) throw new Error(`bare AppendTurns returned ${res.turns.length} turns`);
};
await load(WRITERS, 1500, bareCall);

const service: number[] = [];
const baseline: number[] = [];
const bare: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  service.push((await cpuRound("service", () => loadCounted(WRITERS, ROUND_MS, serviceCall))) * TURNS);
  baseline.push((await load(WRITERS, ROUND_MS, baselineCall)) * TURNS);
  bare.push((await cpuRound("bare", () => loadCounted(WRITERS, ROUND_MS, bareCall))) * TURNS);
  console.log(`round ${round + 1}: service ${service.at(-1)!.toFixed(0)} turns/s, baseline ${baseline.at(-1)!.toFixed(0)} turns/s, bare gRPC ${bare.at(-1)!.toFixed(0)} turns/s`);
}

// The service really stored what it acknowledged, and kept its counters.
const [stored] = (
  await pool.query(
    `SELECT (SELECT count(*) FROM turns WHERE session_id = ANY($1))::int AS turns,
            (SELECT sum(turn_count) FROM sessions WHERE id = ANY($1))::int AS counted`,
    [svc.map((s) => s.uuid)],
  )
).rows;
if (stored.turns !== serviceCalls * TURNS || stored.counted !== serviceCalls * TURNS) {
  throw new Error(`service acknowledged ${serviceCalls * TURNS} turns but stored ${stored.turns} (counters say ${stored.counted})`);
}
console.log(`verified: ${serviceCalls} AppendTurns calls, ${stored.turns} turns stored in the service sessions`);

await pool.end();
parentPort!.postMessage({ service, baseline, bare });
