/**
 * Configuration: environment variables read and validated once, with defaults.
 * Every variable is documented in README.md ("Configuration").
 */

/** The validated configuration the service runs with. */
export interface Config {
  /** Port for Connect, gRPC and gRPC-Web over HTTP/1.1 and cleartext HTTP/2 (`PORT`, default 8080). */
  port: number;
  /** Interface to bind (`HOST`, default 0.0.0.0). */
  host: string;
  /**
   * Postgres URL (`DATABASE_URL`); when unset an embedded Postgres is started in `dataDir`. Behind a
   * pooler in transaction mode (PgBouncer 1.18+ with `pool_mode = transaction`, or any pooler that gives
   * each transaction any server connection) add `pgbouncer=true` to it, e.g.
   * `postgres://sessiond@pgbouncer:6432/sessiond?pgbouncer=true`: sessiond then sends unnamed statements
   * only (default `false`: the hot statements, AppendTurns', the session lookup and the ListTurns page,
   * are named prepared statements, planned once per connection).
   * sessiond takes the parameter off before connecting; see db/data-source.ts for what else it checked.
   */
  databaseUrl: string | undefined;
  /** Directory for the embedded Postgres and other local state (`SESSIOND_DATA_DIR`, default ./.sessiond). */
  dataDir: string;
  /** Largest request message accepted, in bytes (`SESSIOND_MAX_MESSAGE_BYTES`, default 8 MiB: room for 100,000 global ids in one BulkDeleteSessions). */
  readMaxBytes: number;
  /** Largest deadline a client may ask for, in ms (`SESSIOND_MAX_TIMEOUT_MS`, default 1 hour). */
  maxTimeoutMs: number;
  /**
   * Client stream resets (RST_STREAM) one HTTP/2 connection may send: a burst of
   * `SESSIOND_HTTP2_RESET_BURST` (default 10,000), refilled at `SESSIOND_HTTP2_RESET_RATE` a second
   * (default 1,000). Beyond, the connection is closed (GOAWAY INTERNAL_ERROR): the defence against
   * "rapid reset" floods. Node's own defaults (1,000 and 33 a second) closed the connections of ordinary
   * clients that cancel calls and abandon streams.
   */
  http2ResetBurst: number;
  http2ResetRate: number;
  /** How long a graceful shutdown may take before the process exits anyway (`SESSIOND_SHUTDOWN_GRACE_MS`, default 8000). */
  shutdownGraceMs: number;
  /** Database connection pool size (`SESSIOND_DB_POOL_SIZE`, default 10). */
  dbPoolSize: number;
  /**
   * How long a call may wait for a pooled database connection, in ms (`SESSIOND_DB_CONNECT_TIMEOUT_MS`,
   * default 3000). Past it the call fails `unavailable` with a retry hint instead of hanging: a pool that
   * is exhausted for longer than this is overloaded, and the client should back off.
   */
  dbConnectTimeoutMs: number;
  /**
   * Most operations (BulkDeleteSessions and AdminService.DeleteNamespace together) running at once in
   * this process (`SESSIOND_MAX_BULK_OPERATIONS`, default 4). Each uses one pooled connection at a time,
   * so this is the share of the pool long work may take; it is capped at half the pool (at least 1) so
   * live calls always keep the other half.
   */
  maxBulkOperations: number;
  /**
   * Operations of one namespace that may wait QUEUED for a free slot on any process
   * (`SESSIOND_BULK_QUEUE_SIZE`, default 16; 0 refuses what cannot run at once). A call beyond it fails
   * `resource_exhausted` with a retry hint.
   */
  bulkQueueSize: number;
  /**
   * How long a process's claim on a running operation holds without renewal, in ms
   * (`SESSIOND_OPERATION_LEASE_MS`, default 9000; renewed every third of it). When a process dies, another
   * one takes its operations over after at most this plus `operationPollMs`.
   */
  operationLeaseMs: number;
  /**
   * How often a process with a free slot looks for queued operations and abandoned ones, in ms
   * (`SESSIOND_OPERATION_POLL_MS`, default 2000).
   */
  operationPollMs: number;
  /**
   * The retention policy of namespaces without one of their own (AdminService.SetRetentionPolicy):
   * `SESSIOND_RETENTION_MAX_AGE`, `SESSIOND_RETENTION_MAX_IDLE`, `SESSIOND_RETENTION_SESSIONLESS_TRACE_TTL`
   * (durations such as `90d`, `12h`, `30m`; unset keeps data forever), `SESSIOND_RETENTION_HOLD_LABELS`
   * (comma-separated label keys that exempt a session) and `SESSIOND_RETENTION_PURGE_MEMORIES`
   * (`true` deletes the memories of swept sessions too). By default nothing is ever deleted.
   */
  retentionDefault: RetentionPolicy;
  /** How often the sweeper looks for data past retention, in ms (`SESSIOND_SWEEP_INTERVAL_MS`, default 60000; 0 never sweeps). */
  sweepIntervalMs: number;
  /**
   * WatchSession and WatchSessions: `SESSIOND_MAX_WATCHERS` (watches one process serves at once, default
   * 10000), `SESSIOND_WATCH_BUFFER` (turns and changes a live watch may fall behind its session before it
   * ends with resource_exhausted and its position, default 1000), `SESSIOND_WATCH_HEARTBEAT_MS` (default
   * 15000), `SESSIOND_WATCH_POLL_MS` (watched sessions and feeds are read again this often without a
   * signal, default 5000), `SESSIOND_WATCH_RETENTION` (how long changes are kept for resuming and for
   * the feed, a duration, default 24h), `SESSIOND_WATCH_READS` (database reads the watches of a process
   * make at once, default 4, at most half the pool).
   */
  watch: { maxWatchers: number; buffer: number; heartbeatMs: number; pollMs: number; retentionMs: number; reads: number };
  /**
   * The connection WatchSession's signals between processes go through (LISTEN/NOTIFY), one per process
   * (`SESSIOND_LISTEN_DATABASE_URL`, default DATABASE_URL). Behind PgBouncer in transaction mode, point it
   * at Postgres directly.
   */
  listenDatabaseUrl: string | undefined;
  /** Log level for pino (`LOG_LEVEL`, default info). */
  logLevel: string;
  /**
   * How far V8 lets the heap grow past its live size before collecting, in percent
   * (`SESSIOND_HEAP_GROWTH_PERCENT`, default 10; 0 keeps V8's own policy, which lets a busy heap grow to
   * several times its live size). Keeps memory flat through a 100,000-id bulk delete.
   */
  heapGrowthPercent: number;
  /**
   * Browser origins allowed to call the API (`SESSIOND_CORS_ORIGINS`, comma-separated, e.g.
   * `https://app.example.com,http://localhost:5173`; `*` allows any origin; default none).
   */
  corsOrigins: string[];
  /**
   * An operator-chosen secret (`SESSIOND_BOOTSTRAP_ADMIN_KEY`, at least 32 characters): at start, an
   * ADMIN key for all namespaces with this secret is made to exist (stored hashed).
   */
  bootstrapAdminKey: string | undefined;
  /**
   * sessiond's own traces (telemetry/settings.ts): on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither `OTEL_TRACES_EXPORTER=none` nor
   * `OTEL_SDK_DISABLED=true`), with the other standard `OTEL_*` settings; undefined when off.
   */
  tracing?: TracingSettings;
  /**
   * TLS on the port, when `SESSIOND_TLS_CERT_FILE` and `SESSIOND_TLS_KEY_FILE` (PEM) are both set: the
   * port then serves TLS (ALPN h2 and http/1.1) beside cleartext, or instead of it with
   * `SESSIOND_TLS_REQUIRED=true`. `SESSIOND_TLS_CLIENT_CA_FILE` turns on mutual TLS (client
   * certificates as credentials, mapped by `SESSIOND_TLS_CLIENT_IDENTITIES`). The files are re-read every
   * `SESSIOND_TLS_RELOAD_INTERVAL_MS` (default 5000; 0: never) and a change is applied to new
   * connections without a restart.
   */
  tls: TlsConfig | undefined;
  /**
   * Client certificates that are credentials (`SESSIOND_TLS_CLIENT_IDENTITIES`, a JSON array; needs
   * SESSIOND_TLS_CLIENT_CA_FILE), e.g.
   * `[{"uri":"spiffe://mesh.example/ns/app/sa/agent","role":"writer","namespace":"demo"},{"cn":"ops","role":"admin"}]`:
   * each names a SAN URI (`/*` at the end matches by prefix), a SAN DNS name (any case) or a subject common name,
   * a role (reader, writer, admin) and optionally the one namespace it may reach (all when left out).
   * The first that matches wins.
   */
  clientIdentities: CertificateIdentity[];
}

