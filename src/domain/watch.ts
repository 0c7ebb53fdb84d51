/**
 * Live sessions: WatchSession (one session's turns and changes) and WatchSessions (a namespace's feed
 * of session changes), from whichever process the writes went through.
 *
 * How a change reaches a watcher: the writer's statement records it (turns in `turns` by seq, other
 * changes in session_changes by change number); once it commits, the writing process calls `changed`,
 * which wakes its own watchers at once and signals the other processes (through one LISTEN/NOTIFY
 * connection per process, db/change-signals.ts). A signal only wakes: data is always read by position,
 * so a lost signal loses nothing, and every watched session and feed is read again every `pollMs`
 * without one.
 *
 * What it costs: each watched session has one topic per process, which reads what is new once per wake
 * (not once per watcher) and keeps the last `buffer` items in a ring that its watchers are served from.
 * A watcher that is behind the ring (replaying, or resumed from an old position) reads from the database
 * itself, a page at a time, as its client takes them. Every read goes through `reads` slots: the
 * watchers of a process hold at most that many pooled connections, however many they are. A live
 * watcher whose client is so slow that the ring moves past it ends with RESOURCE_EXHAUSTED and its
 * position (the memory a watcher holds never grows with its lag); it resumes from there by replay.
 */
import type { Participant } from "./conversation-model.js";
import { InvalidInputError, OutOfRangeError, RateLimitedError, StoreBusyError, WatchEndedError } from "./errors.js";
import { checkFilter, checkNamespace, sessionOf } from "./session-model.js";
import { loadSession, type SessionAddress } from "./session-service.js";
import type { SessionStore } from "./session-store.js";
import type { WatchStore } from "./watch-store.js";
import {
  CHANGE_KINDS,
  DEFAULT_FEED_KINDS,
  matchesFilter,
  type ChangeKind,
  type FeedWatchEvent,
  type FeedWatchInput,
  type SessionChange,
  type SessionWatchEvent,
  type WatchPosition,
} from "./watch-model.js";

