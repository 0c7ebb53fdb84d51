/**
 * Liveness and readiness of a real sessiond (startApp) on an embedded Postgres of its own, which the
 * test stops and starts: `/livez` stays 200, `/readyz`, `/healthz` and gRPC health (Check and Watch,
 * for "" and the service names) follow the database, and come back without a restart. Also a pool made
 * to starve reads as not ready.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as S } from "../../gen/grpc/health/v1/health_pb.js";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded.js";
import { createLogger } from "../../src/logger.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport } from "../setup/server.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { collect, until } from "./harness.js";

const POOL_SIZE = 3;
let dir = "";
let pgServer: EmbeddedPostgres;
let app: App;
let url = "";
const logs: Record<string, any>[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-health-pg-"));
  chmodSync(dir, 0o755); // Postgres runs as its own OS user when we are root
  pgServer = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), ephemeral: true });
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: pgServer.url, LOG_LEVEL: "info", SESSIOND_SHUTDOWN_GRACE_MS: "2000", SESSIOND_DB_POOL_SIZE: String(POOL_SIZE), SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY });
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  app = await startApp(config, createLogger(config.logLevel, sink));
  url = app.url;
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await pgServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** GET `path`: status and body. */
async function get(p: string): Promise<[number, string]> {
  const res = await fetch(`${url}${p}`);
  return [res.status, await res.text()];
}

/** Polls GET `path` until it answers `status` (readiness results are cached for a second); returns the answer. */
async function eventually(p: string, status: number): Promise<[number, string]> {
  let answer: [number, string] = [0, ""];
  for (let tries = 0; tries < 300; tries++) {
    answer = await get(p);
    if (answer[0] === status) return answer;
    await new Promise((r) => setTimeout(r, 50));
  }
  return answer;
}

const health = () => createClient(Health, createGrpcTransport({ baseUrl: url }));
const SERVICES = ["", "sessiond.v1.SessionService", "sessiond.v1.AdminService"];

describe("liveness and readiness", () => {
  it("reports live and ready, over HTTP and gRPC health for \"\" and the service names", async () => {
    expect(await get("/livez")).toEqual([200, "ok"]);
    expect(await get("/readyz")).toEqual([200, "ok"]);
    expect(await get("/healthz")).toEqual([200, "ok"]);
    for (const service of SERVICES) expect((await health().check({ service })).status).toBe(S.SERVING);
  });

  it("goes NOT_SERVING and 503 while the database is down, stays live, and comes back without a restart", async () => {
    const abort = new AbortController();
    const watch = collect(health().watch({ service: "" }, { signal: abort.signal }));
    await until(() => watch.seen.length === 1);
    expect(watch.seen).toEqual([S.SERVING]);

    await pgServer.stop();
    await until(() => watch.seen.includes(S.NOT_SERVING), 15_000);
    const [status, reason] = await eventually("/readyz", 503);
    expect(status).toBe(503);
    expect(reason).toMatch(/database/);
    expect((await get("/healthz"))[0]).toBe(503);
    expect(await get("/livez")).toEqual([200, "ok"]);
    for (const service of SERVICES) expect((await health().check({ service })).status).toBe(S.NOT_SERVING);
    expect(logs.some((l) => l.msg === "not ready" && l.level === 40)).toBe(true);

    pgServer = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port: pgServer.port, ephemeral: true });
    await until(() => watch.seen.at(-1) === S.SERVING, 15_000);
    expect(watch.seen).toEqual([S.SERVING, S.NOT_SERVING, S.SERVING]);
    expect(await get("/readyz")).toEqual([200, "ok"]);
    for (const service of SERVICES) expect((await health().check({ service })).status).toBe(S.SERVING);
    const sessions = createClient(SessionService, grpcTransport(url));
    const created = await sessions.createSession({ namespace: "health", sessionId: "after-outage" });
    expect(created.session?.sessionId).toBe("after-outage");
    abort.abort();
    await watch.done;
  }, 60_000);

  it("reports a starved pool as not ready, and ready again once connections free up", async () => {
    const pool = (app.dataSource.driver as any).master as pg.Pool;
    const held: pg.PoolClient[] = [];
    for (let i = 0; i < POOL_SIZE; i++) held.push(await pool.connect());
    const waiter = pool.connect(); // a call queueing for a connection
    try {
      const [status, reason] = await eventually("/readyz", 503);
      expect(status).toBe(503);
      expect(reason).toMatch(/pool starved/);
      expect((await health().check({ service: "" })).status).toBe(S.NOT_SERVING);
    } finally {
      for (const c of held) c.release();
    }
    (await waiter).release();
    expect(await eventually("/readyz", 200)).toEqual([200, "ok"]);
  }, 30_000);
});