/** TLS settings of the port (see Config.tls). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  clientCaFile: string | undefined;
  /** Refuse cleartext connections. */
  required: boolean;
  reloadIntervalMs: number;
}

import { checkPolicy, type RetentionPolicy } from "./domain/retention.js";
import type { InvalidInputError } from "./domain/errors.js";
import { MIN_BOOTSTRAP_SECRET_LENGTH, type Role } from "./domain/access.js";
import type { CertificateIdentity } from "./domain/certificate-identities.js";
import { SSL_MODES, takeParameters } from "./db/postgres-tls.js";
import { readTracingSettings, type TracingSettings } from "./telemetry/settings.js";

/** A configuration value that could not be accepted. */
export class ConfigError extends Error {}

function int(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return dflt;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name}: expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name}: must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Parses SESSIOND_CORS_ORIGINS: `*`, or origins such as https://app.example.com (no path). */
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration such as `90d`, `12h`, `30m` or `45s` (unset or empty: undefined), in ms. */
function duration(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const m = /^(\d{1,9})([smhd])$/.exec(raw);
  if (!m) throw new ConfigError(`${name}: expected a duration such as 90d, 12h, 30m or 45s, got "${raw}"`);
  return Number(m[1]) * UNITS[m[2]];
}

/** SESSIOND_WATCH_RETENTION: at least a minute (a resume needs the changes since the client left). */
function watchRetention(env: NodeJS.ProcessEnv): number {
  const ms = duration(env, "SESSIOND_WATCH_RETENTION") ?? 24 * 3_600_000;
  if (ms < 60_000) throw new ConfigError("SESSIOND_WATCH_RETENTION: must be at least 1m");
  return ms;
}

