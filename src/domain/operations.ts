/**
 * Durable operations: bulk deletes, namespace deletions, retention sweeps and erasures persisted in the
 * database (operation-store.ts) and run by whichever server process holds their lease.
 *
 * - A call that starts one stores it QUEUED with its plan (bulk-delete.ts) and then follows it like any
 *   watcher, through its committed batches: the stream is the same wherever the work runs.
 * - Each process runs at most `maxRunning` operations at once; each uses one pooled connection at a
 *   time, never holding one while waiting for another, so long work keeps to a bounded share of the
 *   pool. Operations beyond that wait QUEUED, at most `maxQueued` per namespace.
 * - A running operation's lease is renewed every third of `leaseMs`; every `pollMs` each process that
 *   has a free slot claims the oldest queued operation, or one whose lease ran out because its process
 *   died, and goes on from its last committed batch. A batch's deletion and its record commit together
 *   under the lease (OperationStore.commitBatch), so every identifier is reported exactly once.
 * - Shutting down stops between batches and gives running operations back, queued, for another
 *   process to go on with at once.
 */
import {
  BATCH_FAILED,
  batchKeys,
  batchResults,
  nextBatch,
  NO_NAMESPACE,
  planBulkDelete,
  type BulkBatch,
  type BulkCursor,
  type BulkDeleteEvent,
  type BulkDeleteInput,
  type BulkPlan,
  type BulkProgress,
  type FailureLog,
} from "./bulk-delete.js";
import type { BulkDeleteStore, DeletedSession } from "./bulk-delete-store.js";
import {
  addCounts,
  checkErasure,
  emptyErasureCounts,
  nextCursor,
  subjectDigest,
  type ErasureBatch,
  type ErasureCounts,
  type ErasureCursor,
  type ErasureEvent,
  type ErasureInput,
  type ErasureRequest,
  type ErasureStepResult,
} from "./erasure.js";
import { CancelledError, InvalidInputError, NotFoundError, OperationFailedError, PreconditionError, RateLimitedError, StoreBusyError, UnavailableError } from "./errors.js";
import { decodeGlobalId, encodeGlobalId, encodeSessionId } from "./ids.js";
import type { Namespace, NamespaceDeletion, NamespaceStore } from "./namespace-store.js";
import { ENDED_STATES, LeaseLostError, type BatchDeletion, type BatchRecord, type Lease, type NewOperation, type OperationKind, type OperationRecord, type OperationState, type OperationStore } from "./operation-store.js";
import { cutoffsOf, type RetentionPolicies } from "./retention.js";
import type { SweepStore } from "./sweep-store.js";
import type { Changed } from "./watch-model.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import { retryOnConflict } from "./retry.js";
import { createSlots } from "./slots.js";
import { checkNamespace, checkPageSize, emptyDeletedCounts } from "./session-model.js";

/** How much long work a process runs, and how fast a dead process's work is taken over. */
export interface OperationLimits {
  /** Operations one process runs at once. */
  maxRunning: number;
  /** Operations of one namespace that may wait QUEUED; beyond that a new one is refused (resource_exhausted). */
  maxQueued: number;
  /** How long a lease holds without renewal, in ms: a dead process's operation is taken over after at most this plus `pollMs`. */
  leaseMs: number;
  /** How often a process with a free slot looks for queued or abandoned operations, in ms. */
  pollMs: number;
  /** How often a watcher of an operation run by another process reads its new batches, in ms. */
  watchPollMs: number;
}

export const DEFAULT_OPERATION_LIMITS: OperationLimits = { maxRunning: 4, maxQueued: 16, leaseMs: 9000, pollMs: 2000, watchPollMs: 250 };

/** A batch that loses a race with a concurrent transaction is run again, up to this many times in all. */
const BATCH_ATTEMPTS = 4;
/** Batches a watcher reads per statement. */
const WATCH_PAGE = 64;
/**
 * Database reads of watchers run at once in a process: their share of the pool, apart from the
 * operations' own (maxRunning, one connection each) and whatever live calls need.
 */
const WATCH_READERS = 1;
/** The longest a watcher's read waits for that connection. */
const WATCH_READ_WAIT_MS = 10_000;
/** Sessions per batch of a retention sweep. */
export const SWEEP_BATCH = 500;
/** Sessionless traces a sweep deletes per statement. */
const TRACE_BATCH = 1000;

/** What a retention sweep keeps at its end besides its counters. */
export interface SweepResult {
  /** Sessionless traces deleted. */
  traces: number;
}

/** A namespace deletion's last message, as its operation keeps it. */
export interface NamespaceResult {
  namespace: { uuid: string; name: string; createTime: string | null };
  memories: number;
  traces: number;
  apiKeys: number;
}

