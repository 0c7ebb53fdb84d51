/**
 * Prometheus metrics, served at `GET /metrics`: RPC calls and durations by final code, the per-id
 * outcomes of bulk deletes, the database pool, and prom-client's process metrics. Everything lives in a
 * registry of its own (never prom-client's global one), so several apps can run in one process.
 *
 * Labels are bounded: service and method names of registered RPCs (unknown methods never reach
 * interceptors), Connect code strings, fixed outcome and state names. Never ids, namespaces or secrets.
 */
import { isMessage } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { BulkDeleteOutcome, BulkDeleteProgressSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import type { HttpHandler } from "../server.js";
import type { RefusedCall } from "./edge.js";
import { callEdgeKey } from "./logging.js";
import { codeOf, watchStream } from "./streams.js";
import { AUDIT_DROP_REASONS, type AuditStats } from "../domain/audit-log.js";

/** Every metric name starts with it (prom-client's process metrics too). */
const PREFIX = "sessiond_";

/** From 1 ms (a cached read) to 60 s (a large bulk delete); slower calls land in +Inf. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Label values of `sessiond_bulk_delete_ids_total`; UNSPECIFIED is never sent and not counted. */
const OUTCOMES: Partial<Record<BulkDeleteOutcome, string>> = {
  [BulkDeleteOutcome.DELETED]: "deleted",
  [BulkDeleteOutcome.NOT_FOUND]: "not_found",
  [BulkDeleteOutcome.INVALID_ID]: "invalid_id",
  [BulkDeleteOutcome.FAILED]: "failed",
  [BulkDeleteOutcome.WOULD_DELETE]: "would_delete",
};

/** What the pool gauges read on each scrape: the counters of a node-postgres `Pool`. */
export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options?: { readonly max?: number };
}

/** The metrics of one app. */
export interface Metrics {
  /** The app's own registry. */
  readonly registry: Registry;
  /**
   * Counts every call when it ends (a server stream: when the stream ends) with its final code, and
   * the per-id outcomes of bulk delete streams as their `progress` messages pass. Put it right inside
   * the logging interceptor so it sees the same codes.
   */
  readonly interceptor: Interceptor;
  /** `GET`/`HEAD /metrics`: the registry in Prometheus text format; other methods get 405. Open, like /healthz. */
  readonly handler: HttpHandler;
  /** Wraps a request gate so that the calls it refuses (they never reach interceptors) are counted. */
  gate(inner: (context: HandlerContext) => void | Promise<void>): (context: HandlerContext) => Promise<void>;
  /**
   * Counts a call connect-es refused before the interceptors (undecodable body, too large, wrong
   * content type, invalid timeout), in `sessiond_rpc_rejected_total` with its `reason`: the edge's
   * `onRefused` (server.ts).
   */
  refused(call: RefusedCall): void;
}

/**
 * Creates a registry with sessiond's metrics and prom-client's default process metrics. `pool`, when
 * given, is read on every scrape for `sessiond_db_pool_connections` and `sessiond_db_pool_max`.
 */