/** The default retention policy from the environment, checked as the API checks one. */
function retention(env: NodeJS.ProcessEnv): RetentionPolicy {
  const purge = env.SESSIOND_RETENTION_PURGE_MEMORIES ?? "false";
  if (purge !== "true" && purge !== "false") throw new ConfigError(`SESSIOND_RETENTION_PURGE_MEMORIES: must be true or false, got "${purge}"`);
  const policy: RetentionPolicy = {
    maxAgeMs: duration(env, "SESSIOND_RETENTION_MAX_AGE"),
    maxIdleMs: duration(env, "SESSIOND_RETENTION_MAX_IDLE"),
    sessionlessTraceTtlMs: duration(env, "SESSIOND_RETENTION_SESSIONLESS_TRACE_TTL"),
    purgeMemories: purge === "true",
    holdLabels: (env.SESSIOND_RETENTION_HOLD_LABELS ?? "").split(",").map((s) => s.trim()).filter(Boolean),
  };
  try {
    return checkPolicy(policy, "SESSIOND_RETENTION");
  } catch (err) {
    const e = err as InvalidInputError;
    const names: Record<string, string> = { "SESSIOND_RETENTION.max_age": "SESSIOND_RETENTION_MAX_AGE", "SESSIOND_RETENTION.max_idle": "SESSIOND_RETENTION_MAX_IDLE", "SESSIOND_RETENTION.sessionless_trace_ttl": "SESSIOND_RETENTION_SESSIONLESS_TRACE_TTL" };
    throw new ConfigError(`${names[e.field] ?? "SESSIOND_RETENTION_HOLD_LABELS"}: ${e.message.replace(/^[^:]*: /, "")}`);
  }
}

function origins(raw: string): string[] {
  const list = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const o of list) {
    if (o === "*") continue;
    let url: URL | undefined;
    try {
      url = new URL(o);
    } catch {}
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== o) {
      throw new ConfigError(`SESSIOND_CORS_ORIGINS: "${o}" is not an origin like https://app.example.com (scheme, host, optional port; no path)`);
    }
  }
  return list;
}

/** Checks SESSIOND_BOOTSTRAP_ADMIN_KEY without ever echoing it. */
function bootstrapKey(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  if (raw.length < MIN_BOOTSTRAP_SECRET_LENGTH) throw new ConfigError(`SESSIOND_BOOTSTRAP_ADMIN_KEY: must be at least ${MIN_BOOTSTRAP_SECRET_LENGTH} characters (got ${raw.length})`);
  if (!/^[\x21-\x7e]+$/.test(raw)) throw new ConfigError("SESSIOND_BOOTSTRAP_ADMIN_KEY: must be printable ASCII without spaces (it is sent in an HTTP header)");
  return raw;
}

/**
 * Checks DATABASE_URL's own `pgbouncer` parameter and its `sslmode` (db/data-source.ts and
 * db/postgres-tls.ts read them; `allow` is refused there too), if it has them.
 */
