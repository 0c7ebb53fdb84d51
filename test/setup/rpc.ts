/**
 * Every route of the server (createRoutes) behind an in-memory router transport, with the guards the
 * server puts in front of them (src/app.ts): the request gate of createAccess, the interceptor chain of
 * createInterceptors with the audit interceptor of createAuditing, and metrics when asked for. Only the
 * HTTP edge (edge.ts, server.ts) is missing: no sockets, no protocol negotiation, and calls the gate
 * refuses carry no `x-request-id` (the edge gives them one on a real server).
 *
 * One difference from connect-es's createRouterTransport: when the client aborts a call, the server's
 * response stream is closed (`return()`), as connect-node does when the peer goes away. The router
 * transport only races the client's reads against the signal and leaves the server's generator
 * suspended at its `yield` forever, so an abandoned server stream would never end on the server: no
 * access-log line, no audit event, its bulk-delete slot never released.
 */
import { createClient, createConnectRouter, type Client, type ConnectRouter, type Interceptor, type Transport } from "@connectrpc/connect";
import { createUniversalHandlerClient, type UniversalHandler } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { TraceService as OtlpTraceService } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import type { Services } from "../../src/domain/services.js";
import { createAuditing } from "../../src/handlers/audit.js";
import { createAccess } from "../../src/handlers/auth.js";
import { HealthStatus } from "../../src/handlers/health.js";
import { createMetrics, type Metrics } from "../../src/handlers/metrics.js";
import { createLogger } from "../../src/logger.js";
import { createInterceptors, createRoutes } from "../../src/routes.js";
import { bearer } from "./auth.js";

/** What {@link rpcAs} builds. */
export interface Rpc {
  sessions: Client<typeof SessionService>;
  memories: Client<typeof MemoryService>;
  traces: Client<typeof TraceService>;
  admin: Client<typeof AdminService>;
  serverInfo: Client<typeof ServerInfoService>;
  otlp: Client<typeof OtlpTraceService>;
  health: Client<typeof Health>;
  /** The transport behind the clients, for clients of other services. */
  transport: Transport;
  /** The services behind the routes (as given: tests may pass services with parts replaced). */
  services: Services;
  /** Every log line the server side wrote (access log, refusals, internal errors), as written (JSON). */
  logs: string[];
  /** The log lines parsed. */
  logged(): Record<string, any>[];
  /** The metrics, when asked for. */
  metrics?: Metrics;
}

/** Options of {@link rpcAs}. */
export interface RpcOptions {
  /** Count calls in a metrics registry, as the server does (off by default: prom-client's default metrics cost a little). */
  metrics?: boolean;
  /** Interceptors the client runs, after the one sending the credential (e.g. to set a header). */
  interceptors?: Interceptor[];
  /** Log lines go here (default: a new array). */
  logs?: string[];
}

/**
 * Clients for every service on the port, through an in-memory transport over `services`, sending
 * `secret` as `Authorization: Bearer` ("" for no credential). Log level is debug, as test servers run.
 */
export function rpcAs(services: Services, secret: string, options: RpcOptions = {}): Rpc {
  const logs = options.logs ?? [];
  const logger = createLogger("debug", { write: (line: string) => void logs.push(line) });
  const access = createAccess({ credentials: services.credentials, logger });
  const auditing = createAuditing(services.audit);
  const metrics = options.metrics ? createMetrics() : undefined;
  const transport = inMemoryTransport(createRoutes({ services, health: new HealthStatus() }), {
    interceptors: createInterceptors(logger, { access, auditing, metrics }),
    requestGate: metrics ? metrics.gate(access.requestGate) : access.requestGate,
    clientInterceptors: [...(secret ? [bearer(secret)] : []), ...(options.interceptors ?? [])],
  });
  return {
    sessions: createClient(SessionService, transport),
    memories: createClient(MemoryService, transport),
    traces: createClient(TraceService, transport),
    admin: createClient(AdminService, transport),
    serverInfo: createClient(ServerInfoService, transport),
    otlp: createClient(OtlpTraceService, transport),
    health: createClient(Health, transport),
    transport,
    services,
    logs,
    logged: () => logs.map((line) => JSON.parse(line) as Record<string, any>),
    metrics,
  };
}

/** createRouterTransport's transport (Connect, binary, no compression, no size limits), closing abandoned server streams. */
function inMemoryTransport(
  routes: (router: ConnectRouter) => void,
  opts: { interceptors: Interceptor[]; requestGate: (context: any) => Promise<void> | void; clientInterceptors: Interceptor[] },
): Transport {
  const router = createConnectRouter({ interceptors: opts.interceptors, requestGate: opts.requestGate, connect: true });
  routes(router);
  return createTransport({
    httpClient: createUniversalHandlerClient(router.handlers.map(closingAbandonedStreams)),
    baseUrl: "https://in-memory",
    useBinaryFormat: true,
    interceptors: opts.clientInterceptors,
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    readMaxBytes: Number.MAX_SAFE_INTEGER,
    writeMaxBytes: Number.MAX_SAFE_INTEGER,
  });
}

/** `handler`, whose response body is closed when the client aborts (the peer went away). */
function closingAbandonedStreams(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]) => {
    const res = await handler(req);
    const body = res.body;
    if (!body || !(Symbol.asyncIterator in body)) return res;
    return {
      ...res,
      body: {
        [Symbol.asyncIterator]() {
          const it = body[Symbol.asyncIterator]();
          const close = () => void it.return?.().catch(() => {});
          if (req.signal.aborted) close();
          else req.signal.addEventListener("abort", close, { once: true });
          return {
            next: () => it.next(),
            return: (value?: unknown) => {
              req.signal.removeEventListener("abort", close);
              return it.return ? it.return(value as never) : Promise.resolve({ done: true as const, value: undefined as never });
            },
          };
        },
      },
    };
  };
  return Object.assign(wrapped, handler);
}
