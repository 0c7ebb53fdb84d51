/**
 * The audit log: one event per mutating call (who, which RPC, which namespace, how many items, how it
 * ended). Events are buffered and written in batches (one INSERT per 250 ms or 500 events), so a
 * mutating call does not wait for its audit row; reads flush this process's buffer first. Events still
 * in the buffer when the process is killed (not stopped) are lost: at most 250 ms of them.
 *
 * One event never holds up the others: every field is made storable when it is recorded (NUL and lone
 * surrogates replaced, lengths capped) and a namespace that is not a valid name is kept as text but
 * never looked up. A batch the database refuses for another reason than being unavailable is split in
 * halves down to single events; an event refused on its own is written without its lookups, else,
 * when the store says the row itself is at fault (InvalidInputError), dropped (logged, counted).
 * While the database is unavailable, or refuses even a single event for a reason of its own (read-only
 * after a failover, a revoked grant), events stay queued (at most MAX_QUEUED, the oldest dropped
 * first) and the write is retried every RETRY_MS; the log says once when the audit falls behind, once
 * when it starts dropping, and once when it has caught up.
 */
import { InvalidInputError, UnavailableError } from "./errors.js";
import { newUuid, type SessionGlobalId } from "./ids.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf, type Cursor } from "./page-token.js";
import type { SessionStore } from "./session-store.js";
import { checkNamespace, checkPageSize, checkText } from "./session-model.js";

/** One recorded call. */
export interface AuditEvent {
  uuid: string;
  time: Date;
  /** Id of the namespace named, resolved when written; null when none (or when it is gone, or the name is invalid). */
  namespaceId: string | null;
  namespace: string;
  /** An API key's global id, "session:<session global id>" for a client secret, "certificate:<kind>:<name>" for a client certificate. */
  actor: string;
  /** "<service>/<method>". */
  method: string;
  itemCount: number;
  /** "ok" or a Connect code name. */
  code: string;
  requestId: string;
  /**
   * What the call did beyond its item count, for calls that say more (ForgetSubject: the subject's kind
   * and digest and the counts); flat, JSON, never content.
   */
  detail?: Record<string, string | number> | null;
}

/** Which events a list shows. */
export interface AuditListQuery {
  namespaceId?: string;
  actor?: string;
  after?: Cursor;
  limit: number;
}

/** Storage of audit events, declared here and implemented in db/. */
export interface AuditStore {
  /** Appends events in one statement. @throws InvalidInputError when the store refuses the rows themselves (bad data, a constraint) */
  append(events: AuditEvent[]): Promise<void>;
  /** Newest first, after the cursor. */
  list(query: AuditListQuery): Promise<AuditEvent[]>;
  /** Names of these namespaces (those that still exist), by namespace id. */
  namespaceNames(ids: string[]): Promise<Map<string, string>>;
  /**
   * Namespace names of these sessions (those that still exist), by session uuid: for global ids of
   * the old form, which do not carry the namespace (the lookup reaches every shard).
   */
  namespacesOfSessions(uuids: string[]): Promise<Map<string, string>>;
}

/**
 * What a caller records, with the session it addressed by global id, if any: when the call named no
 * namespace, the session's is found when the event is written (from the namespace id the global id
 * carries, or for an id of the old form from the session's uuid).
 */
export type AuditRecord = Omit<AuditEvent, "uuid" | "namespaceId"> & { session?: SessionGlobalId };

/** Why events were lost: a fixed set, so that it can label a metric. */
export type AuditDropReason = "queue_full" | "unwritable" | "shutdown";

/** Every drop reason, for metrics that start each at 0. */
export const AUDIT_DROP_REASONS: readonly AuditDropReason[] = ["queue_full", "unwritable", "shutdown"];

/** What the metrics read on each scrape: events waiting to be written, and events lost since start by reason. */
export interface AuditStats {
  queued: number;
  dropped: Record<AuditDropReason, number>;
}

/** Where the audit log tells of trouble; a pino logger fits. Kept this small so the domain needs no logging library. */
export interface AuditLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The audit log of a process. */
export interface AuditLog {
  /** Queues an event; it is written within FLUSH_MS (while the database is unavailable: once it is back). */
  record(event: AuditRecord): void;
  /** Writes what is queued. Never throws: what the database cannot take now stays queued. */
  flush(): Promise<void>;
  /** Events newest first; `namespace` "" for all. */
  list(input: { namespace: string; actor: string; pageSize: number; pageToken: string }): Promise<{ events: AuditEvent[]; nextPageToken: string }>;
  /** Queue depth and drops, for metrics (read on scrape, so the domain needs no metrics library). */
  stats(): AuditStats;
  /** Flushes and stops the timer; events the database could still not take are dropped, and that is logged. */
  close(): Promise<void>;
}

