/**
 * What a bulk delete is made of, as pieces an operation (operations.ts) runs and resumes: the plan
 * (checked input, the distinct identifiers or a filter's snapshot mark), the next batch from a cursor,
 * and a batch's per-id results from what its deletion found. Everything a plan and a cursor hold is
 * JSON, so another process can take the work over from the last committed batch. The stream's events
 * (`started` with the total and the operation id, one `progress` per committed batch, a `summary`)
 * are made by operations.ts from the operation's batches.
 */
import type { BatchKeys, BulkDeleteStore, DeletedSession, SnapshotKey } from "./bulk-delete-store.js";
import { InvalidInputError } from "./errors.js";
import { decodeSessionId, encodeSessionId, sessionIdIn } from "./ids.js";
import { addDeletedCounts, checkFilter, checkNamespace, emptyDeletedCounts, type DeletedCounts, type SessionFilter } from "./session-model.js";

export const MAX_BULK_IDS = 100_000;
export const DEFAULT_BULK_BATCH = 500;
export const MAX_BULK_BATCH = 5_000;

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
  /** Keep going when the caller goes away. */
  detach?: boolean;
  /** Who asks (an actor as the audit log writes it). */
  actor?: string;
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
  | { type: "started"; total: number; dryRun: boolean; batchSize: number; operationId: string }
  | { type: "progress"; results: BulkResult[]; counters: BulkCounters }
  | { type: "summary"; counters: BulkCounters; deleted: DeletedCounts; elapsedMs: number; dryRun: boolean };

/** Logs a batch failure (the cause stays in the logs; the client gets a generic reason). */
export type FailureLog = (err: unknown, identifiers: number) => void;

