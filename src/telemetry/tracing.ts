/**
 * What the instrumented parts of sessiond (the RPC interceptor and request gate, the integrator
 * client, the database pool) share when tracing is on: one tracer, the W3C propagator, and the
 * context of the call being served. The context lives in an AsyncLocalStorage of this app's own
 * rather than in OpenTelemetry's global context manager: nothing process-wide is installed, so several
 * apps (tests, embedders) trace independently in one process, and an app without tracing pays nothing.
 */
import type { Context, TextMapPropagator, Tracer } from "@opentelemetry/api";

/** sessiond's own tracing (created by telemetry/provider.ts when an OTLP endpoint is configured). */
export interface Tracing {
  readonly tracer: Tracer;
  /** W3C Trace Context (`traceparent`, `tracestate`): read from incoming calls, written into outgoing ones. */
  readonly propagator: TextMapPropagator;
  /** The context (with its span) of the call being served, for the spans it causes; undefined outside calls. */
  active(): Context | undefined;
  /** Runs `fn` with `context` as the active one; it follows awaits, timers and callbacks started inside. */
  run<T>(context: Context, fn: () => T): T;
  /** Exports the spans still buffered and stops, in bounded time. Idempotent. */
  shutdown(): Promise<void>;
}
