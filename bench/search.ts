/**
 * bench:search — SearchTurns over 1,000,000 turns (10,000 sessions of 100 turns, in one namespace, plus
 * 50,000 turns of noise in another), through a real server process over gRPC. Turn texts are 6 to 36
 * words drawn from a vocabulary of 3,000 with a Zipf-like distribution (word of rank r with probability
 * about 1/r: common English words, stop words among them, first, then made-up words), seeded with SQL
 * (INSERT ... SELECT over generate_series, the GIN index maintained as rows go in), counters consistent,
 * then VACUUM ANALYZE. A mix of typical queries is timed after a warm-up: a common word (in ~1 turn in
 * 3), a mid-frequency word, a rare word, two words, a phrase, a negation, a common word within a label
 * filter and within a participant filter, and the second page of a common word. Per-kind p50/p95, then
 * `RESULT search p95_ms=... p50_ms=...` over every timed call. Target: p95 <= 50 ms.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { SessionService, type SearchTurnsRequestSchema } from "../gen/sessiond/v1/session_service_pb.js";
import { benchDatabase, grpcTransport, timeMs } from "./harness.js";
import { startServerProcess } from "./process.js";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const TURNS = 100;
const VOCABULARY = 3000;
const REPS = Number(process.env.BENCH_REPS ?? 60);
const WARMUP = 5;
const NS = "bench";

/** Common words first (stop words among them, which the 'english' configuration does not index), then made-up ones. */
const COMMON = `the to and you deploy a of i error is it in that service for we payment on with timeout this be
  user request have not database are at can as connection but session your from was model agent please if
  token will retry they an do queue by all cache there would network what about latency so no build just
  release more file up out config when one log like any get test time server client job memory update`.split(/\s+/);

/** A deterministic pseudo-random source (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function vocabulary(): string[] {
  const rnd = random(19);
  const syllables = ["ka", "lo", "mi", "ter", "vex", "qua", "dor", "sil", "pra", "nu", "zen", "bri", "tor", "gal", "fen", "ru", "sha", "pel", "dri", "mon"];
  const words = new Set(COMMON);
  while (words.size < VOCABULARY) {
    const n = 2 + Math.floor(rnd() * 3);
    words.add(Array.from({ length: n }, () => syllables[Math.floor(rnd() * syllables.length)]).join(""));
  }
  return [...words];
}

function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

// BENCH_SEEDED_URL: a database a BENCH_KEEP=1 run left seeded, to time the queries again without seeding.
const seeded = process.env.BENCH_SEEDED_URL;
const db = seeded ? { url: seeded, close: async () => {} } : await benchDatabase();
const server = await startServerProcess(db.url);
/** Stops the server process and drops the database, also when the benchmark fails. */
async function cleanUp() {
  server.stop();
  await new Promise((r) => setTimeout(r, 500));
  // BENCH_KEEP=1 keeps the seeded database, to look at plans (drop it by hand afterwards).
  if (process.env.BENCH_KEEP || seeded) console.log(`kept ${db.url}`);
  else await db.close();
}
const words = vocabulary();
const pgc = new pg.Client({ connectionString: db.url });
// The clean-up drops the database under it when the benchmark fails.
pgc.on("error", () => {});