export function createMetrics(deps: { pool?: PoolStats } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  const labelNames = ["service", "method", "code"] as const;
  const calls = new Counter({ name: `${PREFIX}rpc_calls_total`, help: "RPCs handled, by final code (ok or a Connect code); a server stream counts when it ends.", labelNames, registers: [registry] });
  const duration = new Histogram({ name: `${PREFIX}rpc_duration_seconds`, help: "RPC duration in seconds, by final code; for a server stream, until the stream ends.", labelNames, buckets: DURATION_BUCKETS, registers: [registry] });
  const outcomes = new Counter({ name: `${PREFIX}bulk_delete_ids_total`, help: "Identifiers reported by BulkDeleteSessions and DeleteNamespace progress messages, by outcome.", labelNames: ["outcome"] as const, registers: [registry] });
  for (const outcome of Object.values(OUTCOMES)) outcomes.inc({ outcome }, 0);
  // `reason` is set for the calls connect-es refused (undecodable, too_large, content_type, timeout,
  // protocol) and absent (Prometheus reads: empty) for those the request gate refused.
  const rejected = new Counter({
    name: `${PREFIX}rpc_rejected_total`,
    help: "RPCs refused before the interceptors, by code: by the request gate (credentials, role, rate limit; no reason label) or by the protocol layer (reason: undecodable, too_large, content_type, timeout, protocol).",
    labelNames: [...labelNames, "reason"] as const,
    registers: [registry],
  });

  const { pool } = deps;
  if (pool) {
    new Gauge({
      name: `${PREFIX}db_pool_connections`,
      help: "Database pool: open connections (total), idle ones, and queries waiting for a connection.",
      labelNames: ["state"] as const,
      registers: [registry],
      collect() {
        this.set({ state: "total" }, pool.totalCount);
        this.set({ state: "idle" }, pool.idleCount);
        this.set({ state: "waiting" }, pool.waitingCount);
      },
    });
    new Gauge({
      name: `${PREFIX}db_pool_max`,
      help: "Database pool: most connections it opens (SESSIOND_DB_POOL_SIZE).",
      registers: [registry],
      collect() {
        this.set(pool.options?.max ?? 10); // node-postgres's default when unset
      },
    });
  }

  // Made once, not per call: the build keeps function names, which costs each named closure made a defineProperty.
  const observe = (req: { service: { typeName: string }; method: { name: string } }, started: number, code: Code | undefined) => {
    const labels = { service: req.service.typeName, method: req.method.name, code: code === undefined ? "ok" : codeToString(code) };
    calls.inc(labels);
    duration.observe(labels, (performance.now() - started) / 1000);
  };
  const interceptor: Interceptor = (next) => async (req) => {
    const started = performance.now();
    let res;
    try {
      res = await next(req);
    } catch (err) {
      // codeOf with the call's signal: a client that went away is canceled / deadline_exceeded (streams.ts).
      observe(req, started, codeOf(err, req.signal));
      throw err;
    }
    if (!res.stream) {
      observe(req, started, undefined);
      return res;
    }
    return { ...res, message: watchStream(res.message, { signal: req.signal, onMessage: (m) => countOutcomes(outcomes, m), onEnd: (code) => observe(req, started, code) }) };
  };

  const handler: HttpHandler = async (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    const body = req.method === "GET" ? await registry.metrics() : "";
    res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
    res.end(body);
  };

  const gate: Metrics["gate"] = (inner) => async (context) => {
    try {
      await inner(context);
    } catch (err) {
      const edge = context.values.get(callEdgeKey);
      if (edge) edge.gateRefused = true; // counted here; the edge only adds the request id
      rejected.inc({ service: context.method.parent.typeName, method: context.method.name, code: codeToString(codeOf(err, context.signal)) });
      throw err;
    }
  };

  const refused: Metrics["refused"] = (call) => {
    rejected.inc({ service: call.service, method: call.method, code: codeToString(call.code), reason: call.reason });
  };

  return { registry, interceptor, handler, gate, refused };
}

/** Adds a stream message's per-id outcomes when it is a bulk delete `progress` message. */
function countOutcomes(outcomes: Counter<"outcome">, message: unknown): void {
  const event = (message as { event?: { case?: string; value?: unknown } }).event;
  if (event?.case !== "progress" || !isMessage(event.value, BulkDeleteProgressSchema)) return;
  const counts = new Map<string, number>();
  for (const r of event.value.results) {
    const outcome = OUTCOMES[r.outcome];
    if (outcome) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
  }
  for (const [outcome, n] of counts) outcomes.inc({ outcome }, n);
}

/**
 * Audit log metrics, read from `stats` on each scrape (the audit log is built before the registry):
 * `sessiond_audit_queue_depth` shows the audit falling behind while the database is unavailable, and
 * `sessiond_audit_events_dropped_total` counts events lost, by reason (queue_full, unwritable,
 * shutdown), each present from 0 so that an alert can use rate() from the start.
 */
