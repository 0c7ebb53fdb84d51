/**
 * sessiond's own traces: the standard OpenTelemetry environment variables (OTEL_*), read and checked
 * once at start (config.ts calls {@link readTracingSettings}). Tracing is on only when an OTLP endpoint
 * is configured; everything else has the specification's default. Read from the `env` given, never
 * from process.env behind the caller's back, so that tests and embedders configure each app alone.
 */

/** How spans are sent: OTLP over HTTP with protobuf bodies, or OTLP over gRPC. */
export type OtlpProtocol = "http/protobuf" | "grpc";

/** The samplers of the specification's OTEL_TRACES_SAMPLER. */
export type SamplerName = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

/** The checked tracing settings; see README.md ("Configuration") and docs/operations.md. */
export interface TracingSettings {
  protocol: OtlpProtocol;
  /** Where spans are sent: for http/protobuf the full URL of the traces endpoint (…/v1/traces), for grpc the server's URL. */
  url: string;
  /** Sent with every export (e.g. credentials). Secrets: never logged. */
  headers: Record<string, string>;
  /** How long one export request may take, in ms. */
  timeoutMs: number;
  compression: "gzip" | "none";
  /** `service.name` of the resource. */
  serviceName: string;
  /** The resource's other attributes (OTEL_RESOURCE_ATTRIBUTES). */
  resourceAttributes: Record<string, string>;
  sampler: SamplerName;
  /** The ratio of the traceidratio samplers, 0 to 1. */
  samplerRatio: number;
  /** The batch span processor: delay between exports, export timeout, queue and batch sizes. */
  batch: { scheduledDelayMs: number; exportTimeoutMs: number; maxQueueSize: number; maxExportBatchSize: number };
}

/** The default service name (OTEL_SERVICE_NAME). */
export const DEFAULT_SERVICE_NAME = "sessiond";

const SAMPLERS = new Set<string>(["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"]);

/**
 * The tracing settings in `env`, or undefined when tracing is off: no OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true.
 * @throws `invalid(message)`, the message naming the variable, for a value that cannot be accepted
 * (never echoing a header or attribute value: they may hold credentials).
 */
