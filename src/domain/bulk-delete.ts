/**
 * BulkDeleteSessions as an async generator of events: `started` at once with the total, one `progress`
 * per committed batch with every identifier's outcome, a final `summary`. The signal is checked between
 * batches; when it is aborted the generator throws its reason (a plain return would read as success).
 * A bulk delete first takes a slot of the store's admission (bulk-admission.ts) and then uses one pooled
 * connection at a time (a page read, then a batch transaction), never holding one while waiting for
 * another: however many run, they cannot lock the pool up, and live calls keep their share.
 */
import type { BulkDeleteStore, DeletedSession, SessionSnapshot } from "./bulk-delete-store.js";
import { InvalidInputError, UnavailableError } from "./errors.js";
import { decodeSessionId, encodeSessionId, sessionIdIn } from "./ids.js";
import { retryOnConflict } from "./retry.js";
import { checkFilter, checkNamespace, type DeletedCounts, type SessionFilter } from "./session-model.js";

export const MAX_BULK_IDS = 100_000;
export const DEFAULT_BULK_BATCH = 500;
export const MAX_BULK_BATCH = 5_000;
/** A batch that loses a race with a concurrent transaction is run again, up to this many times in all. */
const BATCH_ATTEMPTS = 4;

/** Which sessions a bulk delete names. */
export type BulkSelector =
  | { kind: "ids"; values: string[] }
  | { kind: "sessionIds"; values: string[] }
  | { kind: "filter"; filter: SessionFilter; includeDeleted: boolean }
  | { kind: "none" };

/** Input of a bulk delete, as it arrives. */
export interface BulkDeleteInput {
  namespace: string;
  selector: BulkSelector;
  dryRun: boolean;
  purgeMemories: boolean;
  /** 0: the default. */
  batchSize: number;
}

export type BulkOutcome = "deleted" | "not_found" | "invalid_id" | "failed" | "would_delete";

/** One identifier's fate. */
export interface BulkResult {
  identifier: string;
  /** Global id, when known. */
  id: string;
  outcome: BulkOutcome;
  counts?: DeletedCounts;
  memories: number;
  error: string;
}

/** Running counters. */
export interface BulkCounters {
  completed: number;
  total: number;
  deleted: number;
  notFound: number;
  invalid: number;
  failed: number;
}

/** One event of the stream. */
export type BulkDeleteEvent =
  | { type: "started"; total: number; dryRun: boolean; batchSize: number }
  | { type: "progress"; results: BulkResult[]; counters: BulkCounters }
  | { type: "summary"; counters: BulkCounters; deleted: DeletedCounts; elapsedMs: number; dryRun: boolean };

/** Logs a batch failure (the cause stays in the logs; the client gets a generic reason). */
export type FailureLog = (err: unknown, identifiers: number) => void;

interface Entry {
  identifier: string;
  /** uuid (ids/filter) or caller id (sessionIds); undefined when invalid. */
  key?: string;
  /** A global id of a session of another namespace: not in this one, so not found without a lookup. */
  elsewhere?: boolean;
  error?: string;
}


function validate(input: BulkDeleteInput): { namespace: string; batchSize: number } {
  const namespace = checkNamespace(input.namespace);
  const batchSize = input.batchSize === 0 ? DEFAULT_BULK_BATCH : input.batchSize;
  if (batchSize < 1 || batchSize > MAX_BULK_BATCH) throw new InvalidInputError("batch_size", `must be between 1 and ${MAX_BULK_BATCH}`);
  const sel = input.selector;
  if (sel.kind === "none") throw new InvalidInputError("selector", "set one of ids, session_ids or filter");
  if (sel.kind === "ids" || sel.kind === "sessionIds") {
    const field = sel.kind === "ids" ? "ids.values" : "session_ids.values";
    if (sel.values.length === 0) throw new InvalidInputError(field, "must name at least one session");
    if (sel.values.length > MAX_BULK_IDS) throw new InvalidInputError(field, `at most ${MAX_BULK_IDS} per call, got ${sel.values.length}`);
  } else {
    checkFilter(sel.filter, "filter.filter");
  }
  return { namespace, batchSize };
}

/** The distinct identifiers, in request order (the first occurrence counts). */
function distinct(values: string[]): string[] {
  const unique = new Set(values);
  return unique.size === values.length ? values : [...unique];
}

/**
 * Parses one identifier of a list, for the namespace `namespaceId` (undefined: it does not exist);
 * malformed ones carry their error. Done per batch, not up front.
 */
