/**
 * A real sessiond (the same startApp that main.ts runs) on port 0 over a per-file test database,
 * and clients for every protocol it speaks.
 */
import { Writable } from "node:stream";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, inject } from "vitest";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { bearer, TEST_ADMIN_KEY } from "./auth.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";

/**
 * Transports to the same server: Connect (HTTP/1.1 and HTTP/2), gRPC (HTTP/2), gRPC-Web (HTTP/1.1),
 * sending `secret` (the test ADMIN key unless told otherwise; "" for none).
 */
export function transports(baseUrl: string, secret = TEST_ADMIN_KEY): Record<string, Transport> {
  const interceptors = secret ? [bearer(secret)] : [];
  return {
    "connect/http1.1": createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }),
    "connect/http2": createConnectTransport({ baseUrl, httpVersion: "2", interceptors }),
    "grpc/http2": createGrpcTransport({ baseUrl, interceptors }),
    "grpc-web/http1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors }),
  };
}

/** A gRPC transport sending `secret` (the test ADMIN key unless told otherwise). */
export function grpcTransport(baseUrl: string, secret = TEST_ADMIN_KEY): Transport {
  return createGrpcTransport({ baseUrl, interceptors: secret ? [bearer(secret)] : [] });
}

/** Registers hooks that start a server over a fresh database for this file; `logs` collects its log lines. */
export function useServer(env: Record<string, string> = {}) {
  const ctx = { logs: [] as string[] } as { db: TestDatabase; app: App; url: string; logs: string[]; client(transport?: Transport): Client<typeof SessionService> };
  beforeAll(async () => {
    ctx.db = await createTestDatabase(inject("database"));
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: ctx.db.url,
      LOG_LEVEL: "debug",
      SESSIOND_SHUTDOWN_GRACE_MS: "3000",
      SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
      // Behind PgBouncer (transaction mode), watch signals take a direct connection, as operators set it.
      ...(ctx.db.directUrl !== ctx.db.url ? { SESSIOND_LISTEN_DATABASE_URL: ctx.db.directUrl } : {}),
      ...env,
    });
    const sink = new Writable({
      write(chunk, _enc, done) {
        ctx.logs.push(chunk.toString());
        if (process.env.DEBUG_SERVER_LOGS) process.stderr.write(chunk);
        done();
      },
    });
    ctx.app = await startApp(config, createLogger(config.logLevel, sink));
    ctx.url = ctx.app.url;
    ctx.client = (transport = grpcTransport(ctx.url)) => createClient(SessionService, transport);
  });
  afterAll(async () => {
    await ctx.app?.stop();
    await ctx.db?.close();
  });
  return ctx;
}
