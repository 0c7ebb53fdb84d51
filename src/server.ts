/**
 * The sessiond server: Connect, gRPC and gRPC-Web on one cleartext port (HTTP/1.1 and HTTP/2), with a
 * graceful shutdown. `build()` has no side effects until `listen()` is called; nothing happens on import.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, cors as corsHeaders, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { HTTP2_RESET_DEFAULTS, type Config } from "./config.js";
import { createRpcEdge, type RefusedCall, type RpcEdgeOptions } from "./handlers/edge.js";
import type { Logger } from "./logger.js";
import { createOnePortServer } from "./net/one-port.js";
import { loadTls } from "./net/tls.js";
import { VERSION } from "./version.js";

/** The settings that name the TLS files, for error messages. */
const TLS_SETTINGS = { cert: "SESSIOND_TLS_CERT_FILE", key: "SESSIOND_TLS_KEY_FILE", clientCa: "SESSIOND_TLS_CLIENT_CA_FILE" };

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
  config: Pick<Config, "port" | "host" | "readMaxBytes" | "maxTimeoutMs" | "shutdownGraceMs"> & Partial<Pick<Config, "corsOrigins" | "tls" | "http2ResetBurst" | "http2ResetRate">>;
  logger: Logger;
  /** Registers every service (see routes.ts). */
  routes: (router: ConnectRouter) => void;
  /** Applied to every call, outermost first. */
  interceptors?: Interceptor[];
  /** Runs before a request body is read (authentication); throws a ConnectError to reject. */
  requestGate?: (context: HandlerContext) => void | Promise<void>;
  /** Plain HTTP endpoints beside the RPCs, by path (e.g. OTLP/HTTP's `/v1/traces`). */
  http?: Record<string, HttpHandler>;
  /** Readiness for `/readyz` and `/healthz` (handlers/readiness.ts); without it the server is ready while it serves. */
  readiness?: () => Promise<{ ready: boolean; reason?: string }>;
  /** Told of every call refused before the interceptors (they are logged here), e.g. to count it. */
  onRefused?: (call: RefusedCall) => void;
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
  const serving = () => !controller.signal.aborted;
  const handler = createRpcEdge({
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
    fallback: plainHttp(deps.http ?? {}, probes(serving, deps.readiness), logger),
    // The client's fault, so warn (not error); one access-log line like the interceptors' (msg "rpc").
    onRefused: (call) => {
      const { service, method, protocol, requestId, code, reason, httpStatus, durationMs } = call;
      logger.warn({ service, method, protocol, request_id: requestId, code: codeToString(code), refused: reason, http_status: httpStatus, duration_ms: Math.round(durationMs * 10) / 10 }, "rpc");
      deps.onRefused?.(call);
    },
    onCrash: (err, method) => logger.error({ err, method }, "rpc handler failed outside the call"),
  });
  // HTTP/2 receive windows sized for large requests (100,000 ids in one BulkDeleteSessions is ~4.6 MB):
  // with the protocol's default 64 KiB windows such an upload needs ~70 window round trips.
  const window = Math.min(Math.max(config.readMaxBytes, 1 << 20), 2 ** 31 - 1);
  const cors = corsFor(config.corsOrigins ?? []);
  // The certificate files are read now: a missing or unusable one fails the start, naming the setting.
  const tls = config.tls ? loadTls(config.tls, TLS_SETTINGS) : undefined;
  const port = createOnePortServer((req, res) => {
    res.setHeader(VERSION_HEADER, VERSION);
    if (!cors(req, res)) handler(req, res);
  }, {
    // Node refuses new streams (ENHANCE_YOUR_CALM) once a connection holds more than maxSessionMemory
    // (default 10 MB) of unprocessed data; with 8 MiB windows one client can reach that legitimately.
    http2: {
      settings: { initialWindowSize: window },
      maxSessionMemory: Math.ceil((2 * window) / 2 ** 20) + 10,
      // nghttp2's defence against rapid-reset floods, set to what clients that cancel calls need (config.ts).
      streamResetBurst: config.http2ResetBurst ?? HTTP2_RESET_DEFAULTS.burst,
      streamResetRate: config.http2ResetRate ?? HTTP2_RESET_DEFAULTS.rate,
    },
    onError: (err, where) => logger.debug({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, where }, "connection error"),
    tls: tls ? { options: tls.options, required: config.tls!.required } : undefined,
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
          if (tls) logger.info({ cleartext: config.tls!.required ? "refused" : "served", mutual: tls.mutual, reload_interval_ms: config.tls!.reloadIntervalMs }, "TLS on the port");
          tls?.watch(config.tls!.reloadIntervalMs, (options) => port.setSecureContext(options), {
            reloaded: (info) => logger.info({ subject: info.subject, not_after: info.notAfter }, "TLS certificate reloaded"),
            // The old certificate keeps serving; a rotation written file by file fails once, then succeeds.
            failed: (err) => logger.warn({ err: { message: err.message } }, "TLS files changed but could not be loaded; still serving the previous certificate"),
          });
          resolve({ port: bound, url: `${port.tls ? "https" : "http"}://${urlHost(config.host)}:${bound}` });
        });
      });
    },
    shutdown() {
      shuttingDown ??= (async () => {
        const started = performance.now();
        tls?.close();
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

/** The probe endpoints' answers: liveness (the process serves HTTP) and readiness (also: not shutting down, and `readiness` says ready). */
function probes(serving: () => boolean, readiness: ServerDeps["readiness"]) {
  return {
    live: async (): Promise<{ ready: boolean; reason?: string }> => ({ ready: true }),
    ready: async (): Promise<{ ready: boolean; reason?: string }> => {
      if (!serving()) return { ready: false, reason: "shutting down" };
      const result = readiness ? await readiness() : { ready: true };
      return serving() ? result : { ready: false, reason: "shutting down" };
    },
  };
}

/** Probe endpoints, by path: `/livez` is liveness; `/readyz` and `/healthz` (kept for existing load balancers) are readiness. */
const PROBES: Record<string, "live" | "ready"> = { "/livez": "live", "/readyz": "ready", "/healthz": "ready" };

/**
 * What is not an RPC: the `http` endpoints by path, and the probes for load balancers and Kubernetes
 * that do not speak gRPC: `GET`/`HEAD /livez` (200 "ok" while the process serves HTTP), `/readyz` and
 * `/healthz` (200 "ok" when ready, else 503 with the reason: database unavailable or too slow, pool
 * starved, shutting down). Anything else: 404.
 */
function plainHttp(http: Record<string, HttpHandler>, check: ReturnType<typeof probes>, logger: Logger): RpcEdgeOptions["fallback"] {
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
    const probe = Object.hasOwn(PROBES, path) ? PROBES[path] : undefined;
    if (probe && (req.method === "GET" || req.method === "HEAD")) {
      void check[probe]()
        .catch(() => ({ ready: false, reason: "readiness check failed" }))
        .then(({ ready, reason }) => {
        res.writeHead(ready ? 200 : 503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        res.end(ready ? "ok" : (reason ?? "not ready"));
      });
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