const FLUSH_MS = 250;
const BATCH = 500;
/** How often a write is retried while the database is unavailable. */
const RETRY_MS = 1000;
/** Events kept while the database refuses them; older ones are dropped (and the drop logged). */
const MAX_QUEUED = 50_000;
/** Column sizes of audit_events (characters), so that no value is too long to store. */
const LIMITS = { namespace: 63, actor: 160, method: 160, code: 32, requestId: 128 } as const;
const MAX_INT32 = 2 ** 31 - 1;

/** Raised inside a flush when the database takes no audit events now: `unwritten` goes back to the queue. */
class Outage {
  constructor(
    readonly cause: unknown,
    readonly unwritten: AuditRecord[],
  ) {}
}

/** The log over its store; `log` is where falling behind, catching up and lost events are reported. */
export function createAuditLog(deps: { store: AuditStore; sessions: Pick<SessionStore, "namespaceId">; log?: AuditLogger }): AuditLog {
  const { store, sessions, log } = deps;
  let queue: AuditRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let next: Promise<void> | undefined;
  const dropped: Record<AuditDropReason, number> = { queue_full: 0, unwritable: 0, shutdown: 0 };
  /** Set while the database is unavailable: since when, and what was dropped meanwhile. */
  let behind: { since: number; dropped: number } | undefined;

  // Namespaces of sessions seen in recent events: resolves calls by global id of the old form even when
  // the session was deleted before their event was written (e.g. DeleteSession in the same batch).
  const learned = new Map<string, string>();
  const learn = (uuid: string, namespace: string) => {
    if (learned.size >= 10_000) learned.clear();
    learned.set(uuid, namespace);
  };

  async function write(batch: AuditRecord[]) {
    const namespaceIds = [...new Set(batch.flatMap((e) => (e.session?.namespaceId ? [e.session.namespaceId] : [])))];
    const names = namespaceIds.length ? await store.namespaceNames(namespaceIds) : new Map<string, string>();
    // A call that succeeded by an id of the current form found the session in the id's namespace: that
    // also resolves ids of the old form for the same session.
    for (const { session: s, code } of batch) if (code === "ok" && s?.namespaceId && names.has(s.namespaceId)) learn(s.uuid, names.get(s.namespaceId)!);
    for (const e of batch) if (isNamespaceName(e.namespace) && e.session && !e.session.namespaceId && !learned.has(e.session.uuid)) learn(e.session.uuid, e.namespace);
    const unnamed = batch.filter((e) => !e.namespace && e.session).map((e) => e.session!);
    const unknown = [...new Set(unnamed.filter((s) => !s.namespaceId && !learned.has(s.uuid)).map((s) => s.uuid))];
    if (unknown.length) for (const [uuid, name] of await store.namespacesOfSessions(unknown)) learn(uuid, name);
    const nameOf = (s: SessionGlobalId) => (s.namespaceId ? names.get(s.namespaceId) : learned.get(s.uuid)) ?? "";
    const named = batch.map(({ session, ...e }) => (e.namespace || !session ? e : { ...e, namespace: nameOf(session) }));
    const ids = new Map<string, string | null>();
    for (const name of new Set(named.map((e) => e.namespace))) ids.set(name, isNamespaceName(name) ? ((await sessions.namespaceId(name, false)) ?? null) : null);
    await store.append(named.map((e) => ({ ...e, uuid: newUuid(), namespaceId: ids.get(e.namespace) ?? null })));
  }

  /** Writes `batch`, splitting it around events the database refuses. @throws Outage with what is left */
  async function writeSplitting(batch: AuditRecord[]): Promise<void> {
    try {
      return await write(batch);
    } catch (err) {
      if (err instanceof UnavailableError) throw new Outage(err, batch);
      if (batch.length === 1) return writeAlone(batch[0], err);
    }
    const half = Math.ceil(batch.length / 2);
    try {
      await writeSplitting(batch.slice(0, half));
    } catch (err) {
      throw err instanceof Outage ? new Outage(err.cause, [...err.unwritten, ...batch.slice(half)]) : err;
    }
    await writeSplitting(batch.slice(half));
  }

  /** An event refused on its own: written with what is known (no lookups), else dropped. */
  async function writeAlone(event: AuditRecord, cause: unknown): Promise<void> {
    const { session: _, ...known } = event;
    const summary = { method: event.method, code: event.code, request_id: event.requestId, time: event.time };
    try {
      await store.append([{ ...known, uuid: newUuid(), namespaceId: null }]);
      log?.warn({ err: cause, event: summary }, "audit event written without its namespace id: the database refused it as it was");
    } catch (err) {
      // Not the event's fault (database down, read-only, a grant revoked): it would refuse any other too.
      if (!(err instanceof InvalidInputError)) throw new Outage(err, [event]);
      dropped.unwritable++;
      log?.error({ err, first_error: String(cause), event: summary }, "audit event dropped: the database refused it");
    }
  }

  /** Drops the oldest queued events beyond MAX_QUEUED; returns how many. */
  function trim(): number {
    const over = queue.length - MAX_QUEUED;
    if (over <= 0) return 0;
    queue.splice(0, over);
    dropped.queue_full += over;
    if (behind) {
      if (!behind.dropped) log?.error({ queued: queue.length, max_queued: MAX_QUEUED }, "audit queue full: the oldest audit events are being dropped until the database is back");
      behind.dropped += over;
    }
    return over;
  }

  /** Writes what was queued when it starts; on an outage, puts back what is left and retries later. */
  async function drain(): Promise<void> {
    const batch = queue;
    queue = [];
    for (let i = 0; i < batch.length; i += BATCH) {
      try {
        await writeSplitting(batch.slice(i, i + BATCH));
      } catch (err) {
        if (!(err instanceof Outage)) throw err;
        queue = [...err.unwritten, ...batch.slice(i + BATCH), ...queue];
        if (!behind) {
          behind = { since: Date.now(), dropped: 0 };
          log?.warn({ err: err.cause, queued: queue.length }, "audit falling behind: the database takes no audit events now; they are kept and retried");
        }
        trim();
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void flush(), RETRY_MS).unref();
        return;
      }
    }
    if (behind && batch.length) {
      log?.info({ behind_ms: Date.now() - behind.since, dropped: behind.dropped, queued: queue.length }, "audit caught up: the database is back and queued events are written");
      behind = undefined;
    }
    if (queue.length) timer ??= setTimeout(() => void flush(), FLUSH_MS).unref(); // recorded while behind
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!next) {
      // One flush waits behind the running one and takes everything queued when it starts.
      next = running.then(() => {
        next = undefined;
        return drain();
      });
      running = next.catch((err) => log?.error({ err }, "audit flush failed"));
    }
    return running;
  }

  return {
    record(event) {
      queue.push(storable(event));
      if (behind) trim(); // the retry timer is set
      else if (queue.length >= BATCH) void flush();
      else timer ??= setTimeout(() => void flush(), FLUSH_MS).unref();
    },

    flush,

    async list(input) {
      await flush();
      const limit = checkPageSize(input.pageSize);
      const actor = checkText("actor", input.actor, 160);
      const fp = fingerprint({ audit: input.namespace, actor });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace and actor") : undefined;
      let namespaceId: string | undefined;
      if (input.namespace) {
        namespaceId = await sessions.namespaceId(checkNamespace(input.namespace), false);
        if (!namespaceId) return { events: [], nextPageToken: "" };
      }
      const rows = await store.list({ namespaceId, actor: actor || undefined, after, limit: limit + 1 });
      const page = pageOf(rows, limit, (last) => encodePageToken({ createTime: last.time, uuid: last.uuid }, fp));
      return { events: page.items, nextPageToken: page.nextPageToken };
    },

    stats: () => ({ queued: queue.length, dropped: { ...dropped } }),

    async close() {
      await flush();
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (queue.length) {
        dropped.shutdown += queue.length;
        log?.error({ dropped: queue.length }, "audit events dropped at shutdown: the database was unavailable");
        queue = [];
      }
    },
  };
}