/** An operation as the service shows it. */
export interface Operation extends Omit<OperationRecord, "request" | "progress" | "result" | "cursor"> {
  /** Its global id. */
  id: string;
  /** A bulk delete's plan (an erasure's: its batch size, no selector). */
  plan: Pick<BulkPlan, "dryRun" | "batchSize">;
  /** A bulk delete's counters (zero for an erasure). */
  progress: BulkProgress;
  result: NamespaceResult | null;
  /** An erasure's counts; null for the other kinds. */
  erasure: ErasureCounts | null;
}

/** One committed batch: of a bulk delete (namespace deletion, sweep), or a step of an erasure. */
export type OperationBatch = BulkBatch | ErasureBatch;

/** An event of WatchOperation. */
export type WatchEvent = { type: "operation"; operation: Operation } | { type: "batch"; number: number; batch: OperationBatch } | { type: "ended"; operation: Operation };

/** What following an operation yields: its committed batches in order, then its end. */
type FollowEvent = { type: "batch"; number: number; batch: OperationBatch } | { type: "ended"; op: OperationRecord };

/** An event of DeleteNamespace: the bulk delete's, then `deleted`. */
export type DeleteNamespaceEvent = BulkDeleteEvent | ({ type: "deleted" } & NamespaceDeletion);

/** Durable operations: the service behind OperationService, and the runner of this process. */
export interface Operations {
  /** Starts a bulk delete and follows it (BulkDeleteSessions). Validation errors come before any event. */
  bulkDelete(input: BulkDeleteInput, signal: AbortSignal): AsyncGenerator<BulkDeleteEvent>;
  /** Starts an erasure and follows it (ForgetSubject); it goes on when the caller goes away. Validation errors come before any event. */
  forgetSubject(input: ErasureInput, signal: AbortSignal): AsyncGenerator<ErasureEvent>;
  /** Starts a namespace deletion and follows it (DeleteNamespace); the name is checked by the caller (namespace-service.ts). */
  deleteNamespace(input: { name: string; batchSize: number; detach?: boolean; actor?: string }, signal: AbortSignal): AsyncGenerator<DeleteNamespaceEvent>;
  get(namespace: string, id: string): Promise<Operation>;
  list(input: { namespace: string; kind?: OperationKind; state?: OperationState; pageSize: number; pageToken: string }): Promise<{ operations: Operation[]; nextPageToken: string }>;
  cancel(namespace: string, id: string): Promise<Operation>;
  watch(namespace: string, id: string, afterBatch: number, signal: AbortSignal): AsyncGenerator<WatchEvent>;
  /** Starts looking for queued and abandoned operations every pollMs. */
  start(): void;
  /** Stops taking work, stops running operations between batches and gives them back (queued). */
  stop(): Promise<void>;
  /** Operations running in this process now (for metrics and tests). */
  stats(): { running: number };
  /** Every operation in the database, by kind and state (for metrics). */
  counts(): Promise<{ kind: OperationKind; state: OperationState; count: number }[]>;
  /** Starts a retention sweep of the namespace unless one is open; whether it started one. */
  offerSweep(namespaceId: string, namespace: string): Promise<boolean>;
  /** Rows retention sweeps of this process deleted since it started (for metrics). */
  swept(): { sessions: number; traces: number };
}

/** What the runner needs. */
export interface OperationDeps {
  store: OperationStore;
  bulk: BulkDeleteStore;
  namespaces: NamespaceStore;
  /** Drops this process's cached id of a deleted namespace. */
  forget(name: string): void;
  /** This process's name in leases: unique among the processes sharing the database. */
  owner: string;
  limits?: Partial<OperationLimits>;
  logBatchFailure?: FailureLog;
  /** Where an operation that failed, or that this process lost, is reported. */
  log?: (level: "warn" | "error", message: string, fields: Record<string, unknown>) => void;
  /** Retention sweeps: the policies in force and what the sweep deletes besides sessions. */
  retention?: { policies: RetentionPolicies; sweeps: SweepStore };
  /** Records a retention sweep that deleted something in the audit log. */
  audit?: (event: { namespace: string; itemCount: number; operationId: string }) => void;
  /** Told of every session a committed batch deleted (their watchers end). */
  changed?: Changed;
}

interface Running {
  lease: Lease;
  /** Set when the operation should stop after the batch in hand: cancelled, or given back. */
  stop?: "cancel" | "release";
  /**
   * A statement of the operation is in progress (a page read, or a batch's transaction, which extends the
   * lease itself): a renewal then waits for the next tick, so that an operation holds one pooled
   * connection at a time.
   */
  busy: boolean;
  /** A renewal in flight: the operation's next statement waits for it (one connection at a time). */
  renewing?: Promise<unknown>;
  /** The number of the last batch committed. */
  committed: number;
  done: Promise<void>;
}

/** An operation that crashed the processes running it this many times is given up (FAILED). */
const MAX_ATTEMPTS = 5;

const emptyBulkProgress = (): BulkProgress => ({ counters: { completed: 0, total: 0, deleted: 0, notFound: 0, invalid: 0, failed: 0 }, deleted: emptyDeletedCounts(), memories: 0 });