/** One identifier of a batch, parsed. */
export interface Entry {
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

/** What a bulk delete does, as an operation stores it (JSON: dates as ISO text). */
export interface BulkPlan {
  selector:
    | { kind: "ids" | "sessionIds"; values: string[] }
    | { kind: "filter"; filter: Record<string, unknown>; includeDeleted: boolean; mark?: SnapshotKey };
  dryRun: boolean;
  purgeMemories: boolean;
  batchSize: number;
}

/** Where a bulk delete stands: the next identifier (lists) or the last session done (filter). */
export interface BulkCursor {
  offset: number;
  after?: SnapshotKey;
}

/** A bulk delete's counters, as an operation stores them. */
export interface BulkProgress {
  counters: BulkCounters;
  deleted: DeletedCounts;
  /** Memories deleted (purge_memories) or detached with the deleted sessions. */
  memories: number;
}

/** One batch's record, as WatchOperation and the stream replay it. */
export interface BulkBatch {
  results: BulkResult[];
  counters: BulkCounters;
}

/** The namespace id a plan runs in when its namespace does not exist (every identifier is NOT_FOUND). */
export const NO_NAMESPACE = "00000000-0000-0000-0000-000000000000";

const DATE_FIELDS = ["createTimeAfter", "createTimeBefore", "activeAfter", "activeBefore"] as const;

/** A filter as JSON. */
function filterToJson(filter: SessionFilter): Record<string, unknown> {
  const out: Record<string, unknown> = { ...filter };
  for (const k of DATE_FIELDS) if (filter[k]) out[k] = filter[k]!.toISOString();
  return out;
}

/** A filter from JSON. */
function filterFromJson(json: Record<string, unknown>): SessionFilter {
  const out = { ...json } as SessionFilter & Record<string, unknown>;
  for (const k of DATE_FIELDS) if (typeof json[k] === "string") out[k] = new Date(json[k] as string);
  return out;
}


/**
 * Checks a bulk delete and fixes what it will go through: the distinct identifiers, or the sessions a
 * filter matches now (counted, with their high-water mark). Validation errors are thrown here, before
 * anything is stored.
 */
export async function planBulkDelete(store: BulkDeleteStore, input: BulkDeleteInput): Promise<{ namespace: string; namespaceId: string; plan: BulkPlan; progress: BulkProgress }> {
  const { namespace, batchSize } = validate(input);
  const sel = input.selector;
  const namespaceId = (await store.namespaceId(namespace, false)) ?? NO_NAMESPACE;
  let selector: BulkPlan["selector"];
  let total: number;
  if (sel.kind === "filter") {
    const snap = namespaceId === NO_NAMESPACE ? { total: 0 } : await store.markSnapshot(namespaceId, sel.filter, sel.includeDeleted);
    selector = { kind: "filter", filter: filterToJson(sel.filter), includeDeleted: sel.includeDeleted, mark: snap.mark };
    total = snap.total;
  } else if (sel.kind === "ids" || sel.kind === "sessionIds") {
    selector = { kind: sel.kind, values: distinct(sel.values) };
    total = selector.values.length;
  } else {
    throw new InvalidInputError("selector", "set one of ids, session_ids or filter");
  }
  const counters: BulkCounters = { completed: 0, total, deleted: 0, notFound: 0, invalid: 0, failed: 0 };
  return { namespace, namespaceId, plan: { selector, dryRun: input.dryRun, purgeMemories: input.purgeMemories, batchSize }, progress: { counters, deleted: emptyDeletedCounts(), memories: 0 } };
}

/** The next batch of a plan from `cursor`: its entries and the cursor after it; undefined when done. */
export async function nextBatch(store: BulkDeleteStore, namespaceId: string, plan: BulkPlan, cursor: BulkCursor): Promise<{ entries: Entry[]; cursor: BulkCursor } | undefined> {
  const sel = plan.selector;
  if (sel.kind === "filter") {
    if (!sel.mark || namespaceId === NO_NAMESPACE) return undefined;
    const page = await store.snapshotPage(namespaceId, filterFromJson(sel.filter), sel.includeDeleted, sel.mark, cursor.after, plan.batchSize);
    if (!page.uuids.length) return undefined;
    return { entries: page.uuids.map((uuid) => ({ identifier: encodeSessionId(namespaceId, uuid), key: uuid })), cursor: { offset: cursor.offset + page.uuids.length, after: page.last } };
  }
  const known = namespaceId === NO_NAMESPACE ? undefined : namespaceId;
  const slice = sel.values.slice(cursor.offset, cursor.offset + plan.batchSize);
  if (!slice.length) return undefined;
  return { entries: slice.map((identifier) => entryOf(sel.kind, identifier, known)), cursor: { offset: cursor.offset + slice.length } };
}

/** The session keys of a batch that may exist in the namespace (what its deletion names). */
export function batchKeys(plan: BulkPlan, entries: Entry[]): BatchKeys {
  const values = entries.flatMap((e) => (e.key === undefined || e.elsewhere ? [] : [e.key]));
  return plan.selector.kind === "sessionIds" ? { kind: "external", values } : { kind: "uuid", values };
}

/**
 * A batch's results and the counters after it, from the sessions its deletion found (or, when it
 * failed, the reason given for each of its identifiers). Pure: `before` is left as it was.
 */
export function batchResults(plan: BulkPlan, namespaceId: string, entries: Entry[], before: BulkProgress, found: DeletedSession[], failure?: string): { batch: BulkBatch; progress: BulkProgress } {
  const byKey = plan.selector.kind === "sessionIds";
  const gone = new Map(found.map((g) => [byKey ? g.externalId : g.uuid, g]));
  const counters = { ...before.counters };
  const deleted = { ...before.deleted };
  let memories = before.memories;
  const listed = plan.selector.kind === "ids";
  const results: BulkResult[] = entries.map((e) => {
    if (e.key === undefined) {
      counters.invalid++;
      return { identifier: e.identifier, id: "", outcome: "invalid_id", memories: 0, error: e.error ?? "invalid" };
    }
    if (failure) {
      counters.failed++;
      return { identifier: e.identifier, id: listed ? e.identifier : "", outcome: "failed", memories: 0, error: failure };
    }
    const g = e.elsewhere ? undefined : gone.get(e.key);
    if (!g) {
      counters.notFound++;
      return { identifier: e.identifier, id: listed ? e.identifier : "", outcome: "not_found", memories: 0, error: "" };
    }
    counters.deleted++;
    addDeletedCounts(deleted, g.counts);
    memories += g.memories;
    return { identifier: e.identifier, id: encodeSessionId(namespaceId, g.uuid), outcome: plan.dryRun ? "would_delete" : "deleted", counts: g.counts, memories: g.memories, error: "" };
  });
  counters.completed += results.length;
  return { batch: { results, counters }, progress: { counters, deleted, memories } };
}

/** What a batch that could not be deleted reports for each of its sessions (the cause stays in the logs). */
export const BATCH_FAILED = "the batch could not be deleted; the session is untouched (see server logs)";