export function registerAuditMetrics(registry: Registry, stats: () => AuditStats): void {
  new Gauge({
    name: `${PREFIX}audit_queue_depth`,
    help: "Audit events recorded but not yet written (they grow while the database is unavailable).",
    registers: [registry],
    collect() {
      this.set(stats().queued);
    },
  });
  new Counter({
    name: `${PREFIX}audit_events_dropped_total`,
    help: "Audit events lost, by reason: queue_full (database unavailable too long), unwritable (refused by the database), shutdown (still queued at stop).",
    labelNames: ["reason"] as const,
    registers: [registry],
    collect() {
      const { dropped } = stats();
      this.reset();
      for (const reason of AUDIT_DROP_REASONS) this.inc({ reason }, dropped[reason]);
    },
  });
}

/** What the operation metrics read: this process's running operations, and every operation by kind and state. */
export interface OperationMetricsSource {
  stats(): { running: number };
  /** Operations in the database by kind and state (read on scrape). */
  counts(): Promise<{ kind: string; state: string; count: number }[]>;
}

/** What the retention metrics read: the sweeper's last pass and totals. */
export interface SweepMetricsSource {
  stats(): { lagMs: number; clientRequests: number; operations: number };
}

/** Adds the operation and retention metrics to `registry`: read on scrape (one grouped count of the operations table). */
export function registerOperationMetrics(registry: Registry, source: OperationMetricsSource & { swept(): { sessions: number; traces: number } }, sweeper: SweepMetricsSource): void {
  new Counter({
    name: `${PREFIX}retention_swept_total`,
    help: "Rows the retention sweeper of this process deleted, by what: sessions (with everything under them), sessionless traces, client_requests (ended rate-limit windows), operations (ended over 7 days ago).",
    labelNames: ["what"] as const,
    registers: [registry],
    collect() {
      const s = source.swept();
      this.reset();
      this.inc({ what: "sessions" }, s.sessions);
      this.inc({ what: "traces" }, s.traces);
      this.inc({ what: "client_requests" }, sweeper.stats().clientRequests);
      this.inc({ what: "operations" }, sweeper.stats().operations);
    },
  });
  new Gauge({
    name: `${PREFIX}retention_sweep_lag_seconds`,
    help: "How long the longest-expired session still present has been past its retention policy, at the sweeper's last pass (0: none).",
    registers: [registry],
    collect() {
      this.set(sweeper.stats().lagMs / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}operations_running_local`,
    help: "Operations (bulk deletes, namespace deletions) this process is running now.",
    registers: [registry],
    collect() {
      this.set(source.stats().running);
    },
  });
  new Gauge({
    name: `${PREFIX}operations`,
    help: "Operations stored in the database, by kind and state (every process reports the same numbers).",
    labelNames: ["kind", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      // A scrape while the database is away reports no operations rather than failing the whole page.
      const rows = await source.counts().catch(() => []);
      for (const r of rows) this.set({ kind: r.kind, state: r.state }, r.count);
    },
  });
}

/** WatchSession / WatchSessions figures, read on scrape. */
export function registerWatchMetrics(registry: Registry, watches: { stats(): { watchers: number; sessions: number; feeds: number; overflows: number } }, signals: { connected(): boolean }): void {
  new Gauge({
    name: `${PREFIX}watchers`,
    help: "Watch streams (WatchSession and WatchSessions) this process serves now.",
    registers: [registry],
    collect() {
      this.set(watches.stats().watchers);
    },
  });
  new Gauge({
    name: `${PREFIX}watched_sessions`,
    help: "Sessions and namespace feeds this process reads for its watchers (one read per change each, however many watchers).",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      const s = watches.stats();
      this.set({ kind: "session" }, s.sessions);
      this.set({ kind: "feed" }, s.feeds);
    },
  });
  new Counter({
    name: `${PREFIX}watch_overflows_total`,
    help: "Watch streams ended with resource_exhausted because their client read too slowly for the session's live changes.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(watches.stats().overflows);
    },
  });
  new Gauge({
    name: `${PREFIX}watch_signals_connected`,
    help: "1 while this process's LISTEN connection for watch signals between processes is up (0: its watchers poll).",
    registers: [registry],
    collect() {
      this.set(signals.connected() ? 1 : 0);
    },
  });
}