export function readTracingSettings(env: NodeJS.ProcessEnv, invalid: (message: string) => Error): TracingSettings | undefined {
  const value = (name: string) => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  // Signal-specific first, as the specification says: the variable that decided, and its value.
  const pick = (generic: string) => {
    const specific = generic.replace("OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_");
    const v = value(specific);
    return v !== undefined ? { name: specific, value: v } : { name: generic, value: value(generic) };
  };
  const int = (name: string, dflt: number, min: number, max: number) => {
    const raw = value(name);
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw invalid(`${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
    return Number(raw);
  };

  const disabled = value("OTEL_SDK_DISABLED");
  if (disabled !== undefined && !/^(true|false)$/i.test(disabled)) throw invalid(`OTEL_SDK_DISABLED: expected true or false, got "${disabled}"`);
  if (disabled?.toLowerCase() === "true") return undefined;
  const exporter = value("OTEL_TRACES_EXPORTER")?.toLowerCase();
  if (exporter === "none") return undefined;
  if (exporter !== undefined && exporter !== "otlp") throw invalid(`OTEL_TRACES_EXPORTER: sessiond exports its traces over OTLP only: expected otlp or none, got "${exporter}"`);

  const endpoint = pick("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (endpoint.value === undefined) return undefined;
  const protocol = pick("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol.value !== undefined && protocol.value !== "http/protobuf" && protocol.value !== "grpc") {
    throw invalid(`${protocol.name}: expected http/protobuf or grpc, got "${protocol.value}" (http/json is not supported)`);
  }
  let url: URL;
  try {
    url = new URL(endpoint.value);
  } catch {
    throw invalid(`${endpoint.name}: expected an http:// or https:// URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(`${endpoint.name}: expected an http:// or https:// URL, got scheme "${url.protocol}"`);
  const http = (protocol.value ?? "http/protobuf") === "http/protobuf";
  // The generic endpoint is a base URL that OTLP/HTTP appends v1/traces to; the traces endpoint is used as is.
  const target = http && endpoint.name === "OTEL_EXPORTER_OTLP_ENDPOINT" ? `${endpoint.value.replace(/\/+$/, "")}/v1/traces` : endpoint.value;

  const compression = pick("OTEL_EXPORTER_OTLP_COMPRESSION");
  if (compression.value !== undefined && compression.value !== "gzip" && compression.value !== "none") throw invalid(`${compression.name}: expected gzip or none, got "${compression.value}"`);
  const timeout = pick("OTEL_EXPORTER_OTLP_TIMEOUT");

  const resourceAttributes = keyValues(env, "OTEL_RESOURCE_ATTRIBUTES", invalid);
  const serviceName = value("OTEL_SERVICE_NAME") ?? resourceAttributes["service.name"] ?? DEFAULT_SERVICE_NAME;
  delete resourceAttributes["service.name"];

  const sampler = value("OTEL_TRACES_SAMPLER")?.toLowerCase() ?? "parentbased_always_on";
  if (!SAMPLERS.has(sampler)) throw invalid(`OTEL_TRACES_SAMPLER: expected one of ${[...SAMPLERS].join(", ")}, got "${sampler}"`);
  const ratioRaw = value("OTEL_TRACES_SAMPLER_ARG");
  const samplerRatio = ratioRaw === undefined || !sampler.endsWith("traceidratio") ? 1 : Number(ratioRaw);
  if (!(samplerRatio >= 0 && samplerRatio <= 1)) throw invalid(`OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got "${ratioRaw}"`);

  const maxQueueSize = int("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1_000_000);
  const maxExportBatchSize = int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 1_000_000);
  if (maxExportBatchSize > maxQueueSize) throw invalid(`OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${maxQueueSize}), got ${maxExportBatchSize}`);

  return {
    protocol: http ? "http/protobuf" : "grpc",
    url: target,
    headers: { ...keyValues(env, "OTEL_EXPORTER_OTLP_HEADERS", invalid, true), ...keyValues(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", invalid, true) },
    timeoutMs: int(timeout.name, 10_000, 1, 600_000),
    compression: compression.value === "gzip" ? "gzip" : "none",
    serviceName,
    resourceAttributes,
    sampler: sampler as SamplerName,
    samplerRatio,
    batch: {
      scheduledDelayMs: int("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 600_000),
      exportTimeoutMs: int("OTEL_BSP_EXPORT_TIMEOUT", 30_000, 1, 600_000),
      maxQueueSize,
      maxExportBatchSize,
    },
  };
}

/** An HTTP header name (RFC 9110 token), and what a header value may hold (no control characters). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * `key1=value1,key2=value2` (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES): values are
 * percent-decoded, blank entries skipped; `headers` checks that each is a valid HTTP header. Errors
 * name the entry's position or key, never its value.
 */
function keyValues(env: NodeJS.ProcessEnv, name: string, invalid: (message: string) => Error, headers = false): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = env[name]?.trim();
  if (!raw) return out;
  raw.split(",").forEach((entry, i) => {
    if (!entry.trim()) return;
    const at = entry.indexOf("=");
    const key = at < 0 ? "" : entry.slice(0, at).trim();
    if (!key) throw invalid(`${name}: entry ${i + 1} is not key=value (expected key1=value1,key2=value2)`);
    try {
      out[key] = decodeURIComponent(entry.slice(at + 1).trim());
    } catch {
      throw invalid(`${name}: entry ${i + 1} has a value that is not valid percent-encoding`);
    }
    if (headers && (!HEADER_NAME.test(key) || !HEADER_VALUE.test(out[key]))) throw invalid(`${name}: entry ${i + 1} is not a valid HTTP header (name or value)`);
  });
  return out;
}
