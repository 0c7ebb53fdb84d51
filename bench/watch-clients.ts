/**
 * bench:watch's watchers, run in worker threads (bench/watch.ts starts them): WatchSession streams over
 * gRPC on `connections` HTTP/2 connections of their own (one transport each), watchers spread over them
 * round-robin. Each watcher notes when it went live (its caught_up) and the arrival time of every live
 * turn with the id the load generator wrote at the start of the turn's content. Times are
 * process.hrtime in ms: one clock for every thread of the process.
 *
 * Messages: main -> worker `{ open: [{ id, session, afterSeq }, ...], timeoutMs }`, answered `{ opened,
 * live }` once every new watcher is live or `timeoutMs` passed; `{ count: true }` is answered with the
 * live turns received so far; `{ close: true }` cancels them all and is answered `{ watchers: WatcherLog[] }`.
 */
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parentPort, workerData } from "node:worker_threads";
import { SessionService } from "../gen/sessiond/v1/session_service_pb.js";
import { bearer, TEST_ADMIN_KEY } from "../test/setup/auth.js";

/** Now, in ms, on the clock every thread of the process shares. */
export const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** What one watcher saw. */
export interface WatcherLog {
  /** Index of the session it watched. */
  session: number;
  /** When it received caught_up (undefined: never). */
  liveAt?: number;
  /** When it ended by itself, and why (undefined: it was live until the bench cancelled it). */
  endedAt?: number;
  error?: string;
  /** (turn id, arrival ms) pairs of the live turns it received. */
  log: Float64Array;
}

if (parentPort && workerData?.watchClients) {
  const { url, connections } = workerData as { url: string; connections: number };
  const port = parentPort;
  const clients = Array.from({ length: connections }, () =>
    createClient(SessionService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(TEST_ADMIN_KEY)] })),
  );
  const stop = new AbortController();
  const watchers: { session: number; liveAt?: number; endedAt?: number; error?: string; log: number[] }[] = [];

  /** One watcher: resolves true once it is live (false if it ended before); notes live turns until the bench cancels it. */
  const watch = (id: string, session: number, afterSeq: bigint) =>
    new Promise<boolean>((live) => {
      const w: (typeof watchers)[number] = { session, log: [] };
      watchers.push(w);
      const client = clients[watchers.length % clients.length];
      void (async () => {
        try {
          for await (const m of client.watchSession({ id, afterSeq }, { signal: stop.signal })) {
            if (m.event.case === "turn") {
              if (w.liveAt === undefined) continue;
              const at = nowMs();
              const content = m.event.value.content;
              w.log.push(Number(content.slice(0, content.indexOf(" "))), at);
            } else if (m.event.case === "caughtUp" && w.liveAt === undefined) {
              w.liveAt = nowMs();
              live(true);
            }
          }
          throw new Error("the stream ended");
        } catch (e) {
          if (stop.signal.aborted) return;
          w.endedAt = nowMs();
          w.error = ConnectError.from(e).message;
          live(false);
        }
      })();
    });

  port.on("message", async (m: { open?: { id: string; session: number; afterSeq: string }[]; timeoutMs?: number; count?: true; close?: true }) => {
    if (m.open) {
      let live = 0;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(m.open.map((w) => watch(w.id, w.session, BigInt(w.afterSeq)).then((ok) => ok && live++))),
        new Promise((r) => (timer = setTimeout(r, m.timeoutMs))),
      ]);
      clearTimeout(timer);
      port.postMessage({ opened: m.open.length, live });
    }
    if (m.count) port.postMessage({ count: watchers.reduce((n, w) => n + w.log.length / 2, 0) });
    if (m.close) {
      stop.abort();
      const out: WatcherLog[] = watchers.map((w) => ({ ...w, log: Float64Array.from(w.log) }));
      port.postMessage({ watchers: out }, out.map((w) => w.log.buffer as ArrayBuffer));
    }
  });
}
