/**
 * Live sessions: WatchSession (one session's turns and changes) and WatchSessions (a namespace's feed
 * of session changes), from whichever process the writes went through.
 *
 * How a change reaches a watcher: the writer's statement records it (turns in `turns` by seq, other
 * changes in session_changes by change number); once it commits, the writing process calls `changed`,
 * which wakes its own watchers at once and signals the other processes (through one LISTEN/NOTIFY
 * connection per process, db/change-signals.ts). A signal only wakes: data is always read by position,
 * so a lost signal loses nothing, and the heads of every watched session are read again every
 * `pollMs` without one (one statement for all of them).
 *
 * What it costs: each watched session has one topic per process, which reads what is new once per wake
 * (not once per watcher) and keeps it in a ring that its live watchers are served from; an item leaves
 * the ring once every live watcher is past it (or the ring is over `buffer` items or `bufferBytes`). A
 * watcher whose next items are not in the ring (replaying, resumed from an old position, or overtaken)
 * reads them from the database itself, a page at a time, as its client takes them. Every read goes
 * through `reads` slots: the watchers of a process hold at most that many pooled connections, however
 * many they are, and never one while they wait. A live watcher more than `buffer` items behind its
 * session (a client too slow for it) ends with RESOURCE_EXHAUSTED and its position; it resumes from
 * there by replay.
 *
 * Positions: a turn is new to a watcher at (seq, change) when its seq is greater, a change when its
 * number is; the position after an item is the watcher's own (a snapshot's position is not one the
 * stream passes through), so items of the shared ring are filtered and positioned per watcher.
 */
import type { Participant } from "./conversation-model.js";
import { InvalidInputError, NotFoundError, OutOfRangeError, RateLimitedError, StoreBusyError, WatchEndedError } from "./errors.js";
import { checkFilter, checkNamespace, sessionOf } from "./session-model.js";
import { loadSession, type SessionAddress } from "./session-service.js";
import type { SessionStore } from "./session-store.js";
import { createSlots } from "./slots.js";
import type { SessionHead, WatchStore } from "./watch-store.js";
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
  /** Items (turns and changes) a live watcher may fall behind its session. */
  buffer: number;
  /** Bytes of items a session's ring keeps at most (then its watchers read older ones from the database). */
  bufferBytes: number;
  /** Idle streams get a heartbeat this often. */
  heartbeatMs: number;
  /** The heads of watched sessions (and the feeds) are read again this often without a signal. */
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
/** Watched sessions whose heads one poll statement reads. */
const POLL_CHUNK = 500;

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
  /**
   * The caller is the session's client secret: participants come without their metadata and insights
   * (a client secret may not list them), and the stream ends once the secret is no longer accepted.
   */
  limited?: boolean;
  /** Checks the caller's credential again (at every heartbeat, and after changes that may revoke it). @throws when it is no longer accepted */
  recheck?: () => Promise<void>;
}

export interface Watches {
  watchSession(input: SessionWatchInput, signal: AbortSignal): AsyncGenerator<SessionWatchEvent>;
  watchSessions(input: FeedWatchInput & { recheck?: () => Promise<void> }, signal: AbortSignal): AsyncGenerator<FeedWatchEvent>;
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

/** A turn or change in a topic's ring, with the position after it in the topic's own stream. */
interface Item {
  event: SessionWatchEvent & ({ type: "turn" } | { type: "change" });
  bytes: number;
}

/** Why a watcher stopped waiting. */
type Wake = "wake" | "idle" | "end";

/**
 * How a watcher waits: one object for its whole life, registered once with what can wake it (its topic
 * or feed, the heartbeat sweep, shutdown, its client going), so that a wait allocates no timer, listener
 * or callback of its own (a busy session wakes each of its watchers for every change).
 */
class Sleeper {
  private resolve?: (why: Wake) => void;
  /** When the watcher last sent a message (the heartbeat sweep wakes it `heartbeatMs` after). */
  lastSent = Date.now();
  wake(why: Wake): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.(why);
  }
  get sleeping(): boolean {
    return this.resolve !== undefined;
  }
  sleep(): Promise<Wake> {
    return new Promise((resolve) => (this.resolve = resolve));
  }
}

