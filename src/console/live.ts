/**
 * Following one session live for the detail (WatchSession): its turns and changes from a position, in
 * order. The position after every message goes to this tab's sessionStorage (one entry per session), so
 * that a reload resumes exactly where the page stood: WatchSession with after_seq / after_change replays
 * what came after it, no gap and no duplicate. A stream that breaks and may work again (the server
 * shutting down, a tab too slow for the session, a dropped connection) is watched again, after a pause
 * that grows while it keeps breaking, from the WatchPosition detail of its error or else from the last
 * message; one that cannot (the session or the key is gone) stops with its error.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Turn } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionChangeKind, WatchPositionSchema, type SessionChange, type SessionSnapshot } from "../../gen/sessiond/v1/session_service_pb.js";
import { describeError, type Api } from "./api.js";

/** Where a watch stands: the last turn and the last change delivered (WatchPosition.seq / .change). */
export interface Position {
  seq: bigint;
  change: bigint;
}

/** The state of a watch as the page shows it. */
export type LiveState = "connecting" | "live" | "reconnecting" | "deleted" | "failed";

/** What a watch reports, in stream order. */
export interface LiveHandlers {
  snapshot(s: SessionSnapshot): void;
  turn(t: Turn): void;
  change(c: SessionChange): void;
  /** The watch's state; `why` is the error for reconnecting and failed. */
  state(state: LiveState, why?: string): void;
  /** A WatchSession call starts after `from`; `at` is the position after each message. */
  position(at: Position, request: boolean): void;
}

const POSITION_STORAGE = "sessiond.console.watch.";
/** Codes of a watch that broke and may work again (as bulk-delete.ts); any other code is final. */
const TRANSIENT = new Set([Code.Unavailable, Code.ResourceExhausted, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Canceled, Code.Aborted]);
/** The pause before watching again, doubled while the stream keeps breaking, up to MAX_PAUSE_MS. */
const FIRST_PAUSE_MS = 500;
const MAX_PAUSE_MS = 10_000;

/** The position this tab kept for session `id` (global id), if any. */
export function savedPosition(id: string): Position | undefined {
  const saved = sessionStorage.getItem(POSITION_STORAGE + id);
  if (!saved) return undefined;
  try {
    const p = JSON.parse(saved) as { seq: string; change: string };
    return { seq: BigInt(p.seq), change: BigInt(p.change) };
  } catch {
    return undefined;
  }
}

function savePosition(id: string, p: Position): void {
  sessionStorage.setItem(POSITION_STORAGE + id, JSON.stringify({ seq: String(p.seq), change: String(p.change) }));
}

/** Forgets the position kept for session `id` (the detail closed: the next one starts afresh). */
export function forgetPosition(id: string): void {
  sessionStorage.removeItem(POSITION_STORAGE + id);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * Watches session `id` after `from` until it is deleted, `signal` aborts (the detail closed), or the
 * watch fails for good. The handlers see every message once; the position is saved after each one has
 * been handled, so a reload in between replays it rather than skipping it.
 */
export async function followSession(api: Api, id: string, from: Position, on: LiveHandlers, signal: AbortSignal): Promise<void> {
  let at = from;
  let wait = FIRST_PAUSE_MS;
  on.state("connecting");
  while (!signal.aborted) {
    let deleted = false;
    try {
      on.position(at, true);
      for await (const m of api.sessions.watchSession({ id, afterSeq: at.seq, afterChange: at.change }, { signal })) {
        const e = m.event;
        if (e.case === "snapshot") on.snapshot(e.value);
        else if (e.case === "turn") on.turn(e.value);
        else if (e.case === "change") {
          on.change(e.value);
          deleted = e.value.kind === SessionChangeKind.DELETED;
        } else if (e.case === "caughtUp") on.state("live");
        if (m.position) {
          at = { seq: m.position.seq, change: m.position.change };
          savePosition(id, at);
          on.position(at, false);
        }
        wait = FIRST_PAUSE_MS;
      }
      if (deleted) {
        forgetPosition(id);
        on.state("deleted");
        return;
      }
      // Only a deletion ends the stream with OK: anything else is a break, watched again below.
      throw new ConnectError("the watch ended early", Code.Unavailable);
    } catch (err) {
      if (signal.aborted) return;
      const e = ConnectError.from(err);
      if (!TRANSIENT.has(e.code)) {
        on.state("failed", describeError(e));
        return;
      }
      // Where the server stopped (shutdown, or a tab overtaken by the session): the same as the last
      // message, said by the server.
      const stopped = e.findDetails(WatchPositionSchema)[0];
      if (stopped) {
        at = { seq: stopped.seq, change: stopped.change };
        savePosition(id, at);
      }
      on.state("reconnecting", describeError(e));
      await pause(wait, signal);
      wait = Math.min(wait * 2, MAX_PAUSE_MS);
    }
  }
}