/** Seeds `sessions` sessions of TURNS turns in `namespace`; Zipf-like words: rank floor(N^u) for u uniform. */
async function seed(namespace: string, sessions: number, offset: number) {
  await pgc.query("INSERT INTO namespaces (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [namespace]);
  const chunk = 500;
  for (let from = 1; from <= sessions; from += chunk) {
    const to = Math.min(sessions, from + chunk - 1);
    const t = performance.now();
    await pgc.query("BEGIN");
    await pgc.query(
      `INSERT INTO sessions (namespace_id, external_id, user_id, labels, expire_time, max_requests_per_minute, create_time, update_time,
                             participant_count, turn_count, last_turn_seq)
       SELECT n.id, 's' || g, 'user-' || (g % 1000), jsonb_build_object('team', 't' || (g % 20), 'env', CASE WHEN g % 4 = 0 THEN 'staging' ELSE 'prod' END),
              now() + interval '1 day', 10, now() - interval '30 days' + g * interval '1 minute', now(), 2, ${TURNS}, ${TURNS}
       FROM namespaces n, generate_series($2::int, $3::int) g WHERE n.name = $1`,
      [namespace, from + offset, to + offset],
    );
    await pgc.query(
      `INSERT INTO participants (namespace_id, session_id, participant_id, kind)
       SELECT s.namespace_id, s.id, x.pid, x.kind FROM sessions s JOIN namespaces n ON n.id = s.namespace_id,
         LATERAL (VALUES (s.user_id, 'user'), ('agent', 'agent')) x(pid, kind)
       WHERE n.name = $1 AND s.external_id = ANY (SELECT 's' || g FROM generate_series($2::int, $3::int) g)`,
      [namespace, from + offset, to + offset],
    );
    await pgc.query(
      `INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content, create_time)
       SELECT s.namespace_id, s.id, p.id, q, CASE WHEN q % 2 = 1 THEN 'user' ELSE 'assistant' END,
              (SELECT string_agg(($4::text[])[floor(power($5::float8, random()))::int], ' ')
                 FROM generate_series(1, 6 + (random() * 30)::int + 0 * q)),
              s.create_time + q * interval '10 seconds'
       FROM sessions s JOIN namespaces n ON n.id = s.namespace_id
         CROSS JOIN generate_series(1, $6::int) q
         JOIN participants p ON p.namespace_id = s.namespace_id AND p.session_id = s.id AND p.participant_id = CASE WHEN q % 2 = 1 THEN s.user_id ELSE 'agent' END
       WHERE n.name = $1 AND s.external_id = ANY (SELECT 's' || g FROM generate_series($2::int, $3::int) g)`,
      [namespace, from + offset, to + offset, words, VOCABULARY, TURNS],
    );
    await pgc.query("COMMIT");
    if (from === 1 || ((to - offset) % 2000 === 0 && to !== sessions)) console.log(`${namespace}: ${to} of ${sessions} sessions seeded (${((performance.now() - t) / 1000).toFixed(1)} s for the last ${to - from + 1})`);
  }
}

/** Seeds, then times the queries; returns the RESULT line. */
async function run(): Promise<string> {
await pgc.connect();
const seedStart = performance.now();
if (!seeded) {
  await seed(NS, SESSIONS, 0);
  await seed("other", 500, 0);
  await pgc.query("VACUUM ANALYZE turns");
  await pgc.query("VACUUM ANALYZE sessions");
  await pgc.query("VACUUM ANALYZE participants");
}
const [{ n: turnCount }] = (await pgc.query("SELECT count(*)::int AS n FROM turns")).rows;
const [{ size }] = (await pgc.query("SELECT pg_size_pretty(pg_relation_size('ix_turns_search')) AS size")).rows;
console.log(`seeded ${turnCount} turns in ${((performance.now() - seedStart) / 1000).toFixed(0)} s; GIN index ix_turns_search: ${size}`);
// How often the query words occur (a word of rank r in ~1 turn in 8r/20 for r small).
for (const w of ["deploy", "timeout", "latency", words[2500]]) {
  const [{ n }] = (await pgc.query(`SELECT count(*)::int AS n FROM turns WHERE to_tsvector('english', content) @@ websearch_to_tsquery('english', $1)`, [w])).rows;
  console.log(`"${w}": in ${n} turns`);
}

const client = createClient(SessionService, grpcTransport(server.url));
type Req = Exclude<MessageInitShape<typeof SearchTurnsRequestSchema>, { $typeName: string }>;
const page2Token = (await client.searchTurns({ namespace: NS, query: "deploy" })).nextPageToken;
if (!page2Token) throw new Error("the common word has one page only");
const KINDS: Record<string, Req> = {
  "common word": { query: "deploy" },
  "mid word": { query: "latency" },
  "rare word": { query: words[2500] },
  "two words": { query: "deploy timeout" },
  phrase: { query: '"payment error"' },
  negation: { query: "timeout -database" },
  "label filter": { query: "deploy", labels: { team: "t7" } },
  "participant filter": { query: "error", participantId: "user-42" },
  "page 2": { query: "deploy", pageToken: page2Token },
};

for (let i = 0; i < WARMUP; i++) for (const req of Object.values(KINDS)) await client.searchTurns({ namespace: NS, ...req });
const times: Record<string, number[]> = Object.fromEntries(Object.keys(KINDS).map((k) => [k, []]));
const hits: Record<string, number> = {};
for (let i = 0; i < REPS; i++) {
  for (const [kind, req] of Object.entries(KINDS)) {
    times[kind].push(
      await timeMs(async () => {
        hits[kind] = (await client.searchTurns({ namespace: NS, ...req })).hits.length;
      }),
    );
  }
}
for (const [kind, t] of Object.entries(times)) {
  console.log(`${kind.padEnd(20)} p50 ${percentile(t, 0.5).toFixed(2).padStart(7)} ms  p95 ${percentile(t, 0.95).toFixed(2).padStart(7)} ms  (${hits[kind]} hits on the page)`);
}
const all = Object.values(times).flat();

await pgc.end();
return `RESULT search p95_ms=${percentile(all, 0.95).toFixed(2)} p50_ms=${percentile(all, 0.5).toFixed(2)}`;
}

let result = "";
try {
  result = await run();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
console.log(result);
process.exit();