/** Whether `name` can be looked up as a namespace (anything else is recorded as text only). */
function isNamespaceName(name: string): boolean {
  try {
    return name !== "" && checkNamespace(name) === name;
  } catch {
    return false;
  }
}

/** `event` with every value storable in audit_events, whatever the call carried. */
function storable(event: AuditRecord): AuditRecord {
  const n = Number.isFinite(event.itemCount) ? Math.trunc(event.itemCount) : 0;
  return {
    ...event,
    time: Number.isNaN(event.time.getTime()) ? new Date() : event.time,
    namespace: text(event.namespace, LIMITS.namespace),
    actor: text(event.actor, LIMITS.actor),
    method: text(event.method, LIMITS.method),
    code: text(event.code, LIMITS.code),
    requestId: text(event.requestId, LIMITS.requestId),
    itemCount: Math.min(Math.max(n, 0), MAX_INT32),
  };
}

/**
 * `value` as Postgres text can hold it: NUL (which text cannot hold) and lone surrogates become
 * U+FFFD, and a value over `max` characters is cut to `max - 1` plus "…", so that a cut invalid
 * namespace name never becomes a valid one.
 */
function text(value: string, max: number): string {
  // The common value (a method name, a request id) is kept as it is, without copies.
  if (typeof value === "string" && value.length <= max && value.isWellFormed() && !value.includes("\u0000")) return value;
  const s = String(value ?? "").toWellFormed().replaceAll("\u0000", "\uFFFD");
  if (s.length <= max) return s;
  const chars = [...s];
  return chars.length <= max ? s : chars.slice(0, max - 1).join("") + "…";
}