function view(r: OperationRecord): Operation {
  const { request, progress, result, cursor: _, ...rest } = r;
  const id = encodeGlobalId("Operation", r.uuid);
  if (r.kind === "forget_subject") {
    const req = request as ErasureRequest;
    return { ...rest, id, plan: { dryRun: false, batchSize: req.batchSize }, progress: emptyBulkProgress(), result: null, erasure: progress as ErasureCounts };
  }
  return { ...rest, id, plan: request as BulkPlan, progress: progress as BulkProgress, result: result as NamespaceResult | null, erasure: null };
}

/** Builds the operations of this process. */
export function createOperations(deps: OperationDeps): Operations {
  const limits: OperationLimits = { ...DEFAULT_OPERATION_LIMITS, ...deps.limits };
  const { store, bulk, owner } = deps;
  const log = deps.log ?? (() => {});
  const logBatchFailure = deps.logBatchFailure ?? (() => {});
  const changed = deps.changed ?? (() => {});
  const running = new Map<string, Running>();
  /** Slots reserved by claims in flight (so that concurrent claims cannot exceed maxRunning). */
  let pending = 0;
  const claims = new Set<Promise<void>>();
  /** Per operation, how many local events happened (so a watcher cannot miss one between its read and its wait). */
  const versions = new Map<string, number>();
  const swept = { sessions: 0, traces: 0 };
  /**
   * Plans of operations this process stored, until it runs them or stops following them: the process
   * that claims its own operation need not read its list of up to 100,000 identifiers back.
   */
  const plans = new Map<string, BulkPlan>();
  /**
   * The last batches of operations running here, for watchers in this process (which then need not read
   * them back from the database), and those that ended here.
   */
  const recent = new Map<string, { number: number; batch: OperationBatch }[]>();
  const endedHere = new Set<string>();
  const RECENT = 32;
  /** How many watchers (follow) each operation has in this process; the maps above hold only watched ones. */
  const watchers = new Map<string, number>();
  /** Local wake-ups of watchers, by operation uuid: called on each batch and end in this process. */
  const wakers = new Map<string, Set<() => void>>();
  let stopping = false;
  let poller: NodeJS.Timeout | undefined;
  let filling: Promise<void> | undefined;

  const wake = (uuid: string) => {
    if (watchers.has(uuid)) versions.set(uuid, (versions.get(uuid) ?? 0) + 1);
    for (const w of wakers.get(uuid) ?? []) w();
  };

  /** Runs a watcher's database read within the watchers' share of the pool (a wait for it is bounded too). */
  const watcherRead = createSlots(WATCH_READERS, WATCH_READ_WAIT_MS, () => new StoreBusyError(`no database read for WatchOperation within ${WATCH_READ_WAIT_MS} ms; watch again in a moment`));

  /** The version of `uuid`'s local events to wait from. */
  const watchVersion = (uuid: string): number => versions.get(uuid) ?? 0;

  /**
   * Waits for a local event of `uuid` after version `seen` (at once if one happened since), at most
   * `ms`; the signal's reason when aborted.
   */
  function waitFor(uuid: string, seen: number, ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if ((versions.get(uuid) ?? 0) !== seen) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let set = wakers.get(uuid);
      if (!set) wakers.set(uuid, (set = new Set()));
      const waiters = set;
      const leave = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        waiters.delete(waker);
        if (!waiters.size && wakers.get(uuid) === waiters) wakers.delete(uuid);
      };
      const waker = () => {
        leave();
        resolve();
      };
      const onAbort = () => {
        leave();
        reject(signal.reason);
      };
      const timer = setTimeout(waker, ms);
      waiters.add(waker);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Runs one statement (or transaction) of a running operation: after a lease renewal in flight, and
   * marked busy so that no renewal starts meanwhile (one pooled connection at a time).
   */
  async function exclusive<T>(run: Running, work: () => Promise<T>): Promise<T> {
    await run.renewing;
    run.busy = true;
    try {
      return await work();
    } finally {
      run.busy = false;
    }
  }

  /** After batch `number` of a running operation committed: kept for watchers here, who are woken. */
  function committedBatch(uuid: string, run: Running, number: number, batch: OperationBatch, cancelRequested: boolean): void {
    run.committed = number;
    keep(uuid, number, batch);
    wake(uuid);
    if (cancelRequested && !run.stop) run.stop = "cancel";
  }

  /** Runs one batch after another from the operation's cursor; the state it ended in, or undefined when given back. */
  async function execute(op: OperationRecord, run: Running): Promise<{ state: "succeeded" | "cancelled"; result: NamespaceResult | null } | undefined> {
    const plan = await planOf(op);
    let cursor = op.cursor as BulkCursor;
    let progress = op.progress as BulkProgress;
    let number = op.batches;
    for (;;) {
      if (run.stop === "cancel") return { state: "cancelled", result: null };
      if (run.stop === "release") return undefined;
      const next = await exclusive(run, () => nextBatch(bulk, op.namespaceId, plan, cursor));
      if (!next) break;
      const keys = batchKeys(plan, next.entries);
      const deletion = op.namespaceId !== NO_NAMESPACE && keys.values.length ? { namespaceId: op.namespaceId, keys, opts: { dryRun: plan.dryRun, purgeMemories: plan.purgeMemories } } : undefined;
      let after = progress;
      let lastBatch: BulkBatch | undefined;
      const record = (failure?: string) => (found: Parameters<typeof batchResults>[4]) => {
        const r = batchResults(plan, op.namespaceId, next.entries, progress, found, failure);
        after = r.progress;
        lastBatch = r.batch;
        return { batch: r.batch, cursor: next.cursor, progress: r.progress };
      };
      const committed = await commit(run, number + 1, deletion, record, keys.values.length);
      number++;
      cursor = next.cursor;
      progress = after;
      committedBatch(op.uuid, run, number, lastBatch!, committed.cancelRequested);
    }
    return { state: "succeeded", result: op.kind === "delete_namespace" ? await finishNamespace(op, progress) : null };
  }

  /** The plan of an operation: this process's own copy, or the whole request read back (a takeover). */
  async function planOf(op: OperationRecord): Promise<BulkPlan> {
    const own = plans.get(op.uuid);
    if (own) return own;
    const light = op.request as BulkPlan;
    if (light.selector.kind !== "ids" && light.selector.kind !== "sessionIds") return light;
    return (await store.request(op.uuid)) as BulkPlan;
  }

  /** Keeps a committed batch for this process's watchers (when there are any). */
  function keep(uuid: string, number: number, batch: OperationBatch): void {
    if (!watchers.has(uuid)) return;
    let list = recent.get(uuid);
    if (!list) recent.set(uuid, (list = []));
    list.push({ number, batch });
    if (list.length > RECENT) list.shift();
  }

  /**
   * Commits one batch: its deletion and its record, under the lease. A batch that loses a race is run
   * again; one that fails otherwise is recorded FAILED (its sessions untouched) and the operation goes on;
   * a lost lease or an outage stops the operation.
   */
  async function commit(run: Running, number: number, deletion: BatchDeletion | undefined, record: (failure?: string) => (found: DeletedSession[]) => BatchRecord, size: number): Promise<{ cancelRequested: boolean }> {
    return exclusive(run, async () => {
      try {
        let gone: DeletedSession[] = [];
        const committed = await retryOnConflict(
          () =>
            store.commitBatch(run.lease, limits.leaseMs, number, deletion, (found) => {
              gone = found;
              return record()(found);
            }),
          { attempts: BATCH_ATTEMPTS },
        );
        if (deletion && !deletion.opts.dryRun) for (const s of gone) changed(deletion.namespaceId, { uuid: s.uuid }, true);
        return committed;
      } catch (err) {
        if (err instanceof LeaseLostError || err instanceof UnavailableError) throw err;
        logBatchFailure(err, size);
        return await store.commitBatch(run.lease, limits.leaseMs, number, undefined, record(BATCH_FAILED));
      }
    });
  }

  /**
   * An erasure: one step after another from the operation's cursor (erasure.ts), each committed with its
   * record under the lease. A step that loses a race is run again; one that fails otherwise fails the
   * operation (an erasure is never reported done with a part skipped): calling ForgetSubject again
   * finishes it.
   */
  async function erase(op: OperationRecord, run: Running): Promise<{ state: "succeeded" | "cancelled"; result: null } | undefined> {
    const request = op.request as ErasureRequest;
    if (!request.private) throw new NotFoundError("the erasure's subject is no longer stored");
    const subject = { kind: request.subject.kind, id: request.private.id };
    let cursor = op.cursor as ErasureCursor;
    let counts = op.progress as ErasureCounts;
    let number = op.batches;
    while (cursor.step !== "done") {
      if (run.stop === "cancel") return { state: "cancelled", result: null };
      if (run.stop === "release") return undefined;
      const work = { namespaceId: op.namespaceId, subject, cursor, limit: request.batchSize };
      let done: ErasureStepResult | undefined;
      const record = (r: ErasureStepResult) => {
        done = r;
        const batch: ErasureBatch = { step: work.cursor.step, counts: addCounts(counts, r) };
        return { batch, cursor: nextCursor(work.cursor, r), progress: batch.counts };
      };
      const committed = await exclusive(run, () => retryOnConflict(() => store.commitErasure(run.lease, limits.leaseMs, number + 1, work, record), { attempts: BATCH_ATTEMPTS }));
      for (const s of done!.sessions ?? []) changed(op.namespaceId, { uuid: s.uuid }, true);
      number++;
      counts = addCounts(counts, done!);
      cursor = nextCursor(work.cursor, done!);
      committedBatch(op.uuid, run, number, { step: work.cursor.step, counts }, committed.cancelRequested);
    }
    return { state: "succeeded", result: null };
  }

  /**
   * A retention sweep: the namespace's expired sessions, a batch at a time (the policy read again
   * before each batch, each session checked again under its row lock), then its expired sessionless traces.
   */
  async function sweep(op: OperationRecord, run: Running): Promise<{ state: "succeeded" | "cancelled"; result: SweepResult } | undefined> {
    if (!deps.retention) throw new Error("retention sweeps need deps.retention");
    const { policies, sweeps } = deps.retention;
    const plan = op.request as BulkPlan;
    let cursor = op.cursor as BulkCursor;
    let progress = op.progress as BulkProgress;
    let number = op.batches;
    const result: SweepResult = { traces: (op.result as SweepResult | null)?.traces ?? 0 };
    for (;;) {
      if (run.stop === "cancel") return { state: "cancelled", result };
      if (run.stop === "release") return undefined;
      const policy = await policies.fresh(op.namespaceId);
      const c = cutoffsOf(policy);
      if (!c) break;
      const page = await exclusive(run, () => sweeps.expiredPage(op.namespaceId, c, cursor.after, plan.batchSize));
      if (!page.uuids.length) break;
      const entries = page.uuids.map((uuid) => ({ identifier: encodeSessionId(op.namespaceId, uuid), key: uuid }));
      const next: BulkCursor = { offset: cursor.offset + entries.length, after: page.last };
      const sweepPlan: BulkPlan = { ...plan, purgeMemories: policy.purgeMemories };
      let after = progress;
      let lastBatch: BulkBatch | undefined;
      const record = (failure?: string) => (found: DeletedSession[]) => {
        const r = batchResults(sweepPlan, op.namespaceId, entries, progress, found, failure);
        after = r.progress;
        lastBatch = r.batch;
        return { batch: r.batch, cursor: next, progress: r.progress };
      };
      const deletion: BatchDeletion = { namespaceId: op.namespaceId, keys: { kind: "uuid", values: page.uuids }, opts: { dryRun: false, purgeMemories: policy.purgeMemories }, recheck: c };
      const committed = await commit(run, number + 1, deletion, record, entries.length);
      swept.sessions += after.counters.deleted - progress.counters.deleted;
      number++;
      cursor = next;
      progress = after;
      committedBatch(op.uuid, run, number, lastBatch!, committed.cancelRequested);
    }
    const policy = await policies.fresh(op.namespaceId);
    if (policy.sessionlessTraceTtlMs) {
      const before = new Date(Date.now() - policy.sessionlessTraceTtlMs);
      for (let n = TRACE_BATCH; n === TRACE_BATCH && !run.stop; ) {
        n = await sweeps.deleteSessionlessTraces(op.namespaceId, before, TRACE_BATCH);
        result.traces += n;
        swept.traces += n;
      }
    }
    const deleted = progress.counters.deleted + result.traces;
    if (deleted) deps.audit?.({ namespace: op.namespace, itemCount: deleted, operationId: encodeGlobalId("Operation", op.uuid) });
    return { state: run.stop === "cancel" ? "cancelled" : "succeeded", result };
  }

  /** The last step of a namespace deletion: the namespace row, with what it still holds. */
  async function finishNamespace(op: OperationRecord, progress: BulkProgress): Promise<NamespaceResult> {
    const gone = await deps.namespaces.delete(op.namespaceId);
    deps.forget(op.namespace);
    if (!gone) {
      // Gone before this attempt: by an earlier attempt of this operation (taken over after it deleted
      // the row), or by a concurrent call.
      if (op.attempts <= 1) throw new NotFoundError(`namespace "${op.namespace}" was deleted by a concurrent call`);
      return { namespace: { uuid: op.namespaceId, name: op.namespace, createTime: null }, memories: progress.memories, traces: 0, apiKeys: 0 };
    }
    const ns = gone.namespace;
    return { namespace: { uuid: ns.uuid, name: ns.name, createTime: ns.createTime.toISOString() }, memories: gone.memories + progress.memories, traces: gone.traces, apiKeys: gone.apiKeys };
  }

  /** Runs a claimed operation to its end (or until it is given back) in the background. */
  function launch(op: OperationRecord): void {
    const run: Running = { lease: { uuid: op.uuid, owner: op.leaseOwner ?? owner }, busy: false, committed: op.batches, done: Promise.resolve() };
    // Batches kept from an earlier run here may be followed by batches committed elsewhere since.
    recent.delete(op.uuid);
    endedHere.delete(op.uuid);
    // Asked to stop before this process took it: cancelled (a cancellation wins over a hand-back), or
    // claimed while this process began to shut down.
    if (op.cancelRequested) run.stop = "cancel";
    else if (stopping) run.stop = "release";
    running.set(op.uuid, run);
    // Watchers here of an operation that waited: it now runs here, and they can wait for its batches.
    wake(op.uuid);
    const renewer = setInterval(() => {
      if (run.busy || run.renewing) return;
      run.renewing = store.renew(run.lease, limits.leaseMs).then(
        (r) => {
          if (!r.held) run.stop = "release";
          else if (r.cancelRequested && !run.stop) run.stop = "cancel";
        },
        () => {}, // the next renewal, or the batch's own transaction, tells
      ).finally(() => (run.renewing = undefined));
    }, Math.max(50, Math.floor(limits.leaseMs / 3)));
    renewer.unref?.();
    run.done = (async () => {
      try {
        if (op.attempts > MAX_ATTEMPTS) {
          log("error", "operation given up: its runs kept failing", { operation: op.uuid, attempts: op.attempts });
          await store.end(run.lease, "failed", `given up after ${MAX_ATTEMPTS} attempts (see server logs)`, op.result);
          return;
        }
        const ended = op.kind === "retention_sweep" ? await sweep(op, run) : op.kind === "forget_subject" ? await erase(op, run) : await execute(op, run);
        if (ended) await store.end(run.lease, ended.state, "", ended.result);
        else await store.release(run.lease);
      } catch (err) {
        if (err instanceof LeaseLostError) {
          log("warn", "operation taken over by another process", { operation: op.uuid });
        } else if (err instanceof UnavailableError) {
          // The database is away: the lease runs out and the operation is taken up again later.
          log("warn", "operation interrupted: the database is unavailable", { operation: op.uuid, err });
          await store.release(run.lease).catch(() => {});
        } else if (err instanceof NotFoundError) {
          await store.end(run.lease, "failed", err.message, null).catch(() => {});
        } else {
          log("error", "operation failed", { operation: op.uuid, kind: op.kind, err });
          await store.end(run.lease, "failed", "the operation failed on the server (see server logs)", null).catch(() => {});
        }
      } finally {
        clearInterval(renewer);
        if (running.get(op.uuid) === run) running.delete(op.uuid);
        plans.delete(op.uuid);
        if (watchers.has(op.uuid)) endedHere.add(op.uuid);
        wake(op.uuid);
        void fill();
      }
    })();
  }

  /** Claims work while this process has free slots: `uuid` first when given, then the oldest. */
  function claimInto(uuid?: string): Promise<void> {
    if (stopping || running.size + pending >= limits.maxRunning) return Promise.resolve();
    pending++;
    const claim = (async () => {
      try {
        const op = await store.claim(owner, limits.leaseMs, uuid, [...running.keys()]);
        if (op) launch(op);
      } finally {
        pending--;
      }
    })();
    claims.add(claim);
    void claim.catch(() => {}).finally(() => claims.delete(claim));
    return claim;
  }

  function fill(): Promise<void> {
    if (filling) return filling;
    const p = (async () => {
      try {
        while (!stopping && running.size + pending < limits.maxRunning) {
          const before = running.size;
          await claimInto();
          if (running.size === before) break;
        }
      } catch {
        // The database is away: the next poll tries again.
      }
    })();
    // Cleared once settled (never from inside: with no free slot the body ends before `filling` is set,
    // and a settled promise kept there would stop this process from ever claiming again).
    filling = p;
    void p.finally(() => {
      if (filling === p) filling = undefined;
    });
    return p;
  }

  /** The operation `id` names, if it belongs to `namespace`. @throws NotFoundError */
  async function scoped(namespace: string, id: string): Promise<OperationRecord> {
    const name = checkNamespace(namespace);
    const uuid = decodeGlobalId("Operation", id);
    const op = await store.find(uuid);
    if (op) {
      const namespaceId = await bulk.namespaceId(name, false);
      // A deleted namespace's operations stay readable under the name it had.
      if (namespaceId ? op.namespaceId === namespaceId : op.namespace === name) return op;
    }
    throw new NotFoundError(`operation ${id} not found in namespace "${name}"`);
  }

  /** Follows an operation from batch `after`: its batches, then its end. */
  async function* follow(uuid: string, after: number, signal: AbortSignal): AsyncGenerator<FollowEvent> {
    watchers.set(uuid, (watchers.get(uuid) ?? 0) + 1);
    try {
      yield* followFrom(uuid, after, signal);
    } finally {
      const left = (watchers.get(uuid) ?? 1) - 1;
      if (left > 0) watchers.set(uuid, left);
      else {
        // The last watcher of the operation in this process is gone: so is what was kept for watchers.
        watchers.delete(uuid);
        versions.delete(uuid);
        recent.delete(uuid);
        endedHere.delete(uuid);
      }
    }
  }

  async function* followFrom(uuid: string, after: number, signal: AbortSignal): AsyncGenerator<FollowEvent> {
    let last = after;
    for (;;) {
      const seen = watchVersion(uuid);
      // Batches this process committed, straight from memory while they follow on from the last one seen.
      const local = (recent.get(uuid) ?? []).filter((b) => b.number > last);
      if (local[0]?.number === last + 1) {
        for (const b of local) {
          if (b.number !== last + 1) break; // only an unbroken run on from the last one seen
          last = b.number;
          yield { type: "batch", number: b.number, batch: b.batch };
        }
        continue;
      }
      // Running here and caught up with what it committed: wait for its next batch (or its end) without
      // asking the database.
      const run = running.get(uuid);
      if (run && !endedHere.has(uuid) && last >= run.committed) {
        await waitFor(uuid, seen, limits.leaseMs, signal);
        continue;
      }
      const rows = await watcherRead(() => store.batches(uuid, last, WATCH_PAGE));
      for (const r of rows) {
        last = r.number;
        yield { type: "batch", number: r.number, batch: r.batch as OperationBatch };
      }
      if (rows.length === WATCH_PAGE) continue;
      const op = await watcherRead(() => store.find(uuid));
      if (!op) throw new NotFoundError("the operation was deleted");
      if (ENDED_STATES.includes(op.state)) {
        // Batches that committed between the read above and the end.
        for (let more = await watcherRead(() => store.batches(uuid, last, WATCH_PAGE)); more.length; more = await watcherRead(() => store.batches(uuid, last, WATCH_PAGE))) {
          for (const r of more) {
            last = r.number;
            yield { type: "batch", number: r.number, batch: r.batch as OperationBatch };
          }
        }
        yield { type: "ended", op };
        return;
      }
      await waitFor(uuid, seen, running.has(uuid) ? limits.leaseMs : limits.watchPollMs, signal);
    }
  }

  /** Stores a new operation (`plan`: a bulk delete's, kept here for its run) and runs it here when a slot is free. */
  async function enqueue(op: NewOperation, plan?: BulkPlan): Promise<OperationRecord> {
    if (stopping) throw new UnavailableError("the server is shutting down");
    if (op.namespaceId !== NO_NAMESPACE && (await store.countQueued(op.namespaceId)) >= limits.maxQueued) {
      throw new RateLimitedError(`too many operations of namespace "${op.namespace}" are waiting (${limits.maxQueued})`, Math.max(1000, limits.pollMs));
    }
    const stored = await store.insert(op);
    if (plan) plans.set(stored.uuid, plan);
    // Claimed before the first message when a slot is free (one short statement: the claim does not
    // read the plan back), so that a queued operation is one that really waits.
    await claimInto(stored.uuid).catch(() => {});
    return stored;
  }

  /** How long an operation that succeeded took. @throws CancelledError or OperationFailedError when it did not succeed */
  function succeeded(ended: OperationRecord): number {
    const id = encodeGlobalId("Operation", ended.uuid);
    if (ended.state === "cancelled") throw new CancelledError(`operation ${id} was cancelled`);
    if (ended.state === "failed") throw new OperationFailedError(`operation ${id} failed: ${ended.error}`);
    return (ended.endTime ?? new Date()).getTime() - ended.createTime.getTime();
  }

  /** Stores a new bulk delete (or namespace deletion), runs it here when a slot is free, and follows it for its caller. */
  async function* startAndFollow(
    kind: OperationKind,
    input: { namespace: string; namespaceId: string; plan: BulkPlan; progress: BulkProgress; detach: boolean; actor: string },
    signal: AbortSignal,
  ): AsyncGenerator<BulkDeleteEvent | { type: "result"; op: OperationRecord }> {
    const { plan, progress } = input;
    const op = await enqueue({ namespaceId: input.namespaceId, namespace: input.namespace, kind, request: plan, cursor: { offset: 0 }, progress, detach: input.detach, actor: input.actor }, plan);
    try {
      yield { type: "started", total: progress.counters.total, dryRun: plan.dryRun, batchSize: plan.batchSize, operationId: encodeGlobalId("Operation", op.uuid) };
      for await (const e of follow(op.uuid, 0, signal)) {
        if (e.type === "batch") {
          const b = e.batch as BulkBatch;
          yield { type: "progress", results: b.results, counters: b.counters };
          continue;
        }
        const ended = e.op;
        const elapsedMs = succeeded(ended);
        const p = ended.progress as BulkProgress;
        yield { type: "summary", counters: p.counters, deleted: p.deleted, elapsedMs, dryRun: plan.dryRun };
        yield { type: "result", op: ended };
      }
    } finally {
      // The caller went away (or the call ended early): without `detach`, the work stops too. Not when
      // this process is shutting down: then the operation is handed to another process.
      if (!running.has(op.uuid)) plans.delete(op.uuid);
      if (signal.aborted && !input.detach && !stopping) {
        const run = running.get(op.uuid);
        if (run && !run.stop) run.stop = "cancel";
        await store.requestCancel(op.uuid).catch(() => {});
      }
    }
  }

  return {
    async *bulkDelete(input, signal) {
      const planned = await planBulkDelete(bulk, input);
      for await (const e of startAndFollow("bulk_delete_sessions", { ...planned, detach: input.detach ?? false, actor: input.actor ?? "" }, signal)) {
        if (e.type !== "result") yield e;
      }
    },

    async *forgetSubject(input, signal) {
      const { namespace, subject, batchSize } = checkErasure(input);
      const namespaceId = await bulk.namespaceId(namespace, false);
      if (!namespaceId) throw new NotFoundError(`namespace "${namespace}" not found`);
      const sha256 = subjectDigest(subject.id);
      const request: ErasureRequest = { subject: { kind: subject.kind, sha256 }, batchSize, private: { id: subject.id } };
      const cursor: ErasureCursor = { step: "sessions" };
      // Always detached: an erasure left half done because its caller went away would be worse than one
      // that finishes (CancelOperation stops it on purpose).
      const op = await enqueue({ namespaceId, namespace, kind: "forget_subject", request, cursor, progress: emptyErasureCounts(), detach: true, actor: input.actor ?? "" });
      yield { type: "started", operationId: encodeGlobalId("Operation", op.uuid), namespace, subjectKind: subject.kind, subjectSha256: sha256 };
      for await (const e of follow(op.uuid, 0, signal)) {
        if (e.type === "batch") {
          const b = e.batch as ErasureBatch;
          yield { type: "progress", step: b.step, counts: b.counts };
          continue;
        }
        const elapsedMs = succeeded(e.op);
        yield { type: "summary", counts: e.op.progress as ErasureCounts, elapsedMs };
      }
    },

    async *deleteNamespace(input, signal) {
      const name = input.name;
      const found: Namespace | undefined = await deps.namespaces.find(name);
      if (!found) throw new NotFoundError(`namespace "${name}" not found`);
      const planned = await planBulkDelete(bulk, { namespace: name, selector: { kind: "filter", filter: {}, includeDeleted: true }, dryRun: false, purgeMemories: true, batchSize: input.batchSize });
      for await (const e of startAndFollow("delete_namespace", { ...planned, detach: input.detach ?? false, actor: input.actor ?? "" }, signal)) {
        if (e.type !== "result") {
          yield e;
          continue;
        }
        const r = e.op.result as NamespaceResult;
        const namespace = { uuid: r.namespace.uuid, name: r.namespace.name, createTime: r.namespace.createTime ? new Date(r.namespace.createTime) : found.createTime };
        yield { type: "deleted", namespace, memories: r.memories, traces: r.traces, apiKeys: r.apiKeys };
      }
    },

    get: async (namespace, id) => view(await scoped(namespace, id)),

    async list(input) {
      const name = checkNamespace(input.namespace);
      const limit = checkPageSize(input.pageSize);
      const fp = fingerprint(["operations", name, input.kind ?? "", input.state ?? ""]);
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace, kind and state") : undefined;
      const namespaceId = await bulk.namespaceId(name, false);
      const rows = await store.list({ namespace: namespaceId ? { id: namespaceId } : { name }, kind: input.kind, state: input.state }, after, limit + 1);
      const page = pageOf(rows, limit, (last) => encodePageToken({ createTime: last.createTime, uuid: last.uuid }, fp));
      return { operations: page.items.map(view), nextPageToken: page.nextPageToken };
    },

    async cancel(namespace, id) {
      const op = await scoped(namespace, id);
      if (op.state === "succeeded" || op.state === "failed") throw new PreconditionError(`operation ${id} already ${op.state}`);
      const after = await store.requestCancel(op.uuid);
      const run = running.get(op.uuid);
      if (run && !run.stop) run.stop = "cancel";
      if (!after || after.state === "succeeded" || after.state === "failed") throw new PreconditionError(`operation ${id} already ${after?.state ?? "ended"}`);
      wake(op.uuid);
      return view(after);
    },

    async *watch(namespace, id, afterBatch, signal) {
      if (!Number.isSafeInteger(afterBatch) || afterBatch < 0) throw new InvalidInputError("after_batch", "must be 0 or more");
      const op = await scoped(namespace, id);
      yield { type: "operation", operation: view(op) };
      for await (const e of follow(op.uuid, afterBatch, signal)) {
        if (e.type === "batch") yield e;
        else yield { type: "ended", operation: view(e.op) };
      }
    },

    start() {
      if (poller || stopping) return;
      void fill();
      poller = setInterval(() => void fill(), limits.pollMs);
      poller.unref?.();
    },

    async stop() {
      stopping = true;
      clearInterval(poller);
      for (const run of running.values()) if (!run.stop) run.stop = "release";
      await filling;
      await Promise.all([...claims].map((c) => c.catch(() => {})));
      await Promise.all([...running.values()].map((r) => r.done));
    },

    stats: () => ({ running: running.size }),
    counts: () => store.counts(),
    swept: () => ({ ...swept }),

    async offerSweep(namespaceId, ns) {
      if (!deps.retention || stopping) return false;
      const plan: BulkPlan = { selector: { kind: "filter", filter: {}, includeDeleted: true }, dryRun: false, purgeMemories: false, batchSize: SWEEP_BATCH };
      const progress = emptyBulkProgress();
      const op = await store.insertSweep({ namespaceId, namespace: ns, kind: "retention_sweep", request: plan, cursor: { offset: 0 }, progress, detach: true, actor: "system:retention" });
      if (!op) return false;
      await claimInto(op.uuid).catch(() => {});
      return true;
    },
  };
}
