/**
 * Database spans: every query a pooled node-postgres connection runs for a traced call becomes a
 * CLIENT span under the call's span, named by its `db.query.summary` (sql-summary.ts, e.g.
 * `SELECT sessions`), with OpenTelemetry's database attributes. The query text and its parameters are
 * never recorded: parameters hold what callers sent, and a summary says which statement ran.
 * Queries outside a traced call (readiness probes, start-up, migrations) are not traced.
 *
 * It works on the pool's runtime objects (the `acquire` event, `client.query`) without importing pg:
 * only db/ does.
 */
import { SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Span } from "@opentelemetry/api";
import { summarize } from "./sql-summary.js";
import type { Tracing } from "./tracing.js";

/** What this needs of a node-postgres `Pool` (TypeORM's postgres driver keeps one as `driver.master`). */
export interface QueryPool {
  on(event: "acquire", listener: (client: { query: (...args: any[]) => any }) => void): unknown;
  readonly options?: { host?: string; port?: number | string; database?: string; connectionString?: string };
}

/** Summaries kept, by query text (statements are templates: a few hundred at most). Longer texts are summarised each time. */
const CACHE_SIZE = 512;
const CACHE_MAX_TEXT = 8 * 1024;

/**
 * Makes every connection `pool` hands out trace its queries (once per connection, when first
 * acquired: connections opened before this are covered too). `db.namespace` and `server.*` come from
 * the pool's configuration (database name, host, port when not 5432); user and password never do.
 */
export function traceQueries(pool: QueryPool, tracing: Tracing): void {
  const base = connectionAttributes(pool.options ?? {});
  const summaries = new Map<string, string>();
  const summaryOf = (text: string) => {
    if (text.length > CACHE_MAX_TEXT) return summarize(text);
    let s = summaries.get(text);
    if (s === undefined) {
      if (summaries.size >= CACHE_SIZE) summaries.clear();
      s = summarize(text);
      summaries.set(text, s);
    }
    return s;
  };
  const traced = new WeakSet<object>();
  pool.on("acquire", (client) => {
    if (traced.has(client)) return;
    traced.add(client);
    const query = client.query;
    client.query = function (this: unknown, ...args: any[]) {
      const parent = tracing.active();
      const first = args[0];
      // A submittable is traced when it is a query answered through its callback (db/sql.ts runs its
      // statements as pg.Query objects); not a cursor or a stream, which sessiond does not use.
      const submittable = typeof first?.submit === "function";
      // Only within a sampled call.
      if (!parent || !first || (submittable && typeof first.callback !== "function") || !((trace.getSpan(parent)?.spanContext().traceFlags ?? 0) & TraceFlags.SAMPLED)) {
        return query.apply(this, args);
      }
      const text: unknown = typeof first === "string" ? first : first.text;
      const summary = typeof text === "string" ? summaryOf(text) : "";
      const span = tracing.tracer.startSpan(summary || "postgresql", { kind: SpanKind.CLIENT, attributes: summary ? { ...base, "db.query.summary": summary } : base }, parent);
      if (submittable) {
        const callback = first.callback;
        first.callback = (err: unknown, res: unknown) => {
          end(span, err);
          callback(err, res);
        };
        return query.apply(this, args);
      }
      const last = args.length - 1;
      if (typeof args[last] === "function") {
        const callback = args[last];
        args[last] = (err: unknown, res: unknown) => {
          end(span, err);
          callback(err, res);
        };
        return query.apply(this, args);
      }
      let result;
      try {
        result = query.apply(this, args);
      } catch (err) {
        end(span, err);
        throw err;
      }
      if (result && typeof result.then === "function") result.then(() => end(span), (err: unknown) => end(span, err));
      else end(span);
      return result;
    };
  });
}

/** Ends a query's span; a failed query gets ERROR with its SQLSTATE (never its message: it may quote values). */
function end(span: Span, err?: unknown): void {
  if (err !== undefined && err !== null) {
    const code = (err as { code?: unknown }).code;
    const sqlstate = typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
    span.setAttribute("error.type", sqlstate ?? "_OTHER");
    if (sqlstate) span.setAttribute("db.response.status_code", sqlstate);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/** The attributes every query span of the pool has. */
function connectionAttributes(options: NonNullable<QueryPool["options"]>): Attributes {
  let url: URL | undefined;
  try {
    if (options.connectionString) url = new URL(options.connectionString);
  } catch {}
  const database = options.database ?? (url ? decodeURIComponent(url.pathname.slice(1)) : undefined);
  const host = options.host ?? (url?.hostname ? url.hostname.replace(/^\[|\]$/g, "") : undefined);
  const port = Number(options.port ?? (url?.port || 5432));
  return {
    "db.system.name": "postgresql",
    ...(database ? { "db.namespace": database } : {}),
    ...(host ? { "server.address": host } : {}),
    ...(host && port !== 5432 ? { "server.port": port } : {}),
  };
}
