/**
 * The audit log: one event per mutating call (who, which RPC, which namespace, how many items, how it
 * ended). Events are buffered and written in batches (one INSERT per 250 ms or 500 events), so a
 * mutating call does not wait for its audit row; reads flush this process's buffer first. Events still
 * in the buffer when the process is killed (not stopped) are lost: at most 250 ms of them.
 */
import type { AuditStore } from "../db/repositories/audit-store.js";
import type { SessionStore } from "../db/repositories/session-store.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import { checkNamespace, checkPageSize, checkText } from "./session.js";

/** One recorded call. */
export interface AuditEvent {
  uuid: string;
  time: Date;
  /** Id of the namespace named, resolved when written; null when none (or when it is gone). */
  namespaceId: string | null;
  namespace: string;
  /** An API key's global id, or "session:<session global id>" for a client secret. */
  actor: string;
  /** "<service>/<method>". */
  method: string;
  itemCount: number;
  /** "ok" or a Connect code name. */
  code: string;
  requestId: string;
}

/**
 * What a caller records, with the uuid of the session it addressed by global id, if any: when the
 * call named no namespace, the session's is found when the event is written.
 */
export type AuditRecord = Omit<AuditEvent, "uuid" | "namespaceId"> & { sessionUuid?: string };

/** The audit log of a process. */
export interface AuditLog {
  /** Queues an event; it is written within FLUSH_MS. */
  record(event: AuditRecord): void;
  /** Writes what is queued. */
  flush(): Promise<void>;
  /** Events newest first; `namespace` "" for all. */
  list(input: { namespace: string; actor: string; pageSize: number; pageToken: string }): Promise<{ events: AuditEvent[]; nextPageToken: string }>;
  /** Flushes and stops the timer. */
  close(): Promise<void>;
}

const FLUSH_MS = 250;
const BATCH = 500;
/** Events kept while the database refuses them; older ones are dropped (and the drop logged). */
const MAX_QUEUED = 50_000;

/** The log over its store; `onError` hears of batches that could not be written. */
export function createAuditLog(deps: { store: AuditStore; sessions: Pick<SessionStore, "namespaceId">; onError?: (err: unknown, dropped: number) => void }): AuditLog {
  const { store, sessions } = deps;
  let queue: AuditRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  // Namespaces of sessions seen in recent events: resolves calls by global id even when the session
  // was deleted before their event was written (e.g. DeleteSession in the same batch).
  const learned = new Map<string, string>();
  const learn = (uuid: string, namespace: string) => {
    if (learned.size >= 10_000) learned.clear();
    learned.set(uuid, namespace);
  };

  async function write(batch: AuditRecord[]) {
    for (const e of batch) if (e.namespace && e.sessionUuid) learn(e.sessionUuid, e.namespace);
    const unknown = [...new Set(batch.filter((e) => !e.namespace && e.sessionUuid && !learned.has(e.sessionUuid)).map((e) => e.sessionUuid!))];
    if (unknown.length) for (const [uuid, name] of await store.namespacesOfSessions(unknown)) learn(uuid, name);
    const named = batch.map(({ sessionUuid, ...e }) => (e.namespace || !sessionUuid ? e : { ...e, namespace: learned.get(sessionUuid) ?? "" }));
    const ids = new Map<string, string | null>();
    for (const name of new Set(named.map((e) => e.namespace))) ids.set(name, name ? ((await sessions.namespaceId(name, false)) ?? null) : null);
    await store.append(named.map((e) => ({ ...e, uuid: crypto.randomUUID(), namespaceId: ids.get(e.namespace) ?? null })));
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    writing = writing.then(async () => {
      for (let i = 0; i < batch.length; i += BATCH) {
        const part = batch.slice(i, i + BATCH);
        try {
          await write(part);
        } catch (err) {
          queue = [...part, ...batch.slice(i + BATCH), ...queue];
          const dropped = Math.max(0, queue.length - MAX_QUEUED);
          queue = queue.slice(dropped);
          deps.onError?.(err, dropped);
          return;
        }
      }
    });
    return writing;
  }

  return {
    record(event) {
      queue.push(event);
      if (queue.length >= BATCH) void flush();
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

    async close() {
      await flush();
    },
  };
}