/** Limits and timings of the watches of one process. */
export interface WatchLimits {
  /** Watchers (of both kinds) at once; beyond, a new watch gets resource_exhausted. */
  maxWatchers: number;
  /** Items (turns and changes) a live watcher may fall behind a session's live changes. */
  buffer: number;
  /** Bytes of turn content a session's ring keeps at most (it then keeps fewer items). */
  bufferBytes: number;
  /** Idle streams get a heartbeat this often. */
  heartbeatMs: number;
  /** Every watched session and feed is read again this often without a signal. */
  pollMs: number;
  /** How long changes are kept (a feed cursor older than this is out of range). */
  retentionMs: number;
  /** Database reads the watchers of this process make at once (pooled connections they hold at most). */
  reads: number;
  /** How long a read waits for one of those slots before the watch ends with unavailable. */
  readWaitMs: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = {
  maxWatchers: 10_000,
  buffer: 1000,
  bufferBytes: 4 * 1024 * 1024,
  heartbeatMs: 15_000,
  pollMs: 5000,
  retentionMs: 24 * 3600_000,
  reads: 4,
  readWaitMs: 10_000,
};

/** Rows one read takes at most. */
const PAGE = 100;

/** A session (by uuid, or by its caller id) changed: turns appended (`change` false) or a recorded change. */
export interface ChangeSignal {
  namespaceId: string;
  uuid?: string;
  externalId?: string;
  change: boolean;
}

/** Input of WatchSession. */
export interface SessionWatchInput {
  address: SessionAddress;
  afterSeq: number;
  afterChange: number;
}

export interface Watches {
  watchSession(input: SessionWatchInput, signal: AbortSignal): AsyncGenerator<SessionWatchEvent>;
  watchSessions(input: FeedWatchInput, signal: AbortSignal): AsyncGenerator<FeedWatchEvent>;
  /** A write of this process committed: wakes the watchers here and signals the other processes. */
  changed(namespaceId: string, session: { uuid: string } | { externalId: string }, change: boolean): void;
  /** Signals from other processes. */
  received(signals: readonly ChangeSignal[]): void;
  /** Signals may have been lost (the signal connection came back): reads every watched session and feed again. */
  resync(): void;
  /** Where this process's signals go (the signal connection), once it is up. */
  connect(broadcast: (signal: ChangeSignal) => void): void;
  stats(): { watchers: number; sessions: number; feeds: number; overflows: number };
  /**
   * Ends every watch with unavailable and its position; new watches are refused. Resolves once they have
   * ended, or after `graceMs` (a watch whose client reads nothing cannot end before it reads).
   */
  stop(graceMs?: number): Promise<void>;
}

/** A turn or change in a topic's ring, with the position after it. */
interface Item {
  event: SessionWatchEvent & ({ type: "turn" } | { type: "change" });
  bytes: number;
}

/** A watched session in this process. */
interface Topic {
  namespaceId: string;
  uuid: string;
  externalId: string;
  watchers: number;
  /** Position of the last item read (undefined until the first read). */
  head?: WatchPosition;
  /** The position before ring[0]. */
  start?: WatchPosition;
  ring: Item[];
  bytes: number;
  /** Its deletion was read: nothing follows. */
  gone: boolean;
  reading?: Promise<void>;
  again: boolean;
  lastRead: number;
  wake: Deferred;
}

/** A watched namespace feed in this process. */
interface FeedTopic {
  namespaceId: string;
  watchers: number;
  sequencing?: Promise<void>;
  /** Asked for while a pass ran: one more pass follows (it may not have seen what was asked about). */
  sequenceAgain: boolean;
  lastWake: number;
  wake: Deferred;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Whether `a` is after `b` in a stream (positions grow in both parts). */
const isAfter = (a: WatchPosition, b: WatchPosition) => a.seq > b.seq || a.change > b.change;

const itemBytes = (e: Item["event"]) => (e.type === "turn" ? 200 + e.turn.content.length * 2 : 500);

/** The feed cursor a position number is. */
const cursorOf = (position: bigint) => position.toString();

export function createWatches(deps: { store: WatchStore; sessions: SessionStore; limits?: Partial<WatchLimits>; log?: (err: unknown, context: string) => void }): Watches {
  const { store, sessions } = deps;
  const limits: WatchLimits = { ...DEFAULT_WATCH_LIMITS, ...deps.limits };
  const topics = new Map<string, Topic>();
  const feeds = new Map<string, FeedTopic>();
  let watchers = 0;
  let overflows = 0;
  /** Resolved when the last watcher ends (during stop). */
  let idle: Deferred | undefined;
  let stopping = false;
  const stopped = deferred();
  let broadcast: ((signal: ChangeSignal) => void) | undefined;
  let poller: NodeJS.Timeout | undefined;

  // Read slots: the watchers' share of the pool.
  let reading = 0;
  const queue: (() => void)[] = [];
  async function withRead<T>(read: () => Promise<T>): Promise<T> {
    if (reading >= limits.reads) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = queue.indexOf(go);
          if (i >= 0) queue.splice(i, 1);
          reject(new StoreBusyError(`no database read for the watch within ${limits.readWaitMs} ms; resume in a moment`));
        }, limits.readWaitMs);
        const go = () => {
          clearTimeout(timer);
          resolve();
        };
        queue.push(go);
      });
    } else reading++;
    try {
      return await read();
    } finally {
      const next = queue.shift();
      if (next) next();
      else reading--;
    }
  }

  function admit() {
    if (stopping) throw new WatchEndedError("the server is shutting down; watch again (another server, or this one once restarted)", "shutdown", { seq: 0, change: 0, cursor: "" });
    if (watchers >= limits.maxWatchers) throw new RateLimitedError(`this server already serves ${limits.maxWatchers} watches (SESSIOND_MAX_WATCHERS); try again later or on another server`, 1000);
    watchers++;
    ensurePoller();
  }

  function ensurePoller() {
    if (poller) return;
    poller = setInterval(() => {
      const now = Date.now();
      for (const t of topics.values()) if (now - t.lastRead >= limits.pollMs) void refresh(t);
      for (const f of feeds.values()) if (now - f.lastWake >= limits.pollMs) wakeFeed(f);
      if (!topics.size && !feeds.size && poller) {
        clearInterval(poller);
        poller = undefined;
      }
    }, Math.max(50, Math.min(limits.pollMs, 1000)));
    poller.unref();
  }

  /** A deleted change for a session that went without one recorded (its namespace was deleted). */
  function goneChange(t: { namespaceId: string; uuid: string; externalId: string }, pos: WatchPosition): SessionChange {
    return { kind: "deleted", change: pos.change + 1, changeTime: new Date(), atSeq: pos.seq, namespaceId: t.namespaceId, uuid: t.uuid, externalId: t.externalId };
  }

  /**
   * What came after `from` for the session of `t`, in order (at most about `max` items): changes, and
   * before each the turns up to its seq; then the turns up to the session's last seq. `end` when its
   * deletion is among them.
   */
  async function readAfter(t: Pick<Topic, "namespaceId" | "uuid" | "externalId">, from: WatchPosition, max: number): Promise<{ items: Item[]; pos: WatchPosition; end: boolean }> {
    const items: Item[] = [];
    let { seq, change } = from;
    const push = (event: Item["event"]) => items.push({ event, bytes: itemBytes(event) });
    const pushTurns = async (until: number): Promise<boolean> => {
      const turns = await withRead(() => store.turns(t.namespaceId, t.uuid, seq, until, PAGE));
      for (const turn of turns) push({ type: "turn", turn, position: { seq: turn.seq, change } });
      if (turns.length === PAGE) {
        seq = turns[turns.length - 1].seq;
        return false;
      }
      // Turns in between that are not there went with a truncate (its change says how many).
      seq = until;
      return true;
    };
    for (;;) {
      const { head, changes } = await withRead(() => store.changes(t.namespaceId, t.uuid, change, PAGE));
      let more = changes.length === PAGE;
      for (const c of changes) {
        if (seq < c.atSeq && !(await pushTurns(c.atSeq))) {
          more = true;
          break;
        }
        seq = Math.max(seq, c.atSeq);
        change = c.change;
        push({ type: "change", change: c, position: { seq, change } });
        if (c.kind === "deleted") return { items, pos: { seq, change }, end: true };
        if (items.length >= max) return { items, pos: { seq, change }, end: false };
      }
      if (more) {
        if (items.length >= max) return { items, pos: { seq, change }, end: false };
        continue;
      }
      if (!head) {
        const gone = goneChange(t, { seq, change });
        push({ type: "change", change: gone, position: { seq, change: gone.change } });
        return { items, pos: { seq, change: gone.change }, end: true };
      }
      if (seq < head.lastSeq && !(await pushTurns(head.lastSeq)) && items.length < max) continue;
      return { items, pos: { seq, change }, end: false };
    }
  }

  /** Topics by namespace and caller id too (AppendTurns by session_id knows no uuid). */
  const byExternalId = new Map<string, Topic>();

  function topicOf(namespaceId: string, uuid: string, externalId: string): Topic {
    const key = `${namespaceId}/${uuid}`;
    let t = topics.get(key);
    if (!t) {
      t = { namespaceId, uuid, externalId, watchers: 0, ring: [], bytes: 0, gone: false, again: false, lastRead: 0, wake: deferred() };
      topics.set(key, t);
      byExternalId.set(`${namespaceId}#${externalId}`, t);
    }
    t.watchers++;
    return t;
  }

  function release(t: Topic) {
    if (--t.watchers > 0) return;
    topics.delete(`${t.namespaceId}/${t.uuid}`);
    if (byExternalId.get(`${t.namespaceId}#${t.externalId}`) === t) byExternalId.delete(`${t.namespaceId}#${t.externalId}`);
  }

  /** Reads what is new for the topic (once, however many ask meanwhile), then wakes its watchers. */
  function refresh(t: Topic): Promise<void> {
    if (t.reading) {
      t.again = true;
      return t.reading;
    }
    t.reading = (async () => {
      do {
        t.again = false;
        t.lastRead = Date.now();
        try {
          if (!t.head) {
            const { head } = await withRead(() => store.changes(t.namespaceId, t.uuid, Number.MAX_SAFE_INTEGER, 1));
            if (!head) {
              // Gone before the topic began: its watchers read the end themselves.
              t.head = t.start = { seq: Number.MAX_SAFE_INTEGER, change: Number.MAX_SAFE_INTEGER };
              t.gone = true;
            } else t.head = t.start = { seq: head.lastSeq, change: head.change };
          } else if (!t.gone) {
            const r = await readAfter(t, t.head, limits.buffer);
            for (const item of r.items) {
              t.ring.push(item);
              t.bytes += item.bytes;
            }
            t.head = r.pos;
            t.gone = r.end;
            while (t.ring.length > limits.buffer || (t.bytes > limits.bufferBytes && t.ring.length > 1)) {
              const old = t.ring.shift()!;
              t.bytes -= old.bytes;
              t.start = old.event.position;
            }
            if (!t.ring.length) t.start = t.head;
          }
        } catch (err) {
          // Read again at the next signal or poll; the watchers' own reads report a lasting fault.
          deps.log?.(err, "reading a watched session");
        }
        const wake = t.wake;
        t.wake = deferred();
        wake.resolve();
      } while (t.again && !t.gone && !stopping);
    })().finally(() => (t.reading = undefined));
    return t.reading;
  }

  /** Items of the ring after `pos`: undefined when `pos` is before the ring (behind it), or the topic has not read yet. */
  function fromRing(t: Topic, pos: WatchPosition): Item[] | undefined {
    if (!t.head || !t.start) return undefined;
    if (isAfter(t.start, pos)) return undefined;
    const i = t.ring.findIndex((item) => isAfter(item.event.position, pos));
    return i < 0 ? [] : t.ring.slice(i, i + PAGE);
  }

  /** Waits for `wake`, the heartbeat interval, the client going, or shutdown. */
  function waitFor(wake: Promise<void>, ms: number, signal: AbortSignal): Promise<"wake" | "idle" | "end"> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (why: "wake" | "idle" | "end") => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(why);
      };
      const onAbort = () => done("end");
      if (signal.aborted || stopping) return resolve("end");
      timer = setTimeout(() => done("idle"), Math.max(0, ms));
      signal.addEventListener("abort", onAbort);
      wake.then(() => done("wake"));
      stopped.promise.then(() => done("end"));
    });
  }

  function checkNotStopping(pos: WatchPosition, cursor = "") {
    if (stopping) throw new WatchEndedError(`the server is shutting down; resume from seq ${pos.seq}, change ${pos.change}${cursor ? `, cursor ${cursor}` : ""}`, "shutdown", { ...pos, cursor });
  }

  async function* watchSession(input: SessionWatchInput, signal: AbortSignal): AsyncGenerator<SessionWatchEvent> {
    if (!Number.isSafeInteger(input.afterSeq) || input.afterSeq < 0) throw new InvalidInputError("after_seq", "must be 0 or more");
    if (!Number.isSafeInteger(input.afterChange) || input.afterChange < 0) throw new InvalidInputError("after_change", "must be 0 or more");
    const session = await loadSession(sessions, input.address);
    admit();
    const t = topicOf(session.namespaceId, session.uuid, session.sessionId);
    try {
      let pos: WatchPosition = { seq: input.afterSeq, change: input.afterChange };
      const snapshot = async (resync: boolean): Promise<SessionWatchEvent | undefined> => {
        const snap = await withRead(() => store.snapshot(t.namespaceId, t.uuid));
        if (!snap) return undefined;
        const participants: Participant[] = await withRead(() => store.participants(t.namespaceId, t.uuid));
        if (input.afterSeq > snap.head.lastSeq) throw new InvalidInputError("after_seq", `is past the session's last turn (${snap.head.lastSeq})`);
        pos = { seq: input.afterSeq, change: snap.head.change };
        return { type: "snapshot", session: sessionOf(snap.session), participants, lastSeq: snap.head.lastSeq, resync, position: pos };
      };
      let first: SessionWatchEvent | undefined;
      if (input.afterChange === 0) {
        first = await snapshot(false);
      } else {
        const { head, changes } = await withRead(() => store.changes(t.namespaceId, t.uuid, input.afterChange, 1));
        if (head && input.afterChange > head.change) throw new InvalidInputError("after_change", `is past the session's last change (${head.change})`);
        if (head && input.afterSeq > head.lastSeq) throw new InvalidInputError("after_seq", `is past the session's last turn (${head.lastSeq})`);
        // The changes after the position were pruned: a fresh snapshot sums them up.
        if (head && head.change > input.afterChange && changes[0]?.change !== input.afterChange + 1) first = await snapshot(true);
        else if (!head && !changes.length) first = undefined;
      }
      let lastSent = Date.now();
      if (first) yield first;
      await refresh(t);
      let live = false;
      for (;;) {
        checkNotStopping(pos);
        if (signal.aborted) return;
        // Taken before looking: a read that lands after the look still wakes the wait below.
        const wake = t.wake.promise;
        let items = fromRing(t, pos);
        if (!items && live && !t.head) {
          // The topic has not read yet (its first read failed): it reads again, and wakes this one.
          void refresh(t);
          items = [];
        }
        if (!items) {
          if (live) {
            overflows++;
            throw new WatchEndedError(
              `this stream fell more than ${limits.buffer} changes behind the session (its client reads too slowly); resume from seq ${pos.seq}, change ${pos.change}`,
              "overflow",
              { ...pos, cursor: "" },
            );
          }
          const r = await readAfter(t, pos, PAGE);
          items = r.items;
          if (!items.length) pos = r.pos;
        }
        for (const item of items) {
          checkNotStopping(pos);
          yield item.event;
          lastSent = Date.now();
          pos = item.event.position;
          if (item.event.type === "change" && item.event.change.kind === "deleted") return;
        }
        if (items.length) continue;
        // This watcher read past the topic (by itself, from behind the ring): the topic catches up, and
        // its ring serves the watcher again from there on.
        if (!t.head || isAfter(pos, t.head)) void refresh(t);
        if (!live) {
          live = true;
          yield { type: "caught_up", position: pos };
          lastSent = Date.now();
          continue;
        }
        const why = await waitFor(wake, limits.heartbeatMs - (Date.now() - lastSent), signal);
        if (why === "idle") {
          yield { type: "heartbeat", time: new Date(), position: pos };
          lastSent = Date.now();
        }
      }
    } finally {
      release(t);
      if (--watchers === 0) idle?.resolve();
    }
  }

  function feedOf(namespaceId: string): FeedTopic {
    let f = feeds.get(namespaceId);
    if (!f) {
      f = { namespaceId, watchers: 0, sequenceAgain: false, lastWake: Date.now(), wake: deferred() };
      feeds.set(namespaceId, f);
    }
    f.watchers++;
    return f;
  }

  function wakeFeed(f: FeedTopic) {
    f.lastWake = Date.now();
    const wake = f.wake;
    f.wake = deferred();
    wake.resolve();
  }

  /**
   * Gives feed positions to what was recorded (one pass at a time per namespace in this process); the
   * promise settles after a pass that began after the call.
   */
  function sequence(f: FeedTopic): Promise<void> {
    if (f.sequencing) {
      f.sequenceAgain = true;
      return f.sequencing;
    }
    f.sequencing = (async () => {
      do {
        f.sequenceAgain = false;
        // Another process's pass holds the lock for one short statement: try again shortly.
        for (let attempt = 0; attempt < 40; attempt++) {
          const n = await withRead(() => store.sequenceFeed(f.namespaceId, 1000));
          if (n === undefined) await new Promise((r) => setTimeout(r, 25));
          else if (n < 1000) break;
        }
      } while (f.sequenceAgain && !stopping);
    })().finally(() => (f.sequencing = undefined));
    return f.sequencing;
  }

  async function* watchSessions(input: FeedWatchInput, signal: AbortSignal): AsyncGenerator<FeedWatchEvent> {
    const namespace = checkNamespace(input.namespace);
    const filter = checkFilter(input.filter);
    const kinds = new Set<ChangeKind>(input.kinds.length ? input.kinds : DEFAULT_FEED_KINDS);
    for (const [i, k] of input.kinds.entries()) if (!CHANGE_KINDS.includes(k)) throw new InvalidInputError(`kinds[${i}]`, "unknown kind");
    let cursor: bigint | undefined;
    if (input.after) {
      if (!/^[1-9]\d{0,18}$/.test(input.after)) throw new InvalidInputError("after", "not a cursor this server gave (WatchPosition.cursor)");
      cursor = BigInt(input.after);
      if (cursor > 0x7fffffffffffffffn) throw new InvalidInputError("after", "not a cursor this server gave (WatchPosition.cursor)");
      const oldest = BigInt(Date.now() - limits.retentionMs) * 1000n;
      if (cursor < oldest) throw new OutOfRangeError(`after: the cursor is older than the changes kept (${Math.round(limits.retentionMs / 3600_000)} h); list the sessions and watch again without it`);
    }
    const namespaceId = (await sessions.namespaceId(namespace, true))!;
    admit();
    const f = feedOf(namespaceId);
    try {
      await sequence(f);
      let live = false;
      let lastSent = Date.now();
      if (cursor === undefined) {
        cursor = await withRead(() => store.feedHead(namespaceId));
        live = true;
        yield { type: "caught_up", cursor: cursorOf(cursor) };
        lastSent = Date.now();
      }
      let woken = false;
      for (;;) {
        checkNotStopping({ seq: 0, change: 0 }, cursorOf(cursor));
        if (signal.aborted) return;
        // Taken before the pass: a signal during it still wakes the wait below.
        const wake = f.wake.promise;
        if (woken) await sequence(f);
        woken = false;
        const rows = await withRead(() => store.feed(namespaceId, cursor!, [...kinds], PAGE));
        for (const c of rows) {
          cursor = BigInt(c.feedPosition!);
          if (kinds.has(c.kind) && matchesFilter(c.session, filter)) {
            checkNotStopping({ seq: 0, change: 0 }, cursorOf(cursor));
            yield { type: "change", change: c, cursor: cursorOf(cursor) };
            lastSent = Date.now();
          }
        }
        if (rows.length === PAGE) continue;
        if (!live) {
          live = true;
          yield { type: "caught_up", cursor: cursorOf(cursor) };
          lastSent = Date.now();
          continue;
        }
        const why = await waitFor(wake, limits.heartbeatMs - (Date.now() - lastSent), signal);
        if (why === "idle") {
          yield { type: "heartbeat", time: new Date(), cursor: cursorOf(cursor) };
          lastSent = Date.now();
        }
        woken = true;
      }
    } finally {
      if (--f.watchers === 0) feeds.delete(namespaceId);
      if (--watchers === 0) idle?.resolve();
    }
  }

  function wake(s: ChangeSignal) {
    const t = s.uuid !== undefined ? topics.get(`${s.namespaceId}/${s.uuid}`) : byExternalId.get(`${s.namespaceId}#${s.externalId}`);
    if (t) void refresh(t);
    if (s.change) {
      const f = feeds.get(s.namespaceId);
      if (f) wakeFeed(f);
    }
  }

  return {
    watchSession,
    watchSessions,
    changed(namespaceId, session, change) {
      const s: ChangeSignal = { namespaceId, ...session, change };
      wake(s);
      broadcast?.(s);
    },
    received(signals) {
      for (const s of signals) wake(s);
    },
    resync() {
      for (const t of topics.values()) void refresh(t);
      for (const f of feeds.values()) wakeFeed(f);
    },
    connect(b) {
      broadcast = b;
    },
    stats: () => ({ watchers, sessions: topics.size, feeds: feeds.size, overflows }),
    async stop(graceMs = 1000) {
      stopping = true;
      stopped.resolve();
      if (poller) clearInterval(poller);
      poller = undefined;
      if (!watchers) return;
      idle = deferred();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([idle.promise, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    },
  };
}
