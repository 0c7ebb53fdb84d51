/**
 * Signals between the processes that share a database, for WatchSession and WatchSessions: one
 * dedicated connection per process (never one per watcher, and outside the pool) that LISTENs on one
 * channel and sends this process's signals with NOTIFY. A signal only wakes watchers; they read by
 * position, so a lost one loses nothing (and watched sessions are read again every few seconds anyway).
 *
 * Signals are coalesced: those of a few milliseconds (FLUSH_MS), each session once, go out as one
 * NOTIFY (several if over the payload limit), so a busy process sends at most a few hundred a second
 * however many writes it makes, as JSON `{o, s: [[namespace_id, uuid | "", caller_id | "", change 0/1], ...]}` where
 * `o` names the sending process, which ignores its own (it woke its watchers already).
 *
 * Behind PgBouncer in transaction mode LISTEN does not work: point SESSIOND_LISTEN_DATABASE_URL at
 * Postgres directly. A lost connection is made again with backoff; meanwhile the watchers poll, and when
 * it is back they read everything watched once (nothing was missed for long).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { ChangeSignal } from "../domain/watch.js";
import { postgresTls } from "./postgres-tls.js";
import { poolerMode } from "./data-source.js";

export const CHANNEL = "sessiond_changes";

/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7000;

/** How long signals are gathered before they go out (the delay it adds to a watcher on another process). */
const FLUSH_MS = 3;

export interface ChangeSignals {
  /** Sends a signal to the other processes (coalesced). */
  send(signal: ChangeSignal): void;
  /** Whether the connection is up. */
  connected(): boolean;
  close(): Promise<void>;
}

export function startChangeSignals(opts: {
  /** Undefined: no connection (nothing is sent or received; watchers poll). */
  url: string | undefined;
  onSignals(signals: ChangeSignal[]): void;
  /** The connection came (back) up: signals may have been lost meanwhile. */
  onReconnect(): void;
  log: (level: "info" | "warn", message: string, fields?: Record<string, unknown>) => void;
}): ChangeSignals {
  const origin = randomBytes(6).toString("base64url");
  if (opts.url === undefined) return { send() {}, connected: () => false, close: async () => {} };
  const tls = postgresTls(poolerMode(opts.url).url);
  let client: pg.Client | undefined;
  let up = false;
  let closed = false;
  let retryMs = 500;
  let retryTimer: NodeJS.Timeout | undefined;
  /** Signals to send, each session once (a recorded change wins over turns). */
  let pending = new Map<string, ChangeSignal>();
  let flushing = false;
  let everUp = false;

  const parse = (payload: string | undefined) => {
    if (!payload) return;
    try {
      const m = JSON.parse(payload) as { o: string; s: [string, string, string, number][] };
      if (m.o === origin || !Array.isArray(m.s)) return;
      opts.onSignals(m.s.map(([namespaceId, uuid, externalId, change]) => (uuid ? { namespaceId, uuid, change: change === 1 } : { namespaceId, externalId, change: change === 1 })));
    } catch {
      // Not ours: ignored.
    }
  };

  async function connect() {
    if (closed) return;
    const c = new pg.Client({ connectionString: tls.url, ssl: tls.ssl, application_name: "sessiond-signals", connectionTimeoutMillis: 5000, keepAlive: true });
    c.on("notification", (n) => parse(n.payload));
    c.on("error", () => lost(c));
    c.on("end", () => lost(c));
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      c.end().catch(() => {});
      if (!closed) {
        opts.log("warn", "watch signals: cannot LISTEN (watchers poll meanwhile); trying again", { err: String((err as Error).message ?? err), retry_ms: retryMs });
        schedule();
      }
      return;
    }
    if (closed) {
      await c.end().catch(() => {});
      return;
    }
    client = c;
    up = true;
    retryMs = 500;
    if (everUp) opts.log("info", "watch signals: listening again");
    everUp = true;
    opts.onReconnect();
    flush();
  }

  function lost(c: pg.Client) {
    if (client !== c) return;
    client = undefined;
    up = false;
    c.end().catch(() => {});
    if (!closed) {
      opts.log("warn", "watch signals: connection lost (watchers poll meanwhile); connecting again");
      schedule();
    }
  }

  function schedule() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => void connect(), retryMs);
    retryTimer.unref();
    retryMs = Math.min(retryMs * 2, 10_000);
  }

  function flush() {
    if (flushing || !pending.size || !client) return;
    flushing = true;
    setTimeout(async () => {
      const signals = [...pending.values()];
      pending = new Map();
      const c = client;
      try {
        if (!c) return;
        let batch: string[] = [];
        let size = 0;
        const send = async () => {
          if (!batch.length) return;
          const payload = `{"o":${JSON.stringify(origin)},"s":[${batch.join(",")}]}`;
          batch = [];
          size = 0;
          await c.query("SELECT pg_notify($1, $2)", [CHANNEL, payload]);
        };
        for (const s of signals) {
          const item = JSON.stringify([s.namespaceId, s.uuid ?? "", s.uuid ? "" : (s.externalId ?? ""), s.change ? 1 : 0]);
          // The limit is in bytes (a caller's session id may be any text).
          const bytes = Buffer.byteLength(item) + 1;
          if (size + bytes > MAX_PAYLOAD) await send();
          batch.push(item);
          size += bytes;
        }
        await send();
      } catch {
        // The connection's error handler reconnects; the other processes' watchers poll meanwhile.
      } finally {
        flushing = false;
        if (pending.size) flush();
      }
    }, FLUSH_MS);
  }

  void connect();

  return {
    send(signal) {
      if (closed) return;
      const key = `${signal.namespaceId}/${signal.uuid ?? ""}/${signal.uuid ? "" : signal.externalId}`;
      const known = pending.get(key);
      if (!known || (signal.change && !known.change)) pending.set(key, signal);
      // Bounded while the connection is down: the others poll anyway.
      if (pending.size > 10_000) pending = new Map();
      flush();
    },
    connected: () => up,
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      const c = client;
      client = undefined;
      up = false;
      await c?.end().catch(() => {});
    },
  };
}
