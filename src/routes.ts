/**
 * Every service on the port, registered on a Connect router; reused by the server and by tests
 * (createRouterTransport). Also the interceptor chain every call goes through.
 */
import type { ConnectRouter, HandlerContext, Interceptor } from "@connectrpc/connect";
import { file_grpc_health_v1_health, Health } from "../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { AdminService, file_sessiond_v1_admin_service } from "../gen/sessiond/v1/admin_service_pb.js";
import { file_sessiond_v1_memory_service, MemoryService } from "../gen/sessiond/v1/memory_service_pb.js";
import { file_sessiond_v1_operation_service, OperationService } from "../gen/sessiond/v1/operation_service_pb.js";
import { file_sessiond_v1_server_info_service, ServerInfoService } from "../gen/sessiond/v1/server_info_service_pb.js";
import { file_sessiond_v1_session_service, SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { file_sessiond_v1_trace_service, TraceService } from "../gen/sessiond/v1/trace_service_pb.js";
import {
  file_opentelemetry_proto_collector_trace_v1_trace_service,
  TraceService as OtlpTraceService,
} from "../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { Services } from "./domain/services.js";
import { createAdminHandlers } from "./handlers/admin-handlers.js";
import { createConsoleRoutes } from "./handlers/console.js";
import type { CallAuditor } from "./handlers/audit.js";
import type { AccessControl } from "./handlers/auth.js";
import { errorInterceptor } from "./handlers/errors.js";
import { createHealthHandlers, type HealthStatus, type ReadinessCheck } from "./handlers/health.js";
import { loggingInterceptor } from "./handlers/logging.js";
import type { Metrics } from "./handlers/metrics.js";
import type { RpcTracing } from "./handlers/tracing.js";
import { createMemoryHandlers } from "./handlers/memory-handlers.js";
import { createOperationHandlers } from "./handlers/operation-handlers.js";
import { createTraceHandlers } from "./handlers/trace-handlers.js";
import { createServerInfoHandlers } from "./handlers/server-info.js";
import { createOtlpGrpcHandlers, createOtlpHttpHandler } from "./handlers/otlp.js";
import type { HttpHandler } from "./server.js";
import { createReflectionRoutes } from "./handlers/reflection.js";
import { createSessionHandlers } from "./handlers/session-handlers.js";
import type { Logger } from "./logger.js";

/** Files whose services and types server reflection describes (with their dependencies). */
export const reflectedFiles = [
  file_sessiond_v1_session_service,
  file_sessiond_v1_memory_service,
  file_sessiond_v1_trace_service,
  file_sessiond_v1_server_info_service,
  file_sessiond_v1_admin_service,
  file_sessiond_v1_operation_service,
  file_opentelemetry_proto_collector_trace_v1_trace_service,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
];

/** What the routes need. */
export interface RouteDeps {
  services: Services;
  health: HealthStatus;
  /** Refreshes `health` before Health answers (handlers/readiness.ts); without it `health` is answered as set. */
  readiness?: ReadinessCheck;
}

/**
 * The names gRPC Health reports besides "" (the whole server): every service that needs the database.
 * They follow readiness together, for probes and load balancers configured per service name.
 */
export const healthServiceNames = [SessionService, MemoryService, TraceService, AdminService, OperationService, ServerInfoService, OtlpTraceService].map((s) => s.typeName);

/** Registers SessionService, MemoryService, TraceService, AdminService, OperationService, ServerInfoService, OTLP's TraceService, gRPC health and reflection (v1 and v1alpha). */
export function createRoutes(deps: RouteDeps): (router: ConnectRouter) => void {
  const reflection = createReflectionRoutes(reflectedFiles);
  return (router) => {
    router.service(SessionService, createSessionHandlers(deps.services));
    router.service(MemoryService, createMemoryHandlers(deps.services.memories));
    router.service(TraceService, createTraceHandlers(deps.services.tracing));
    router.service(AdminService, createAdminHandlers(deps.services));
    router.service(OperationService, createOperationHandlers(deps.services.operations));
    router.service(ServerInfoService, createServerInfoHandlers());
    router.service(OtlpTraceService, createOtlpGrpcHandlers(deps.services.tracing));
    router.service(Health, createHealthHandlers(deps.health, deps.readiness));
    reflection(router);
  };
}

/** Who may call, and what is recorded of the calls: the guards every call passes. */
export interface Guards {
  /** Who may call what (handlers/auth.ts). */
  access: AccessControl;
  /** What records calls in the audit log (handlers/audit.ts). */
  auditing: CallAuditor;
  /** Counted when given. */
  metrics?: Metrics;
  /** Traced when given (handlers/tracing.ts: only when sessiond's own tracing is on). */
  tracing?: RpcTracing;
}

/** Plain HTTP endpoints on the same port: OTLP/HTTP traces, Prometheus metrics (open, like /healthz) and the web console (static; its API calls need a key). */
export function createHttpRoutes(deps: RouteDeps, opts: { readMaxBytes: number; logger: Logger } & Guards & { metrics: Metrics }): Record<string, HttpHandler> {
  return { "/v1/traces": createOtlpHttpHandler(deps.services.tracing, opts), "/metrics": opts.metrics.handler, ...createConsoleRoutes() };
}

/**
 * The interceptor chain, outermost first: the call's span (when tracing; everything below runs inside
 * it), request id + access log, metrics (when given; both see the final code), audit (which sees the
 * final code too), error mapping, then the namespace scope of the caller.
 */
export function createInterceptors(logger: Logger, guards: Guards): Interceptor[] {
  const { access, auditing, metrics, tracing } = guards;
  return [
    ...(tracing ? [tracing.interceptor] : []),
    loggingInterceptor(logger),
    ...(metrics ? [metrics.interceptor] : []),
    auditing.interceptor,
    errorInterceptor(logger),
    access.scopeInterceptor,
  ];
}

/**
 * The request gate every call passes before its body is read: the credential check (access), counted
 * when refused (metrics), inside the call's span when tracing (outermost, so that a refused call has
 * its span and the check's database work is in it).
 */
export function createRequestGate(guards: Pick<Guards, "access" | "tracing"> & { metrics: Metrics }): (context: HandlerContext) => Promise<void> {
  const gate = guards.metrics.gate(guards.access.requestGate);
  return guards.tracing ? guards.tracing.gate(gate) : gate;
}
