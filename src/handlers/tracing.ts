/**
 * OpenTelemetry spans of the RPCs sessiond serves and of the ones it makes (the REMOTE integrator),
 * following the RPC semantic conventions (semconv 1.45: `rpc.system.name`, `rpc.method`,
 * `rpc.status_code`, `error.type`):
 * - a SERVER span per call, named `sessiond.v1.SessionService/GetSession`, a child of the caller's
 *   span when the call carries W3C Trace Context (`traceparent`, `tracestate`). It starts in the
 *   request gate, before the credential check, so a call refused there gets its span too; it ends when
 *   the call ends (a server stream: when the stream ends) with the code the access log shows
 *   (streams.ts). A call the protocol layer refuses after the gate (a body too large or undecodable)
 *   ends its span with the refusal's code when the call is aborted.
 * - a CLIENT span per outgoing IntegratorService call, whose context goes out in `traceparent`.
 * Nothing a caller sent is recorded: no ids, namespaces, messages, headers or error messages.
 * Installed only when tracing is on (app.ts); without it sessiond has no tracing code on its path.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import type { Tracing } from "../telemetry/tracing.js";
import { protocolOf } from "./logging.js";
import { codeOf, isUndecodable, watchStream } from "./streams.js";

/** The tracing of the RPCs (see the file comment). */
export interface RpcTracing {
  /** Wraps the request gate (put it outermost): starts the call's span and runs the gate inside it. */
  gate(inner: (context: HandlerContext) => void | Promise<void>): (context: HandlerContext) => Promise<void>;
  /** Put it first in the interceptor chain: runs the call inside its span and ends the span with the call's code. */
  readonly interceptor: Interceptor;
  /** For clients sessiond makes: a CLIENT span per call, propagated in `traceparent`. */
  readonly clientInterceptor: Interceptor;
}

/**
 * Services whose calls are not traced: gRPC health checks (load balancers and Kubernetes ask every few
 * seconds: noise) and OTLP's Export (an exporter's calls carry no trace context, and tracing them would
 * feed sessiond's traces back into themselves whenever they reach the sessiond they describe).
 */
const UNTRACED = new Set(["grpc.health.v1.Health", "opentelemetry.proto.collector.trace.v1.TraceService"]);

/** gRPC's status names, by code. */
const GRPC_STATUS = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** The codes that mark a server span as an error (the gRPC and Connect conventions list the same six). */
const SERVER_ERRORS = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

const headerGetter: TextMapGetter<Headers> = { get: (h, key) => h.get(key) ?? undefined, keys: (h) => [...h.keys()] };
const headerSetter: TextMapSetter<Headers> = { set: (h, key, value) => h.set(key, value) };

/** A served call's span, as the gate and the interceptor share it. */
interface CallSpan {
  readonly span: Span;
  /** The context the call runs in: its span's. */
  readonly context: Context;
  /** `grpc` (gRPC and gRPC-Web) or `connectrpc` (the Connect protocol). */
  readonly system: "grpc" | "connectrpc";
  /** The interceptors saw the call: they end the span. */
  reached: boolean;
  ended: boolean;
}

/** The call's span, set by the gate for the interceptor. */
const callSpanKey = createContextKey<CallSpan | undefined>(undefined, { description: "sessiond call span" });

/** `{service}/{method}`: the span name and `rpc.method`, made once per method. */
const names = new WeakMap<DescMethod, string>();
function nameOf(method: DescMethod): string {
  let name = names.get(method);
  if (name === undefined) names.set(method, (name = `${method.parent.typeName}/${method.name}`));
  return name;
}

