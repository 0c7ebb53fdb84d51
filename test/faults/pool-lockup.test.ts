/**
 * Issue 12, defect 1: a storm of bulk deletes by filter (more than the pool has connections) must not
 * lock the database pool up. Against a real process with SESSIOND_DB_POOL_SIZE=10: pool size + 4
 * concurrent dry-run bulk deletes (readers, paused readers, clients that disconnect) all end, live
 * GetSession calls all succeed meanwhile without ever waiting for a pooled connection, nothing stays
 * "idle in transaction", and SIGTERM in the middle of a storm exits 0 within the grace period.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SessionService, type BulkDeleteSessionsResponse } from "../../gen/sessiond/v1/session_service_pb.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport, transports } from "../setup/server.js";
import { seedSessions } from "../setup/seed.js";
import { spawnServer, waitFor, type ServerProcess } from "./harness.js";

const POOL = 10;
const STREAMS = POOL + 4;
const NS = "storm";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
  await seedSessions(db.dataSource, 1000, NS);
  await seedSessions(db.dataSource, 1, "live", { prefix: "probe-" });
});
afterAll(async () => {
  await db?.close();
});

type Kind = "reader" | "paused" | "disconnect";
/** How a stream ended: its code ("ok" when it ended cleanly) and, for errors, the retry-after it carried. */
interface Ended {
  kind: Kind;
  code: string;
  summary: boolean;
  /** Whether the client went away mid-stream (a "disconnect" that got as far as a progress message). */
  aborted: boolean;
  /** When it went away (Date.now()), to compare with the server's log line of the call's end. */
  abortedAt?: number;
  /** The call's x-request-id, to find that line. */
  requestId: string;
  retryAfter: string | null;
}

/** Reads the pool gauge `sessiond_db_pool_connections{state}` from the process's /metrics. */
async function poolGauge(server: ServerProcess, state: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const m = new RegExp(`^sessiond_db_pool_connections\\{state="${state}"\\} (\\d+)`, "m").exec(text);
  if (!m) throw new Error(`no pool gauge "${state}" in /metrics`);
  return Number(m[1]);
}

/** Backends of the server under test left inside a transaction with nothing running. */
async function idleInTransaction(): Promise<number> {
  const [{ n }] = await db.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'", [db.name]);
  return n;
}

/** Starts one dry-run bulk delete by filter, batch size 10, that behaves as `kind`. */
let calls = 0;
function storm(client: Client<typeof SessionService>, kind: Kind, resume: Promise<void>, onMessage: (m: BulkDeleteSessionsResponse) => void): Promise<Ended> {
  const abort = new AbortController();
  const requestId = `storm-${++calls}`;
  let abortedAt: number | undefined;
  const stream = client.bulkDeleteSessions(
    { namespace: NS, selector: { case: "filter", value: { filter: {}, includeDeleted: false } }, dryRun: true, batchSize: 10 },
    { signal: abort.signal, timeoutMs: 90_000, headers: { "x-request-id": requestId } },
  );
  return (async (): Promise<Ended> => {
    let summary = false;
    try {
      for await (const m of stream as AsyncIterable<BulkDeleteSessionsResponse>) {
        onMessage(m);
        if (m.event.case === "progress") {
          if (kind === "disconnect") {
            abortedAt = Date.now();
            abort.abort();
          }
          // Stops reading (the server's writes back up) until the rest of the storm has ended.
          if (kind === "paused") await resume;
        }
        if (m.event.case === "summary") summary = true;
      }
      return { kind, code: "ok", summary, aborted: false, requestId, retryAfter: null };
    } catch (e) {
      const err = ConnectError.from(e);
      return { kind, code: Code[err.code], summary, aborted: abort.signal.aborted, abortedAt, requestId, retryAfter: err.metadata.get("retry-after") };
    }
  })();
}

/** Runs pool size + 4 concurrent bulk deletes while probing GetSession and the pool gauges until every stream ended. */
async function runStorm(server: ServerProcess) {
  const t = transports(server.url);
  const clients = [createClient(SessionService, grpcTransport(server.url)), createClient(SessionService, t["connect/http1.1"])];
  const live = createClient(SessionService, grpcTransport(server.url));
  const kinds: Kind[] = Array.from({ length: STREAMS }, (_, i) => (i % 5 === 1 ? "paused" : i % 5 === 3 ? "disconnect" : "reader"));
  let resume!: () => void;
  const resumed = new Promise<void>((r) => (resume = r));
  let progressed = 0;
  const calls = kinds.map((kind, i) => storm(clients[i % 2], kind, resumed, (m) => m.event.case === "progress" && progressed++));
  const others = Promise.all(calls.filter((_, i) => kinds[i] !== "paused"));
  others.then(() => resume());
  const all = Promise.all(calls);
  let done = false;
  all.then(() => (done = true));

  // Live traffic throughout the storm: GetSession must keep answering without waiting on the pool.
  const latencies: number[] = [];
  const waiting: number[] = [];
  const failures: string[] = [];
  while (!done && failures.length === 0) {
    const t0 = performance.now();
    try {
      const res = await live.getSession({ namespace: "live", sessionId: "probe-1" }, { timeoutMs: 10_000 });
      expect(res.session?.sessionId).toBe("probe-1");
      latencies.push(performance.now() - t0);
      waiting.push(await poolGauge(server, "waiting"));
    } catch (e) {
      failures.push(String(e));
    }
  }
  const ended = done ? await all : [];
  latencies.sort((a, b) => a - b);
  console.log(
    `GetSession during the storm: ${latencies.length} calls, p50 ${latencies[Math.floor(latencies.length / 2)]?.toFixed(1)} ms, ` +
      `max ${latencies.at(-1)?.toFixed(1)} ms; pool waiting max ${Math.max(0, ...waiting)}; streams: ${ended.map((e) => `${e.kind}:${e.code}`).join(", ")}`,
  );
  return { ended, failures, latencies, waiting, progressed };
}