function entryOf(kind: "ids" | "sessionIds", identifier: string, namespaceId: string | undefined): Entry {
  if (kind === "ids") {
    try {
      const id = decodeSessionId(identifier, "id");
      return { identifier, key: id.uuid, elsewhere: namespaceId !== undefined && !sessionIdIn(id, namespaceId) };
    } catch (err) {
      return { identifier, error: (err as Error).message };
    }
  }
  if (identifier === "" || identifier.length > 256 || /[\u0000-\u001f\u007f]/.test(identifier)) {
    return { identifier, error: "session_id: must be 1 to 256 characters without control characters" };
  }
  return { identifier, key: identifier };
}

/** Runs a bulk delete. Validation errors are thrown before the first event. */
export async function* bulkDeleteSessions(store: BulkDeleteStore, input: BulkDeleteInput, signal: AbortSignal, logFailure: FailureLog): AsyncGenerator<BulkDeleteEvent> {
  const started = performance.now();
  const { namespace, batchSize } = validate(input);
  const { dryRun, purgeMemories } = input;
  const sel = input.selector;
  const release = store.admission ? await store.admission.acquire(signal) : () => {};
  let snapshot: SessionSnapshot | undefined;
  try {
    if (signal.aborted) throw signal.reason;
    const namespaceId = await store.namespaceId(namespace, false);
    let identifiers: string[] = [];
    if (sel.kind === "filter") {
      if (namespaceId) snapshot = await store.openSnapshot(namespaceId, sel.filter, sel.includeDeleted);
    } else if (sel.kind !== "none") {
      identifiers = distinct(sel.values);
    }
    const total = snapshot ? snapshot.total : identifiers.length;
    const counters: BulkCounters = { completed: 0, total, deleted: 0, notFound: 0, invalid: 0, failed: 0 };
    const sum: DeletedCounts = { participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 };
    yield { type: "started", total, dryRun, batchSize };

    for (let offset = 0; ; offset += batchSize) {
      if (signal.aborted) throw signal.reason;
      let batch: Entry[];
      if (snapshot) {
        batch = (await snapshot.next(batchSize)).map((uuid) => ({ identifier: encodeSessionId(namespaceId!, uuid), key: uuid }));
      } else {
        const kind = sel.kind === "sessionIds" ? "sessionIds" : "ids";
        batch = identifiers.slice(offset, offset + batchSize).map((identifier) => entryOf(kind, identifier, namespaceId));
      }
      if (!batch.length) break;
      if (signal.aborted) throw signal.reason;

      const keys = batch.flatMap((e) => (e.key === undefined || e.elsewhere ? [] : [e.key]));
      let found: Map<string, DeletedSession> | undefined;
      let failure: string | undefined;
      if (namespaceId && keys.length) {
        try {
          const kind = sel.kind === "sessionIds" ? "external" : "uuid";
          const gone = await retryOnConflict(() => store.deleteBatch(namespaceId, { kind, values: keys }, { dryRun, purgeMemories }), { attempts: BATCH_ATTEMPTS });
          found = new Map(gone.map((g) => [kind === "uuid" ? g.uuid : g.externalId, g]));
        } catch (err) {
          // The whole call stops (the client may retry it); any other failure is this batch's alone.
          if (err instanceof UnavailableError) throw err;
          logFailure(err, keys.length);
          failure = "the batch could not be deleted; the session is untouched (see server logs)";
        }
      }

      const results: BulkResult[] = batch.map((e) => {
        if (e.key === undefined) {
          counters.invalid++;
          return { identifier: e.identifier, id: "", outcome: "invalid_id", memories: 0, error: e.error ?? "invalid" };
        }
        if (failure) {
          counters.failed++;
          return { identifier: e.identifier, id: sel.kind === "ids" ? e.identifier : "", outcome: "failed", memories: 0, error: failure };
        }
        const g = e.elsewhere ? undefined : found?.get(e.key);
        if (!g) {
          counters.notFound++;
          return { identifier: e.identifier, id: sel.kind === "ids" ? e.identifier : "", outcome: "not_found", memories: 0, error: "" };
        }
        counters.deleted++;
        for (const k of Object.keys(sum) as (keyof DeletedCounts)[]) sum[k] += g.counts[k];
        return { identifier: e.identifier, id: encodeSessionId(namespaceId!, g.uuid), outcome: dryRun ? "would_delete" : "deleted", counts: g.counts, memories: g.memories, error: "" };
      });
      counters.completed += results.length;
      yield { type: "progress", results, counters: { ...counters } };
    }
    if (signal.aborted) throw signal.reason;
    yield { type: "summary", counters: { ...counters }, deleted: sum, elapsedMs: performance.now() - started, dryRun };
  } finally {
    release();
    await snapshot?.close();
  }
}