/** The RPC tracing over `tracing`. */
export function createRpcTracing(tracing: Tracing): RpcTracing {
  const { tracer, propagator } = tracing;

  function start(method: DescMethod, header: Headers, protocol: string): CallSpan | undefined {
    if (UNTRACED.has(method.parent.typeName)) return undefined;
    const parent = header.has("traceparent") ? propagator.extract(ROOT_CONTEXT, header, headerGetter) : ROOT_CONTEXT;
    const name = nameOf(method);
    const system = protocol === "connect" ? "connectrpc" : "grpc";
    const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: { "rpc.system.name": system, "rpc.method": name } }, parent);
    return { span, context: trace.setSpan(parent, span), system, reached: false, ended: false };
  }

  function end(call: CallSpan, code: Code | undefined, err?: unknown): void {
    if (call.ended) return;
    call.ended = true;
    const { span } = call;
    if (span.isRecording()) {
      // Connect has no code for success; gRPC's is OK.
      const status = code === undefined ? (call.system === "grpc" ? "OK" : undefined) : call.system === "grpc" ? GRPC_STATUS[code] : codeToString(code);
      if (status !== undefined) span.setAttribute("rpc.status_code", status);
      // A body connect-es could not decode is `internal` by gRPC's table, but the client's doing.
      if (code !== undefined && SERVER_ERRORS.has(code) && !isUndecodable(err)) {
        span.setAttribute("error.type", status!);
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    span.end();
  }

  const gate: RpcTracing["gate"] = (inner) => async (context) => {
    const call = start(context.method, context.requestHeader, context.protocolName);
    if (!call) return inner(context);
    context.values.set(callSpanKey, call);
    // The call's signal is aborted when it is done: with its error when the protocol layer refused it
    // after the gate, before any interceptor (then nothing else ends the span).
    context.signal.addEventListener(
      "abort",
      () => {
        if (!call.reached) end(call, codeOf(context.signal.reason), context.signal.reason);
      },
      { once: true },
    );
    try {
      await tracing.run(call.context, () => inner(context));
    } catch (err) {
      end(call, codeOf(err, context.signal), err);
      throw err;
    }
  };

  const interceptor: Interceptor = (next) => async (req) => {
    // Calls that did not pass the gate (an in-memory router transport) start their span here.
    const call = req.contextValues.get(callSpanKey) ?? start(req.method, req.header, protocolOf(req.header.get("content-type")));
    if (!call) return next(req);
    call.reached = true;
    let res;
    try {
      res = await tracing.run(call.context, () => next(req));
    } catch (err) {
      end(call, codeOf(err, req.signal), err);
      throw err;
    }
    if (!res.stream) {
      end(call, undefined);
      return res;
    }
    return { ...res, message: watchStream(within(tracing, call.context, res.message), { signal: req.signal, onEnd: (code, err) => end(call, code, err) }) };
  };

  const clientInterceptor: Interceptor = (next) => async (req) => {
    const parent = tracing.active() ?? ROOT_CONTEXT;
    const name = nameOf(req.method);
    const url = new URL(req.url);
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const span = tracer.startSpan(
      name,
      { kind: SpanKind.CLIENT, attributes: { "rpc.system.name": "connectrpc", "rpc.method": name, "server.address": url.hostname.replace(/^\[|\]$/g, ""), "server.port": port } },
      parent,
    );
    propagator.inject(trace.setSpan(parent, span), req.header, headerSetter);
    try {
      const res = await next(req);
      span.end(); // IntegratorService's methods are unary
      return res;
    } catch (err) {
      // Any code is an error on the client side.
      const code = codeToString(ConnectError.from(err).code);
      span.setAttributes({ "rpc.status_code": code, "error.type": code });
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw err;
    }
  };

  return { gate, interceptor, clientInterceptor };
}

/** `source`, each step of which runs in `context`: a server stream's work is pulled by the response writer, outside the call's context. */
function within<T>(tracing: Tracing, context: Context, source: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () => tracing.run(context, () => it.next()),
        return: (value?: unknown) => tracing.run(context, () => it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined })),
        throw: (err?: unknown) => tracing.run(context, () => it.throw?.(err) ?? Promise.reject(err)),
      };
    },
  };
}
