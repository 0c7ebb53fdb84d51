/**
 * Defect 6 (memory after abuse): 50,000 mixed calls against a real sessiond process, then its memory
 * must be back within 50 MB of where it was after warm-up, both measured after a full GC.
 *
 * The mix, over Connect/HTTP/1.1, gRPC/HTTP/2 and gRPC-Web: good unary calls (Create/Get/List sessions,
 * AppendTurns, ListTurns), bad input (fuzzed bodies from fuzz-gen, some of them megabytes), calls the
 * client cancels, and server streams (BulkDeleteSessions, Health/Watch) read to the end or abandoned
 * after the first message. The process measures itself: started with SESSIOND_TEST_MEMORY_SIGNAL=1,
 * it runs gc() and logs memoryUsage() on SIGUSR2 (see src/main.ts).
 *
 * SOAK_CALLS sets the number of calls (default 50,000); SOAK_SEED replays a run.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { reflectedFiles } from "../../src/routes.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { genBinary, genJson, mutateBinary, mutateJson, Rng, type Hints } from "./fuzz-gen.js";
import { closeHttp1, connectUnary, envelope, grpcCall, h2Session } from "./fuzz-wire.js";
import { spawnServer, waitFor, type ServerProcess } from "./harness.js";

const SEED = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
const CALLS = Number(process.env.SOAK_CALLS ?? 50_000);
const WARMUP = Math.min(5_000, Math.floor(CALLS / 10));
const CONCURRENCY = 16;
const LIMIT_BYTES = 50 * 1024 * 1024;

const methods = reflectedFiles.flatMap((f) => f.services.flatMap((s) => s.methods)).filter((m) => m.methodKind !== "bidi_streaming");
const auth = { authorization: `Bearer ${TEST_ADMIN_KEY}` };

let db: TestDatabase;
let server: ServerProcess;
/** Sessions that bulk deletes may delete (made by CreateSession calls of the mix); good calls use `ids`. */
const disposable: string[] = [];
/** Sessions the good calls use (never deleted). */
const ids: string[] = [];
/** For the fuzzed bodies: a namespace of their own, so they never delete what good calls use. */
const hints: Hints = { namespaces: ["soak-bad"], ids: [], sessionIds: [], hugeLeft: 0, longListsLeft: 0 };

/** Memory of the server process after a full GC, as it logs it on SIGUSR2. */
async function measure(): Promise<{ rss: number; heap_used: number; heap_total: number; external: number; array_buffers: number }> {
  const seen = server.logs().filter((l) => l.msg === "memory").length;
  server.kill("SIGUSR2");
  return waitFor(() => server.logs().filter((l) => l.msg === "memory")[seen] as any, 30_000);
}

const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;

beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
  // info, not the harness's debug: the memory lines are info, and 50,000 debug lines would be noise.
  // --max-semi-space-size=4 as `npm start` runs it: without it V8's young generation grows to tens of MB
  // under load and keeps that capacity (heap_total) after a GC, which reads as RSS growth but is no leak.
  server = await spawnServer({ databaseUrl: db.url, env: { SESSIOND_TEST_MEMORY_SIGNAL: "1", LOG_LEVEL: "info", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-semi-space-size=4`.trim() } });
}, 120_000);

afterAll(async () => {
  closeHttp1();
  server?.kill("SIGKILL");
  await server?.exited;
  await db?.close();
});

interface Clients {
  sessions: Client<typeof SessionService>[];
  health: Client<typeof Health>[];
}

function clients(url: string): Clients {
  const interceptors = [bearer(TEST_ADMIN_KEY)];
  const ts = [
    createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
    createGrpcTransport({ baseUrl: url, interceptors }),
    createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
  ];
  return { sessions: ts.map((t) => createClient(SessionService, t)), health: ts.map((t) => createClient(Health, t)) };
}

/** One call of the mix; returns its kind. Failures of bad or cancelled calls are expected and ignored. */
async function oneCall(rng: Rng, c: Clients, h2: () => ReturnType<typeof h2Session>, n: number): Promise<string> {
  const sessions = rng.pick(c.sessions);
  const id = rng.pick(ids);
  const r = rng.int(100);
  const quiet = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);
  if (r < 30) {
    // Good unary calls.
    const k = rng.int(5);
    if (k === 0) {
      const { session } = await sessions.createSession({ namespace: "soak", sessionId: `n${n}`, labels: { k: "v" } });
      if (disposable.length < 5000) disposable.push(session!.id);
    } else if (k === 1) await sessions.getSession({ id });
    else if (k === 2) await quiet(sessions.appendTurns({ id, turns: [{ participantId: "u", content: "x".repeat(rng.int(2000)) }] }));
    else if (k === 3) await sessions.listTurns({ id, pageSize: 50 });
    else await sessions.listSessions({ namespace: "soak", pageSize: 20 });
    return "good";
  }
  if (r < 60) {
    // Bad input: a fuzzed body to any method, over Connect (HTTP/1.1) or gRPC (HTTP/2).
    const method = rng.pick(methods);
    hints.hugeLeft = rng.chance(0.02) ? 1 : 0;
    const path = `/${method.parent.typeName}/${method.name}`;
    const headers = { ...auth, ...(method.methodKind === "unary" ? {} : { "grpc-timeout": "200m", "connect-timeout-ms": "200" }) };
    if (method.methodKind === "unary" && rng.chance(0.5)) {
      const json = rng.chance(0.5);
      const { body } = json ? mutateJson(rng, genJson(rng, method.input, hints)) : mutateBinary(rng, genBinary(rng, method.input, hints));
      await connectUnary(server.url, path, body, json ? "json" : "proto", { headers });
    } else {
      const { body } = mutateBinary(rng, genBinary(rng, method.input, hints));
      await grpcCall(h2(), path, envelope(0, body), "proto", { headers });
    }
    return "bad";
  }
  if (r < 75) {
    // Cancelled by the client after a few milliseconds.
    const signal = AbortSignal.timeout(1 + rng.int(15));
    const k = rng.int(3);
    if (k === 0) await quiet(sessions.listSessions({ namespace: "soak", pageSize: 100 }, { signal }));
    else if (k === 1) await quiet(sessions.appendTurns({ id, turns: [{ participantId: "u", content: "cancel me" }] }, { signal }));
    else await quiet((async () => { for await (const _ of rng.pick(c.health).watch({ service: "" }, { signal })); })());
    return "cancelled";
  }
  if (r < 88) {
    // BulkDeleteSessions: a stream of results, read to the end or abandoned after the first.
    const ids = Array.from({ length: 1 + rng.int(20) }, () => (rng.chance(0.5) && disposable.length ? disposable.splice(rng.int(disposable.length), 1)[0] : `missing-${rng.int(1e6)}`));
    const abandon = rng.chance(0.5);
    await quiet((async () => {
      for await (const _ of sessions.bulkDeleteSessions({ namespace: "", selector: { case: "ids", value: { values: ids } }, dryRun: rng.chance(0.7) })) if (abandon) break;
    })());
    return abandon ? "stream-abandoned" : "stream";
  }
  // Health/Watch never ends by itself: abandoned after its first message.
  await quiet((async () => {
    for await (const _ of rng.pick(c.health).watch({ service: "" }, { timeoutMs: 5_000 })) break;
  })());
  return "watch-abandoned";
}

async function run(from: number, to: number, c: Clients, h2: () => ReturnType<typeof h2Session>, tally: Map<string, number>): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < to) {
        const n = next++;
        const rng = new Rng((SEED ^ Math.imul(n + 1, 0x9e3779b1)) >>> 0);
        let kind: string;
        try {
          kind = await oneCall(rng, c, h2, n);
        } catch (err) {
          kind = `failed: ${(err as Error).message.slice(0, 30)}`;
        }
        tally.set(kind, (tally.get(kind) ?? 0) + 1);
      }
    }),
  );
}

describe("memory after abuse", () => {
  it(`returns within 50 MB of its post-warm-up size after ${CALLS} mixed calls`, async () => {
    const started = Date.now();
    const c = clients(server.url);
    for (let i = 0; i < 20; i++) {
      const { session } = await c.sessions[0].createSession({ namespace: "soak", sessionId: `seed-${i}`, user: "u" });
      ids.push(session!.id);
    }
    let session = h2Session(server.url);
    const h2 = () => (session.closed || session.destroyed ? (session = h2Session(server.url)) : session);
    const tally = new Map<string, number>();
    const initial = await measure();
    await run(0, WARMUP, c, h2, tally);
    const before = await measure();
    const warmedUp = Date.now();
    await run(WARMUP, CALLS, c, h2, tally);
    const ended = Date.now();
    const after = await measure();
    const afterAgain = await measure();
    session.close();
    console.log(
      `soak: seed ${SEED}; ${CALLS} calls (${WARMUP} warm-up) in ${((ended - started) / 1000).toFixed(1)} s (${Math.round((CALLS - WARMUP) / ((ended - warmedUp) / 1000))} calls/s after warm-up); ` +
        `${[...tally].map(([k, v]) => `${k}=${v}`).join(" ")}\n` +
        `soak: after GC: start rss ${mb(initial.rss)} heap ${mb(initial.heap_used)}; after warm-up rss ${mb(before.rss)} heap ${mb(before.heap_used)} of ${mb(before.heap_total)} external ${mb(before.external)}; ` +
        `at the end rss ${mb(after.rss)} heap ${mb(after.heap_used)} of ${mb(after.heap_total)} external ${mb(after.external)} (again: rss ${mb(afterAgain.rss)} heap ${mb(afterAgain.heap_used)})`,
    );
    expect(server.child.exitCode).toBeNull();
    expect([...tally.keys()].filter((k) => k.startsWith("failed")), "good calls must not fail").toEqual([]);
    expect(afterAgain.rss - before.rss, `rss ${mb(before.rss)} -> ${mb(afterAgain.rss)}`).toBeLessThan(LIMIT_BYTES);
    expect(afterAgain.heap_used - before.heap_used, `heap ${mb(before.heap_used)} -> ${mb(afterAgain.heap_used)}`).toBeLessThan(LIMIT_BYTES);
  }, 600_000);
});
