/**
 * A Postgres outage under load, against a real sessiond process on an embedded Postgres of its own:
 * while writers create sessions and append turns, the test stops Postgres and starts it again. Clients
 * must see only `unavailable` while it is down (never internal or unknown), readiness must go
 * NOT_SERVING and back without a restart, and every write a client got a success for must be in the
 * database afterwards.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as S } from "../../gen/grpc/health/v1/health_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { spawnServer, waitFor, type ServerProcess } from "./harness.js";

const WRITERS = 4;
const NAMESPACE = "outage";

let dir = "";
let database: EmbeddedPostgres;
let server: ServerProcess;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-outage-pg-"));
  chmodSync(dir, 0o755); // Postgres runs as its own OS user when we are root
  database = await startEmbeddedPostgres({ dataDir: path.join(dir, "data") });
  server = await spawnServer({ databaseUrl: database.url, env: { LOG_LEVEL: "info", SESSIOND_DB_POOL_SIZE: "6" } });
}, 60_000);

afterAll(async () => {
  server?.kill("SIGKILL");
  await server?.exited;
  await database?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One writer's loop: alternately creates a session and appends a turn to its own session, recording what was acknowledged. */
function writer(i: number, url: string, stop: AbortSignal) {
  const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(TEST_ADMIN_KEY)] }));
  const state = { createdIds: [] as string[], appendedRequestIds: [] as string[], errors: [] as Code[], successes: 0, done: Promise.resolve() };
  const own = `writer-${i}`;
  state.done = (async () => {
    for (let n = 0; !stop.aborted; n++) {
      try {
        if (n % 2 === 0) {
          const sessionId = `w${i}-s${n}`;
          await sessions.createSession({ namespace: NAMESPACE, sessionId });
          state.createdIds.push(sessionId);
        } else {
          const requestId = `w${i}-t${n}`;
          await sessions.appendTurns({ namespace: NAMESPACE, sessionId: own, requestId, turns: [{ participantId: "u", content: requestId }] });
          state.appendedRequestIds.push(requestId);
        }
        state.successes++;
      } catch (err) {
        state.errors.push(ConnectError.from(err).code);
        await new Promise((r) => setTimeout(r, 20)); // a client backing off before its next call
      }
    }
  })();
  return state;
}

describe("Postgres stopped and started under load", () => {
  it("answers only unavailable while down, goes NOT_SERVING and back without a restart, and loses no acknowledged write", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url, interceptors: [bearer(TEST_ADMIN_KEY)] });
    const sessions = createClient(SessionService, transport);
    for (let i = 0; i < WRITERS; i++) {
      await sessions.createSession({ namespace: NAMESPACE, sessionId: `writer-${i}` });
      await sessions.bindParticipant({ namespace: NAMESPACE, sessionId: `writer-${i}`, participantId: "u", kind: ParticipantKind.USER });
    }
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const status = async () => (await health.check({ service: "" })).status;
    const readyz = async () => (await fetch(`${server.url}/readyz`)).status;
    expect(await status()).toBe(S.SERVING);

    const stop = new AbortController();
    const writers = Array.from({ length: WRITERS }, (_, i) => writer(i, server.url, stop.signal));
    await waitFor(() => writers.every((w) => w.successes >= 5));

    // Down.
    await database.stop();
    await waitFor(async () => (await status()) === S.NOT_SERVING);
    await waitFor(async () => (await readyz()) === 503);
    await waitFor(() => writers.every((w) => w.errors.length >= 2));
    const livez = await fetch(`${server.url}/livez`);
    expect(livez.status).toBe(200);

    // Up again, same process.
    const before = writers.map((w) => w.successes);
    database = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port: database.port });
    await waitFor(async () => (await status()) === S.SERVING);
    await waitFor(async () => (await readyz()) === 200);
    await waitFor(() => writers.every((w, i) => w.successes >= before[i] + 5));
    stop.abort();
    await Promise.all(writers.map((w) => w.done));

    expect(server.child.exitCode).toBeNull(); // never restarted
    const codes = new Set(writers.flatMap((w) => w.errors));
    expect([...codes].map((c) => Code[c])).toEqual(["Unavailable"]);
    const rpcLines = server.logs().filter((l) => l.msg === "rpc");
    expect(rpcLines.filter((l) => l.level >= 50)).toEqual([]);
    expect(new Set(rpcLines.map((l) => l.code))).toEqual(new Set(["ok", "unavailable"]));

    // Every acknowledged write is there.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const created = writers.flatMap((w) => w.createdIds);
      const appended = writers.flatMap((w) => w.appendedRequestIds);
      const foundSessions = await client.query<{ external_id: string }>("SELECT external_id FROM sessions WHERE external_id = ANY($1)", [created]);
      expect(foundSessions.rows.map((r) => r.external_id).sort()).toEqual([...created].sort());
      const foundTurns = await client.query<{ request_id: string }>("SELECT request_id FROM turns WHERE request_id = ANY($1)", [appended]);
      expect(foundTurns.rows.map((r) => r.request_id).sort()).toEqual([...appended].sort());
    } finally {
      await client.end();
    }
  }, 120_000);
});