describe("a storm of bulk deletes by filter (issue 12, pool lock-up)", () => {
  it("pool size + 4 streams of readers, paused readers and disconnecting clients all end, and GetSession never waits on the pool", async () => {
    const server = await spawnServer({ databaseUrl: db.url, env: { SESSIOND_DB_POOL_SIZE: String(POOL) } });
    const { ended, failures, latencies, waiting, progressed } = await runStorm(server);

    expect(failures, "every GetSession during the storm succeeds").toEqual([]);
    expect(ended, "every stream ends").toHaveLength(STREAMS);
    expect(progressed, "the storm really ran").toBeGreaterThan(0);
    expect(latencies.length, "GetSession was probed during the storm").toBeGreaterThan(0);
    // The live share of the pool is never exhausted: no GetSession ever queued for a connection.
    expect(waiting.every((n) => n === 0), `pool waiting counts: ${waiting.join(",")}`).toBe(true);
    for (const e of ended) {
      if (e.aborted) {
        expect(e.code).toBe("Canceled");
      } else if (e.code === "ok") {
        expect(e.summary).toBe(true);
      } else {
        // Beyond the process's bulk slots and queue: refused with a retry hint, never left hanging.
        expect(e.code).toBe("ResourceExhausted");
        expect(Number(e.retryAfter)).toBeGreaterThan(0);
      }
    }
    expect(ended.filter((e) => e.code === "ok").length, "some bulk deletes ran to the end").toBeGreaterThan(0);

    // Disconnected streams stopped on the server and released everything: no transaction left open, the pool all idle.
    await waitFor(async () => (await idleInTransaction()) === 0, 10_000);
    await waitFor(async () => (await poolGauge(server, "total")) === (await poolGauge(server, "idle")), 10_000);
    const canceled = () => server.logs().filter((l) => l.msg === "rpc" && l.method === "BulkDeleteSessions" && l.code === "canceled");
    await waitFor(() => canceled().length === ended.filter((e) => e.aborted).length, 10_000);
    const released = ended.filter((e) => e.aborted).map((e) => canceled().find((l) => l.request_id === e.requestId)!.time - e.abortedAt!);
    console.log(`from a client's disconnect to its stream's end on the server (ms): ${released.join(", ")}`);

    server.kill("SIGTERM");
    expect((await server.exited).code).toBe(0);
  });

  it("SIGTERM in the middle of such a storm, with live calls in flight, exits 0 within the grace period", async () => {
    const server = await spawnServer({ databaseUrl: db.url, env: { SESSIOND_DB_POOL_SIZE: String(POOL), SESSIOND_SHUTDOWN_GRACE_MS: "8000" } });
    const t = transports(server.url);
    const clients = [createClient(SessionService, grpcTransport(server.url)), createClient(SessionService, t["connect/http1.1"])];
    const live = createClient(SessionService, grpcTransport(server.url));
    let messages = 0;
    const never = new Promise<void>(() => {});
    const calls = Array.from({ length: STREAMS }, (_, i) => storm(clients[i % 2], "reader", never, () => messages++));
    // Live traffic until the process is gone, as on a real server.
    let exited = false;
    server.exited.then(() => (exited = true));
    let probes = 0;
    const probing = (async () => {
      while (!exited) {
        probes++;
        await live.getSession({ namespace: "live", sessionId: "probe-1" }, { timeoutMs: 30_000 }).catch(() => undefined);
      }
    })();
    // Mid-storm: bulk deletes are running, and a live call has gone out since.
    await waitFor(() => messages > 0, 30_000);
    const sent = probes;
    await waitFor(() => probes > sent, 30_000);
    server.kill("SIGTERM");
    const exit = await server.exited;
    expect(server.logs().some((l) => l.msg === "shutdown took too long; exiting"), "shutdown finished within the grace period").toBe(false);
    expect(exit.code).toBe(0);
    const ended = await Promise.all(calls);
    for (const e of ended) expect(["ok", "Unavailable", "ResourceExhausted"]).toContain(e.code);
    await probing;
  });
});