/** Sleepers to wake together (a topic's or a feed's watchers). */
class Waiters {
  private readonly set = new Set<Sleeper>();
  add(s: Sleeper): void {
    this.set.add(s);
  }
  delete(s: Sleeper): void {
    this.set.delete(s);
  }
  notify(): void {
    for (const s of this.set) s.wake("wake");
  }
}

/** A watched session in this process. */
interface Topic {
  namespaceId: string;
  uuid: string;
  externalId: string;
  /** The positions of its live watchers (what the ring must still hold). */
  live: Set<{ pos: WatchPosition }>;
  watchers: number;
  /** Position of the last item read (undefined until the first read). */
  head?: WatchPosition;
  /** The position before ring[0] in the topic's stream. */
  start?: WatchPosition;
  ring: Item[];
  bytes: number;
  /** Its deletion was read: nothing follows. */
  gone: boolean;
  reading?: Promise<void>;
  again: boolean;
  lastRead: number;
  /** Bumped whenever the topic read something new (or found its session gone). */
  version: number;
  waiters: Waiters;
}

/** A watched namespace feed in this process. */
interface FeedTopic {
  namespaceId: string;
  watchers: number;
  sequencing?: Promise<bigint | undefined>;
  /** Asked for while a pass ran: one more pass follows (it may not have seen what was asked about). */
  sequenceAgain: boolean;
  lastWake: number;
  /** Bumped by every signal for the namespace (and every poll). */
  signals: number;
  waiters: Waiters;
}

/** Whether `a` is after `b` in a stream (positions grow in both parts). */
const isAfter = (a: WatchPosition, b: WatchPosition) => a.seq > b.seq || a.change > b.change;

/** Whether the ring's item is new to a watcher at `pos`: a turn it has not had, a change it has not had. */
const isNew = (e: Item["event"], pos: WatchPosition) => (e.type === "turn" ? e.turn.seq > pos.seq : e.change.change > pos.change);

/** The position after `e` of a watcher at `pos`. */
const advance = (e: Item["event"], pos: WatchPosition): WatchPosition =>
  e.type === "turn" ? { seq: Math.max(pos.seq, e.turn.seq), change: pos.change } : { seq: Math.max(pos.seq, e.change.atSeq), change: e.change.change };

/** A rough size of an item held in memory. */
function itemBytes(e: Item["event"]): number {
  if (e.type === "change") return 1000 + (e.change.session ? JSON.stringify(e.change.session.data).length + JSON.stringify(e.change.session.labels).length : 0);
  const t = e.turn;
  return 300 + t.content.length * 2 + (t.toolCalls.length ? JSON.stringify(t.toolCalls).length * 2 : 0) + (Object.keys(t.metadata).length ? JSON.stringify(t.metadata).length * 2 : 0);
}

/** The feed cursor a position number is. */
const cursorOf = (position: bigint) => position.toString();

/** A participant as a client secret sees it: who, of which kind, and when (not its metadata or insights). */
const limitedParticipant = (p: Participant): Participant => ({ ...p, metadata: {}, insights: [] });

