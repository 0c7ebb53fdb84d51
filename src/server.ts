/**
 * The sessiond server: Connect, gRPC and gRPC-Web on one cleartext port (HTTP/1.1 and HTTP/2), with a
 * graceful shutdown. `build()` has no side effects until `listen()` is called; nothing happens on import.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, cors as corsHeaders, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { createOnePortServer } from "./net/one-port.js";
import { VERSION } from "./version.js";

/** Carried by every response: which sessiond answered. */
export const VERSION_HEADER = "sessiond-version";

/** Request headers a browser may send besides Connect's: credentials and the OTLP namespace. */
const EXTRA_ALLOWED_HEADERS = ["Authorization", "X-API-Key", "Sessiond-Namespace", "X-Request-Id"];

/**
 * CORS for browser clients (Connect-Web): for an allowed Origin, answers preflights itself (204 with
 * Connect's methods and headers plus Authorization) and marks the other responses readable by the
 * page; other origins get no CORS headers, so browsers keep them out. Returns true when it answered.
 */
function corsFor(origins: string[]) {
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean => {
    const origin = req.headers.origin;
    if (!origin || (!any && !allowed.has(origin))) return false;
    res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
    res.setHeader("Vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
      (res as ServerResponse).writeHead(204, {
        "Access-Control-Allow-Methods": corsHeaders.allowedMethods.join(", "),
        "Access-Control-Allow-Headers": [...corsHeaders.allowedHeaders, ...EXTRA_ALLOWED_HEADERS].join(", "),
        "Access-Control-Max-Age": "7200",
      });
      res.end();
      return true;
    }
    res.setHeader("Access-Control-Expose-Headers", [...corsHeaders.exposedHeaders, VERSION_HEADER, "X-Request-Id"].join(", "));
    return false;
  };
}

/** What {@link build} needs. */
export interface ServerDeps {
  config: Pick<Config, "port" | "host" | "readMaxBytes" | "maxTimeoutMs" | "shutdownGraceMs"> & Partial<Pick<Config, "corsOrigins">>;
  logger: Logger;
  /** Registers every service (see routes.ts). */
  routes: (router: ConnectRouter) => void;
  /** Applied to every call, outermost first. */
  interceptors?: Interceptor[];
  /** Runs before a request body is read (authentication); throws a ConnectError to reject. */
  requestGate?: (context: HandlerContext) => void | Promise<void>;
  /** Plain HTTP endpoints beside the RPCs, by path (e.g. OTLP/HTTP's `/v1/traces`). */
  http?: Record<string, HttpHandler>;
}

/** A plain HTTP endpoint. Errors it throws become a 500 without details. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A built server. */
export interface Server {
  /** Starts listening on config.host:config.port (port 0 picks a free port); resolves with the bound address. */
  listen(): Promise<{ port: number; url: string }>;
  /**
   * Graceful shutdown: stops accepting connections, lets in-flight unary calls finish, ends server streams
   * with `unavailable`, sends GOAWAY to HTTP/2 connections and closes idle HTTP/1.1 ones. Resolves when
   * every connection is closed or after config.shutdownGraceMs (remaining connections are then
   * destroyed), whichever comes first. Idempotent.
   */
  shutdown(): Promise<void>;
  /** Aborted when shutdown starts, with a ConnectError `unavailable` as reason; every handler's signal follows it. */
  readonly signal: AbortSignal;
}

/** The reason every handler signal is aborted with on shutdown: clients see `unavailable` and may retry. */
export const shutdownReason = () => new ConnectError("server is shutting down", Code.Unavailable);

/**
 * Builds the server. Handler contexts observe `signal`: a server stream must throw its reason (a plain
 * `return` would look like success to the client). Unary handlers that pass `context.signal` to their
 * I/O are cancelled with `unavailable` on shutdown too; the others complete and get their response.
 */
export function build(deps: ServerDeps): Server {
  const { config, logger } = deps;
  const controller = new AbortController();
  const handler = connectNodeAdapter({
    routes: deps.routes,
    grpc: true,
    grpcWeb: true,
    connect: true,
    // Per message, after decompression; larger messages fail with `resource_exhausted`.
    readMaxBytes: config.readMaxBytes,
    // A client asking for a longer deadline (grpc-timeout / connect-timeout-ms) gets `invalid_argument`.
    maxTimeoutMs: config.maxTimeoutMs,
    shutdownSignal: controller.signal,
    interceptors: deps.interceptors ?? [],
    requestGate: deps.requestGate,
    fallback: plainHttp(deps.http ?? {}, () => !controller.signal.aborted, logger),
  });
  // HTTP/2 receive windows sized for large requests (100,000 ids in one BulkDeleteSessions is ~4.6 MB):
  // with the protocol's default 64 KiB windows such an upload needs ~70 window round trips.
  const window = Math.min(Math.max(config.readMaxBytes, 1 << 20), 2 ** 31 - 1);
  const cors = corsFor(config.corsOrigins ?? []);
  const port = createOnePortServer((req, res) => {
    res.setHeader(VERSION_HEADER, VERSION);
    if (!cors(req, res)) handler(req, res);
  }, {
    http2: { settings: { initialWindowSize: window } },
    onError: (err, where) => logger.debug({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, where }, "connection error"),
  });

  port.http2.on("session", (session) => session.setLocalWindowSize(window));

  let shuttingDown: Promise<void> | undefined;
  return {
    signal: controller.signal,
    listen() {
      return new Promise((resolve, reject) => {
        port.listener.once("error", reject);
        port.listener.listen(config.port, config.host, () => {
          port.listener.off("error", reject);
          const { port: bound } = port.listener.address() as AddressInfo;
          resolve({ port: bound, url: `http://${urlHost(config.host)}:${bound}` });
        });
      });
    },
    shutdown() {
      shuttingDown ??= (async () => {
        const started = performance.now();
        const closed = port.drain();
        controller.abort(shutdownReason());
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), config.shutdownGraceMs);
        });
        const timedOut = await Promise.race([closed.then(() => false), expired]);
        clearTimeout(timer);
        const left = port.sockets.size;
        if (timedOut) {
          port.destroyAll();
          await closed;
        }
        logger.info({ duration_ms: Math.round(performance.now() - started), forced_connections: timedOut ? left : 0 }, "server closed");
      })();
      return shuttingDown;
    },
  };
}

/**
 * What is not an RPC: the `http` endpoints by path, and `GET /healthz` for load balancers that do not
 * speak gRPC (200 "ok", or 503 once shutdown started). Anything else: 404.
 */
function plainHttp(http: Record<string, HttpHandler>, serving: () => boolean, logger: Logger): NonNullable<ConnectNodeAdapterOptions["fallback"]> {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const endpoint = Object.hasOwn(http, path) ? http[path] : undefined;
    if (endpoint) {
      Promise.resolve()
        .then(() => endpoint(req as IncomingMessage, res as ServerResponse))
        .catch((err) => {
          logger.error({ err, path }, "http endpoint failed");
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
      return;
    }
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      const ok = serving();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end(ok ? "ok" : "shutting down");
      return;
    }
    res.writeHead(404);
    res.end();
  };
}

/** A host usable in a URL: the wildcard addresses become loopback, IPv6 literals get brackets. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