function databaseUrl(raw: string | undefined, name = "DATABASE_URL"): string | undefined {
  if (!raw) return undefined;
  const value = /[?&]pgbouncer=([^&]*)/.exec(raw)?.[1];
  if (value !== undefined && value !== "true" && value !== "false") throw new ConfigError(`${name}: pgbouncer must be true or false, got "${value}"`);
  let sslmode: string | undefined;
  try {
    sslmode = takeParameters(raw, ["sslmode"]).values.get("sslmode");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (sslmode !== undefined && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new ConfigError(`${name}: sslmode must be ${SSL_MODES.slice(0, -1).join(", ")} or ${SSL_MODES.at(-1)}, got "${sslmode}"${sslmode === "allow" ? " (sessiond cannot fall back between plaintext and TLS)" : ""}`);
  }
  return raw;
}

function bool(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "" || raw === "false") return false;
  if (raw === "true") return true;
  throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
}

/** The SESSIOND_TLS_* settings; undefined when no certificate is configured. */
function tlsConfig(env: NodeJS.ProcessEnv): TlsConfig | undefined {
  const certFile = env.SESSIOND_TLS_CERT_FILE || undefined;
  const keyFile = env.SESSIOND_TLS_KEY_FILE || undefined;
  const clientCaFile = env.SESSIOND_TLS_CLIENT_CA_FILE || undefined;
  const required = bool(env, "SESSIOND_TLS_REQUIRED");
  const reloadIntervalMs = int(env, "SESSIOND_TLS_RELOAD_INTERVAL_MS", 5000, 0, 24 * 60 * 60 * 1000);
  if (!certFile !== !keyFile) throw new ConfigError(`${certFile ? "SESSIOND_TLS_KEY_FILE" : "SESSIOND_TLS_CERT_FILE"}: TLS needs both SESSIOND_TLS_CERT_FILE and SESSIOND_TLS_KEY_FILE (PEM files)`);
  if (!certFile || !keyFile) {
    if (required) throw new ConfigError("SESSIOND_TLS_REQUIRED: refusing cleartext needs a certificate (SESSIOND_TLS_CERT_FILE and SESSIOND_TLS_KEY_FILE)");
    if (clientCaFile) throw new ConfigError("SESSIOND_TLS_CLIENT_CA_FILE: mutual TLS needs a server certificate (SESSIOND_TLS_CERT_FILE and SESSIOND_TLS_KEY_FILE)");
    return undefined;
  }
  return { certFile, keyFile, clientCaFile, required, reloadIntervalMs };
}

const ROLE_NAMES = new Set<Role>(["reader", "writer", "admin"]);

/** Parses SESSIOND_TLS_CLIENT_IDENTITIES (see Config.clientIdentities). */
function clientIdentities(raw: string | undefined, tls: TlsConfig | undefined): CertificateIdentity[] {
  const name = "SESSIOND_TLS_CLIENT_IDENTITIES";
  if (!raw?.trim()) return [];
  if (!tls?.clientCaFile) throw new ConfigError(`${name}: client certificates need SESSIOND_TLS_CLIENT_CA_FILE (the CA they must chain to)`);
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${name}: not JSON (${(err as Error).message}); expected e.g. [{"uri":"spiffe://mesh/ns/app/sa/agent","role":"writer","namespace":"app"}]`);
  }
  if (!Array.isArray(list)) throw new ConfigError(`${name}: expected a JSON array of identities`);
  const seen = new Set<string>();
  return list.map((item: unknown, i) => {
    const at = `${name}[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) throw new ConfigError(`${at}: expected an object like {"uri":"...","role":"writer"}`);
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!["uri", "dns", "cn", "role", "namespace"].includes(k)) throw new ConfigError(`${at}.${k}: unknown field (use uri, dns or cn, role, namespace)`);
    const named = (["uri", "dns", "cn"] as const).filter((k) => o[k] !== undefined);
    if (named.length !== 1) throw new ConfigError(`${at}: name exactly one of uri, dns or cn`);
    const by = named[0];
    const value = o[by];
    if (typeof value !== "string" || value === "" || value === "*") throw new ConfigError(`${at}.${by}: expected a non-empty string`);
    // A prefix ends at a path segment: "spiffe://m/ns/app/*", never "spiffe://m/ns/app*" (which would take app-evil too).
    if (value.endsWith("*") && (by !== "uri" || !value.endsWith("/*"))) throw new ConfigError(`${at}.${by}: a prefix is a uri ending in "/*", e.g. "spiffe://cluster.local/ns/app/*"`);
    if (typeof o.role !== "string" || !ROLE_NAMES.has(o.role as Role)) throw new ConfigError(`${at}.role: expected reader, writer or admin`);
    if (o.namespace !== undefined && o.namespace !== null && (typeof o.namespace !== "string" || o.namespace === "")) throw new ConfigError(`${at}.namespace: expected a namespace name (leave it out for all namespaces)`);
    if (seen.has(`${by}:${value}`)) throw new ConfigError(`${at}.${by}: "${value}" is listed twice`);
    seen.add(`${by}:${value}`);
    return { [by]: value, role: o.role as Role, namespace: (o.namespace as string | undefined) ?? null };
  });
}

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** The defaults of SESSIOND_HTTP2_RESET_BURST and SESSIOND_HTTP2_RESET_RATE (see Config). */
export const HTTP2_RESET_DEFAULTS = { burst: 10_000, rate: 1000 };

