/**
 * A real server (src/server.ts `build()`) on port 0 with health and reflection, without a database, and
 * clients for every protocol on its port. The Health implementation is the real one, plus two test-only
 * service names: "slow:<ms>" makes Check wait (ignoring the call's signal) to keep a unary call in
 * flight, and "stubborn" makes Watch ignore the signal to hold a stream open past the grace period.
 */
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Duplex, Writable } from "node:stream";
import type { DescFile } from "@bufbuild/protobuf";
import { ConnectError, type ConnectRouter, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Health, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { file_sessiond_v1_session_service, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { createHealthHandlers, HealthStatus, ServingStatus } from "../../src/handlers/health.js";
import { loggingInterceptor } from "../../src/handlers/logging.js";
import { createReflectionRoutes } from "../../src/handlers/reflection.js";
import { createLogger } from "../../src/logger.js";
import { build, type Server } from "../../src/server.js";

/** A running test server. */
export interface TestServer {
  server: Server;
  health: HealthStatus;
  port: number;
  url: string;
  /** Parsed JSON log lines. */
  logs: Record<string, unknown>[];
  /** Raw log output, to check what is never logged. */
  rawLogs: () => string;
  /** How many "slow:<ms>" Check calls have reached the handler. */
  slowCalls: () => number;
}

/** Options of {@link startServer}. */
export interface TestServerOptions {
  readMaxBytes?: number;
  maxTimeoutMs?: number;
  shutdownGraceMs?: number;
  /** Extra files for reflection to describe. */
  files?: DescFile[];
}

/** The test Health service: the real handlers, plus "slow:<ms>" (Check) and "stubborn" (Watch). */
function testHealth(health: HealthStatus, onSlow: () => void): ServiceImpl<typeof Health> {
  const real = createHealthHandlers(health);
  return {
    async check(req, ctx) {
      const slow = /^slow:(\d+)$/.exec(req.service);
      if (!slow) return real.check(req, ctx);
      onSlow();
      await sleep(Number(slow[1])); // deliberately not cancelled by ctx.signal
      return { status: ServingStatus.SERVING };
    },
    async *watch(req, ctx) {
      if (req.service !== "stubborn") return yield* real.watch(req, ctx);
      yield { status: ServingStatus.SERVING };
      await new Promise(() => {}); // never ends, whatever the signal says
    },
    list: real.list,
  };
}

/** Starts a server on 127.0.0.1:0 with the test Health service, reflection and an unimplemented SessionService. */
export async function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const health = new HealthStatus();
  let raw = "";
  let slowCalls = 0;
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      raw += chunk.toString();
      for (const line of chunk.toString().split("\n")) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger("info", sink);
  const reflection = createReflectionRoutes([file_sessiond_v1_session_service, ...(opts.files ?? [])]);
  const server = build({
    config: {
      port: 0,
      host: "127.0.0.1",
      readMaxBytes: opts.readMaxBytes ?? 4 * 1024 * 1024,
      maxTimeoutMs: opts.maxTimeoutMs ?? 60_000,
      shutdownGraceMs: opts.shutdownGraceMs ?? 3_000,
    },
    logger,
    routes: (router: ConnectRouter) => {
      router.service(Health, testHealth(health, () => slowCalls++));
      router.service(SessionService, {}); // every method `unimplemented`: only listed by reflection
      reflection(router);
    },
    interceptors: [loggingInterceptor(logger)],
  });
  const { port, url } = await server.listen();
  return { server, health, port, url, logs, rawLogs: () => raw, slowCalls: () => slowCalls };
}

/** The four client configurations that must reach the same port. */
export function transports(baseUrl: string): Record<string, Transport> {
  return {
    "connect/http1.1": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
    "grpc-web/http1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    "grpc/http2": createGrpcTransport({ baseUrl }),
    "connect/http2": createConnectTransport({ baseUrl, httpVersion: "2" }),
  };
}

/** Opens a raw TCP connection. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/**
 * What the peer sends until it closes the connection or `enough` bytes arrived; `ms` is only a safety
 * bound for a peer that does neither (generous: it must never be what ends a read on a busy machine).
 */
export function readAll(socket: net.Socket, ms = 30_000, enough = Infinity): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (Buffer.concat(chunks).length >= enough) done();
    });
    socket.on("error", () => {});
    socket.once("close", done);
  });
}

/** Resolves once the connection is closed (by either side); errors such as ECONNRESET are expected then and ignored. */
export function closed(socket: net.Socket): Promise<void> {
  socket.on("error", () => {});
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once("close", () => resolve())));
}

/** Consumes a server stream in the background, recording statuses and the final error. */
export function collect(stream: AsyncIterable<HealthCheckResponse>) {
  const out = { seen: [] as ServingStatus[], error: undefined as ConnectError | undefined, done: Promise.resolve() };
  out.done = (async () => {
    try {
      for await (const m of stream) out.seen.push(m.status);
    } catch (e) {
      out.error = ConnectError.from(e);
    }
  })();
  return out;
}

/** Polls `check` every 10 ms until it holds; throws, naming the condition (its source unless `what` is given), after `ms`. */
export async function until(check: () => boolean, ms = 30_000, what = check.toString()): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

/** An HTTP/2 client connection whose first 40 bytes go out 5 at a time, 15 ms apart. */
export function dribblingSocket(port: number): Duplex {
  const sock = net.connect(port, "127.0.0.1");
  sock.setNoDelay(true);
  let sent = 0;
  const d = new Duplex({
    read: () => void sock.resume(),
    write(chunk: Buffer, _enc, cb) {
      void (async () => {
        while (sent < 40 && chunk.length) {
          const n = Math.min(5, 40 - sent, chunk.length);
          sock.write(chunk.subarray(0, n));
          sent += n;
          chunk = chunk.subarray(n);
          await sleep(15);
        }
        if (chunk.length) sock.write(chunk, cb);
        else cb();
      })();
    },
    final: (cb) => sock.end(cb),
    destroy: (err, cb) => (sock.destroy(), cb(err)),
  });
  sock.on("data", (c) => d.push(c) || sock.pause());
  sock.on("end", () => d.push(null));
  sock.on("error", (e) => d.destroy(e));
  return d;
}