export function createWatches(deps: { store: WatchStore; sessions: SessionStore; limits?: Partial<WatchLimits>; log?: (err: unknown, context: string) => void }): Watches {
  const { store, sessions } = deps;
  const limits: WatchLimits = { ...DEFAULT_WATCH_LIMITS, ...deps.limits };
  const topics = new Map<string, Topic>();
  /** Topics by namespace and caller id too (AppendTurns by session_id knows no uuid). */
  const byExternalId = new Map<string, Topic>();
  const feeds = new Map<string, FeedTopic>();
  let watchers = 0;
  let overflows = 0;
  let stopping = false;
  /** Every watcher's sleeper: for shutdown and the heartbeat sweep. */
  const sleepers = new Set<Sleeper>();
  let sweeper: NodeJS.Timeout | undefined;
  /** Told when the last watcher ends (during stop). */
  let idle: (() => void) | undefined;
  let broadcast: ((signal: ChangeSignal) => void) | undefined;
  let poller: NodeJS.Timeout | undefined;
  let polling = false;

  // Read slots: the watchers' share of the pool.
  const withRead = createSlots(limits.reads, limits.readWaitMs, () => new StoreBusyError(`no database read for the watch within ${limits.readWaitMs} ms; resume in a moment`));

  function shutdownError(pos: WatchPosition, cursor = ""): WatchEndedError {
    return new WatchEndedError(
      `the server is shutting down; watch again from seq ${pos.seq}, change ${pos.change}${cursor ? `, cursor ${cursor}` : ""} (another server, or this one once restarted)`,
      "shutdown",
      { ...pos, cursor },
    );
  }

  /** Counts a new watcher. @throws when stopping (with the position the call asked for) or at the limit */
  function admit(pos: WatchPosition, cursor = "") {
    if (stopping) throw shutdownError(pos, cursor);
    if (watchers >= limits.maxWatchers) throw new RateLimitedError(`this server already serves ${limits.maxWatchers} watches (SESSIOND_MAX_WATCHERS); try again later or on another server`, 1000);
    watchers++;
    ensurePoller();
  }

  function leave() {
    if (--watchers === 0) idle?.();
  }

  function ensurePoller() {
    if (poller) return;
    poller = setInterval(() => {
      if (!topics.size && !feeds.size) {
        clearInterval(poller);
        poller = undefined;
        return;
      }
      void poll();
    }, Math.max(50, Math.min(limits.pollMs, 1000)));
    poller.unref();
  }

  /**
   * Reads the heads of the watched sessions not read for pollMs (one statement per POLL_CHUNK of them)
   * and refreshes those that moved or went; wakes the feeds not woken for pollMs.
   */
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const now = Date.now();
      for (const f of feeds.values()) if (now - f.lastWake >= limits.pollMs) wakeFeed(f);
      const due = [...topics.values()].filter((t) => now - t.lastRead >= limits.pollMs && !t.reading);
      for (let i = 0; i < due.length; i += POLL_CHUNK) {
        const chunk = due.slice(i, i + POLL_CHUNK);
        for (const t of chunk) t.lastRead = now;
        let heads: Map<string, SessionHead>;
        try {
          heads = await withRead(() => store.heads(chunk.map((t) => ({ namespaceId: t.namespaceId, uuid: t.uuid }))));
        } catch (err) {
          deps.log?.(err, "polling watched sessions");
          return;
        }
        for (const t of chunk) {
          const h = heads.get(`${t.namespaceId}/${t.uuid}`);
          if (!t.head || !h || h.lastSeq !== t.head.seq || h.change !== t.head.change) void refresh(t);
        }
      }
    } finally {
      polling = false;
    }
  }

  /** A deleted change for a session that went without one recorded (its namespace was deleted). */
  function goneChange(t: { namespaceId: string; uuid: string; externalId: string }, pos: WatchPosition): SessionChange {
    return { kind: "deleted", change: pos.change + 1, changeTime: new Date(), atSeq: pos.seq, namespaceId: t.namespaceId, uuid: t.uuid, externalId: t.externalId };
  }

  /**
   * What came after `from` for the session of `t`, in order (at most about `max` items): changes, and
   * before each the turns up to its seq; then the turns up to the session's last seq. `end` when its
   * deletion is among them; `gap` when the next change is no longer kept (pruned): nothing is returned
   * then, and the caller starts again from a snapshot.
   */
  async function readAfter(
    t: Pick<Topic, "namespaceId" | "uuid" | "externalId">,
    from: WatchPosition,
    max: number,
  ): Promise<{ items: Item[]; pos: WatchPosition; end: boolean; gap: boolean; head?: SessionHead }> {
    const items: Item[] = [];
    let { seq, change } = from;
    let last: SessionHead | undefined;
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
      last = head;
      // The next change is gone while later ones (or the session's count) say it was made: pruned.
      if (changes.length ? changes[0].change !== change + 1 : head !== undefined && head.change > change) return { items, pos: { seq, change }, end: false, gap: true, head: last };
      let more = changes.length === PAGE;
      for (const c of changes) {
        if (seq < c.atSeq && !(await pushTurns(c.atSeq))) {
          more = true;
          break;
        }
        seq = Math.max(seq, c.atSeq);
        change = c.change;
        push({ type: "change", change: c, position: { seq, change } });
        if (c.kind === "deleted") return { items, pos: { seq, change }, end: true, gap: false, head: last };
        if (items.length >= max) return { items, pos: { seq, change }, end: false, gap: false, head: last };
      }
      if (more) {
        if (items.length >= max) return { items, pos: { seq, change }, end: false, gap: false, head: last };
        continue;
      }
      if (!head) {
        const gone = goneChange(t, { seq, change });
        push({ type: "change", change: gone, position: { seq, change: gone.change } });
        return { items, pos: { seq, change: gone.change }, end: true, gap: false, head: last };
      }
      if (seq < head.lastSeq && !(await pushTurns(head.lastSeq)) && items.length < max) continue;
      return { items, pos: { seq, change }, end: false, gap: false, head: last };
    }
  }

  function topicOf(namespaceId: string, uuid: string, externalId: string): Topic {
    const key = `${namespaceId}/${uuid}`;
    let t = topics.get(key);
    if (!t) {
      t = { namespaceId, uuid, externalId, live: new Set(), watchers: 0, ring: [], bytes: 0, gone: false, again: false, lastRead: 0, version: 0, waiters: new Waiters() };
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

  /** Drops what no live watcher still needs, and what is over the ring's bounds. */
  function trim(t: Topic) {
    let minSeq = Infinity;
    let minChange = Infinity;
    for (const w of t.live) {
      minSeq = Math.min(minSeq, w.pos.seq);
      minChange = Math.min(minChange, w.pos.change);
    }
    const passed = (e: Item["event"]) => (e.type === "turn" ? e.turn.seq <= minSeq : e.change.change <= minChange);
    while (t.ring.length && (t.ring.length > limits.buffer || t.bytes > limits.bufferBytes || passed(t.ring[0].event))) {
      const old = t.ring.shift()!;
      t.bytes -= old.bytes;
      t.start = old.event.position;
    }
  }

  /** Reads what is new for the topic (once, however many ask meanwhile, a page at a time), waking its watchers after each page. */
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
            t.version++;
            t.waiters.notify();
          }
          for (let more = !t.gone; more && !stopping; ) {
            const r = await readAfter(t, t.head!, PAGE);
            if (r.gap) {
              // The topic's own next change was pruned (it lagged a whole retention period): start over.
              t.ring = [];
              t.bytes = 0;
              t.head = undefined;
              t.again = true;
              break;
            }
            for (const item of r.items) {
              t.ring.push(item);
              t.bytes += item.bytes;
            }
            const moved = isAfter(r.pos, t.head!);
            t.head = r.pos;
            t.gone = r.end;
            if (!t.ring.length) t.start = t.head;
            trim(t);
            if (!t.ring.length) t.start = t.head;
            if (moved || r.end) {
              t.version++;
              t.waiters.notify();
            }
            more = !r.end && r.items.length >= PAGE;
          }
        } catch (err) {
          // Read again at the next poll (not at once: an outage would make it a busy loop); the
          // watchers' own reads report a lasting fault.
          deps.log?.(err, "reading a watched session");
          t.again = false;
        }
      } while (t.again && !t.gone && !stopping);
    })().finally(() => (t.reading = undefined));
    return t.reading;
  }

  /**
   * The items of the ring new to a watcher at `pos`, with the watcher's positions after each: undefined
   * when some may be missing (`pos` is before the ring, or the topic has not read yet).
   */
  function fromRing(t: Topic, pos: WatchPosition): SessionWatchEvent[] | undefined {
    if (!t.head || !t.start || isAfter(t.start, pos)) return undefined;
    // Positions in the ring grow: skip what is not after `pos` by bisection, then keep what is new.
    let lo = 0;
    let hi = t.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (isAfter(t.ring[mid].event.position, pos)) hi = mid;
      else lo = mid + 1;
    }
    const out: SessionWatchEvent[] = [];
    let at = pos;
    for (let i = lo; i < t.ring.length && out.length < PAGE; i++) {
      const e = t.ring[i].event;
      if (!isNew(e, at)) continue;
      const next = advance(e, at);
      out.push(next.seq === e.position.seq && next.change === e.position.change ? e : { ...e, position: next });
      at = next;
    }
    return out;
  }

  /**
   * A watcher's sleeper, registered with `waiters`, shutdown, the heartbeat sweep and `signal`; the
   * returned function unregisters it all.
   */
  function sleeperFor(waiters: Waiters, signal: AbortSignal): { sleeper: Sleeper; done(): void } {
    const sleeper = new Sleeper();
    const onAbort = () => sleeper.wake("end");
    signal.addEventListener("abort", onAbort);
    waiters.add(sleeper);
    sleepers.add(sleeper);
    if (!sweeper) {
      // Heartbeats: one timer for every watcher of the process.
      sweeper = setInterval(() => {
        if (!sleepers.size) {
          clearInterval(sweeper);
          sweeper = undefined;
          return;
        }
        const due = Date.now() - limits.heartbeatMs;
        for (const s of sleepers) if (s.sleeping && s.lastSent <= due) s.wake("idle");
      }, Math.max(25, Math.min(1000, limits.heartbeatMs / 4)));
      sweeper.unref();
    }
    return {
      sleeper,
      done() {
        signal.removeEventListener("abort", onAbort);
        waiters.delete(sleeper);
        sleepers.delete(sleeper);
      },
    };
  }

  /** Waits until `ready()` (checked first), a wake, the heartbeat's time, the client going, or shutdown. */
  function waitFor(ready: () => boolean, sleeper: Sleeper, signal: AbortSignal): Promise<Wake> {
    if (signal.aborted || stopping) return Promise.resolve("end");
    if (ready()) return Promise.resolve("wake");
    if (Date.now() - sleeper.lastSent >= limits.heartbeatMs) return Promise.resolve("idle");
    return sleeper.sleep();
  }

  async function* watchSession(input: SessionWatchInput, signal: AbortSignal): AsyncGenerator<SessionWatchEvent> {
    if (!Number.isSafeInteger(input.afterSeq) || input.afterSeq < 0) throw new InvalidInputError("after_seq", "must be 0 or more");
    if (!Number.isSafeInteger(input.afterChange) || input.afterChange < 0) throw new InvalidInputError("after_change", "must be 0 or more");
    // Soft-deleted sessions too: a watch that saw SOFT_DELETED resumes to see what follows.
    const session = await loadSession(sessions, input.address, { showDeleted: true });
    let pos: WatchPosition = { seq: input.afterSeq, change: input.afterChange };
    admit(pos);
    const t = topicOf(session.namespaceId, session.uuid, session.sessionId);
    const sleep = sleeperFor(t.waiters, signal);
    const me = { pos };
    const shown = (e: SessionWatchEvent): SessionWatchEvent => {
      if (!input.limited) return e;
      if (e.type === "snapshot") return { ...e, participants: e.participants.map(limitedParticipant) };
      if (e.type === "change" && e.change.participant) return { ...e, change: { ...e.change, participant: limitedParticipant(e.change.participant) } };
      return e;
    };
    try {
      const snapshot = async (resync: boolean): Promise<SessionWatchEvent | undefined> => {
        const snap = await withRead(() => store.snapshot(t.namespaceId, t.uuid));
        if (!snap) return undefined;
        if (input.afterSeq > snap.head.lastSeq) throw new InvalidInputError("after_seq", `is past the session's last turn (${snap.head.lastSeq})`);
        pos = { seq: Math.max(pos.seq, input.afterSeq), change: snap.head.change };
        return { type: "snapshot", session: sessionOf(snap.session), participants: snap.participants, lastSeq: snap.head.lastSeq, resync, position: pos };
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
      }
      let lastSent = Date.now();
      if (first) yield shown(first);
      me.pos = pos;
      // Not awaited: under a steady stream of signals the topic reads on and on, and this watcher reads
      // what it needs by itself until the topic's ring covers it.
      void refresh(t);
      let live = false;
      /** After a change that may revoke the caller's credential, and at heartbeats. */
      const recheck = async () => {
        if (input.recheck) await input.recheck();
      };
      for (;;) {
        if (stopping) throw shutdownError(pos);
        if (signal.aborted) return;
        // Taken before looking: a read that lands after the look still ends the wait below.
        const seen = t.version;
        let events = fromRing(t, pos);
        // Before caught_up, nothing in the ring past the watcher is not enough: the topic may not have
        // read a change committed before this call yet (its refresh runs on after the writer's wake-up).
        // The watcher reads the database itself once, so caught_up follows everything committed before it.
        if (events && !events.length && !live) events = undefined;
        if (!events && live && !t.head) {
          // The topic has not read yet (its first read failed): it reads again at the next poll.
          events = [];
        }
        if (!events) {
          // A live watcher more than `buffer` items behind its session: its client is too slow for it.
          const behind = (h: { seq: number; change: number } | undefined) => live && h !== undefined && h.seq - pos.seq + (h.change - pos.change) > limits.buffer;
          const overflow = () => {
            overflows++;
            return new WatchEndedError(
              `this stream fell more than ${limits.buffer} changes behind the session (its client reads too slowly); resume from seq ${pos.seq}, change ${pos.change}`,
              "overflow",
              { ...pos, cursor: "" },
            );
          };
          if (behind(t.head)) throw overflow();
          const r = await readAfter(t, pos, PAGE);
          if (r.head && behind({ seq: r.head.lastSeq, change: r.head.change })) throw overflow();
          events = r.items.map((i) => i.event);
          if (r.gap && !events.length) {
            // Its next changes were pruned meanwhile: a snapshot sums them up.
            const again = await snapshot(true);
            if (!again) {
              const gone = goneChange(t, pos);
              yield shown({ type: "change", change: gone, position: { seq: pos.seq, change: gone.change } });
              return;
            }
            yield shown(again);
            lastSent = Date.now();
            me.pos = pos;
            continue;
          }
          if (!events.length) pos = r.pos;
        }
        for (const e of events) {
          if (stopping) throw shutdownError(pos);
          yield shown(e);
          lastSent = Date.now();
          pos = e.position;
          me.pos = pos;
          if (e.type === "change") {
            if (e.change.kind === "deleted") return;
            if (input.limited && (e.change.kind === "cancelled" || e.change.kind === "soft_deleted" || e.change.kind === "updated")) await recheck();
          }
        }
        me.pos = pos;
        if (events.length) continue;
        // This watcher read past the topic (by itself, from behind the ring): the topic catches up, and
        // its ring serves the watcher again from there on.
        if (t.head && isAfter(pos, t.head)) void refresh(t);
        if (!live) {
          live = true;
          t.live.add(me);
          yield { type: "caught_up", position: pos };
          lastSent = Date.now();
          continue;
        }
        sleep.sleeper.lastSent = lastSent;
        const why = await waitFor(() => t.version !== seen, sleep.sleeper, signal);
        if (why === "idle") {
          await recheck();
          yield { type: "heartbeat", time: new Date(), position: pos };
          lastSent = Date.now();
        }
      }
    } finally {
      t.live.delete(me);
      sleep.done();
      release(t);
      leave();
    }
  }

  function feedOf(namespaceId: string): FeedTopic {
    let f = feeds.get(namespaceId);
    if (!f) {
      f = { namespaceId, watchers: 0, sequenceAgain: false, lastWake: Date.now(), signals: 0, waiters: new Waiters() };
      feeds.set(namespaceId, f);
    }
    f.watchers++;
    return f;
  }

  function wakeFeed(f: FeedTopic) {
    f.lastWake = Date.now();
    f.signals++;
    f.waiters.notify();
  }

  /**
   * Gives feed positions to everything recorded (one pass at a time per namespace in this process, as
   * many as the backlog takes); settles after a pass that began after the call, with the present's
   * cursor read under the pass's lock, or undefined when it could not run (another process held the
   * lock throughout, or the database failed: logged, and the next signal or poll tries again).
   */
  function sequence(f: FeedTopic): Promise<bigint | undefined> {
    if (f.sequencing) {
      f.sequenceAgain = true;
      return f.sequencing;
    }
    f.sequencing = (async () => {
      let head: bigint | undefined;
      try {
        do {
          f.sequenceAgain = false;
          head = undefined;
          // Another process's pass holds the lock for one short statement: try again shortly.
          for (let attempt = 0; attempt < 40 && !stopping; ) {
            const pass = await withRead(() => store.sequenceFeed(f.namespaceId, 1000));
            if (!pass) {
              attempt++;
              await new Promise((r) => setTimeout(r, 25));
            } else if (pass.count < 1000) {
              head = pass.head;
              break;
            }
          }
        } while (f.sequenceAgain && !stopping);
      } catch (err) {
        deps.log?.(err, "sequencing a namespace feed");
        head = undefined;
      }
      return head;
    })().finally(() => (f.sequencing = undefined));
    return f.sequencing;
  }

  async function* watchSessions(input: FeedWatchInput & { recheck?: () => Promise<void> }, signal: AbortSignal): AsyncGenerator<FeedWatchEvent> {
    const namespace = checkNamespace(input.namespace);
    const filter = checkFilter(input.filter);
    for (const [i, k] of input.kinds.entries()) if (!CHANGE_KINDS.includes(k)) throw new InvalidInputError(`kinds[${i}]`, "unknown kind");
    const kinds = new Set<ChangeKind>(input.kinds.length ? input.kinds : DEFAULT_FEED_KINDS);
    let cursor: bigint | undefined;
    if (input.after) {
      if (!/^[1-9]\d{0,18}$/.test(input.after) || BigInt(input.after) > 0x7fffffffffffffffn) throw new InvalidInputError("after", "not a cursor this server gave (WatchPosition.cursor)");
      cursor = BigInt(input.after);
      const oldest = BigInt(Date.now() - limits.retentionMs) * 1000n;
      if (cursor < oldest) throw new OutOfRangeError(`after: the cursor is older than the changes kept (${Math.round(limits.retentionMs / 3600_000)} h); list the sessions and watch again without it`);
    }
    const namespaceId = await sessions.namespaceId(namespace, false);
    if (!namespaceId) throw new NotFoundError(`namespace "${namespace}" not found`);
    admit({ seq: 0, change: 0 }, input.after);
    const f = feedOf(namespaceId);
    const sleep = sleeperFor(f.waiters, signal);
    try {
      let sequencedAt = f.signals;
      let head = await sequence(f);
      let live = false;
      let lastSent = Date.now();
      if (cursor === undefined) {
        cursor = head ?? (await withRead(() => store.feedHead(namespaceId)));
        live = true;
        yield { type: "caught_up", cursor: cursorOf(cursor) };
        lastSent = Date.now();
      }
      for (;;) {
        if (stopping) throw shutdownError({ seq: 0, change: 0 }, cursorOf(cursor));
        if (signal.aborted) return;
        // Taken before the pass: a signal during it still ends the wait below.
        const seen = f.signals;
        if (seen !== sequencedAt) {
          head = await sequence(f);
          sequencedAt = seen;
        }
        const rows = await withRead(() => store.feed(namespaceId, cursor!, PAGE));
        for (const c of rows) {
          cursor = BigInt(c.feedPosition!);
          if (kinds.has(c.kind) && matchesFilter(c.session, filter)) {
            if (stopping) throw shutdownError({ seq: 0, change: 0 }, cursorOf(cursor));
            yield { type: "change", change: c, cursor: cursorOf(cursor) };
            lastSent = Date.now();
          }
        }
        if (rows.length === PAGE) continue;
        // Everything up to the head of the last pass is read: the cursor may move up to it (a quiet
        // namespace's cursor then stays fresh).
        if (head !== undefined && head > cursor) cursor = head;
        if (!live) {
          live = true;
          yield { type: "caught_up", cursor: cursorOf(cursor) };
          lastSent = Date.now();
          continue;
        }
        sleep.sleeper.lastSent = lastSent;
        const why = await waitFor(() => f.signals !== seen, sleep.sleeper, signal);
        if (why === "idle") {
          if (input.recheck) await input.recheck();
          // The namespace may have been deleted meanwhile: then the feed ends.
          if ((await sessions.namespaceId(namespace, false)) !== namespaceId) throw new NotFoundError(`namespace "${namespace}" was deleted`);
          head = await sequence(f);
          sequencedAt = f.signals;
          const more = await withRead(() => store.feed(namespaceId, cursor!, 1));
          if (!more.length && head !== undefined && head > cursor) cursor = head;
          yield { type: "heartbeat", time: new Date(), cursor: cursorOf(cursor) };
          lastSent = Date.now();
        }
      }
    } finally {
      sleep.done();
      if (--f.watchers === 0) feeds.delete(namespaceId);
      leave();
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
      for (const s of sleepers) s.wake("end");
      if (poller) clearInterval(poller);
      poller = undefined;
      if (!watchers) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        idle = resolve;
        timer = setTimeout(resolve, graceMs);
      });
      clearTimeout(timer);
    },
  };
}