/** Reads the configuration from `env`; throws ConfigError naming the variable on a bad value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const logLevel = env.LOG_LEVEL || "info";
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`LOG_LEVEL: expected one of ${[...LOG_LEVELS].join(", ")}`);
  const dbPoolSize = int(env, "SESSIOND_DB_POOL_SIZE", 10, 1, 1000);
  const tls = tlsConfig(env);
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: env.HOST || "0.0.0.0",
    databaseUrl: databaseUrl(env.DATABASE_URL),
    dataDir: env.SESSIOND_DATA_DIR || ".sessiond",
    readMaxBytes: int(env, "SESSIOND_MAX_MESSAGE_BYTES", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxTimeoutMs: int(env, "SESSIOND_MAX_TIMEOUT_MS", 60 * 60 * 1000, 1000, 24 * 60 * 60 * 1000),
    shutdownGraceMs: int(env, "SESSIOND_SHUTDOWN_GRACE_MS", 8000, 0, 60_000),
    http2ResetBurst: int(env, "SESSIOND_HTTP2_RESET_BURST", HTTP2_RESET_DEFAULTS.burst, 1, 10_000_000),
    http2ResetRate: int(env, "SESSIOND_HTTP2_RESET_RATE", HTTP2_RESET_DEFAULTS.rate, 1, 10_000_000),
    dbPoolSize,
    dbConnectTimeoutMs: int(env, "SESSIOND_DB_CONNECT_TIMEOUT_MS", 3000, 100, 600_000),
    maxBulkOperations: Math.min(int(env, "SESSIOND_MAX_BULK_OPERATIONS", 4, 1, 1000), Math.max(1, Math.floor(dbPoolSize / 2))),
    bulkQueueSize: int(env, "SESSIOND_BULK_QUEUE_SIZE", 16, 0, 10_000),
    operationLeaseMs: int(env, "SESSIOND_OPERATION_LEASE_MS", 9000, 1000, 600_000),
    operationPollMs: int(env, "SESSIOND_OPERATION_POLL_MS", 2000, 100, 60_000),
    logLevel,
    heapGrowthPercent: int(env, "SESSIOND_HEAP_GROWTH_PERCENT", 10, 0, 1000),
    retentionDefault: retention(env),
    sweepIntervalMs: int(env, "SESSIOND_SWEEP_INTERVAL_MS", 60_000, 0, 86_400_000),
    watch: {
      maxWatchers: int(env, "SESSIOND_MAX_WATCHERS", 10_000, 0, 1_000_000),
      buffer: int(env, "SESSIOND_WATCH_BUFFER", 1000, 10, 1_000_000),
      heartbeatMs: int(env, "SESSIOND_WATCH_HEARTBEAT_MS", 15_000, 100, 3_600_000),
      pollMs: int(env, "SESSIOND_WATCH_POLL_MS", 5000, 50, 600_000),
      retentionMs: watchRetention(env),
      reads: Math.min(int(env, "SESSIOND_WATCH_READS", 4, 1, 1000), Math.max(1, Math.floor(dbPoolSize / 2))),
    },
    listenDatabaseUrl: databaseUrl(env.SESSIOND_LISTEN_DATABASE_URL, "SESSIOND_LISTEN_DATABASE_URL"),
    corsOrigins: origins(env.SESSIOND_CORS_ORIGINS ?? ""),
    bootstrapAdminKey: bootstrapKey(env.SESSIOND_BOOTSTRAP_ADMIN_KEY),
    tracing: readTracingSettings(env, (message) => new ConfigError(message)),
    tls,
    clientIdentities: clientIdentities(env.SESSIOND_TLS_CLIENT_IDENTITIES, tls),
  };
}
