/**
 * The sweeper: every server process runs this loop. Each pass
 * - removes client-secret request records whose rate-limit window has ended, and operations that ended
 *   more than OPERATION_KEEP_MS ago with their batches (housekeeping);
 * - looks at every namespace whose policy (its own, or the default) limits anything, and where a
 *   session is past it or a sessionless trace outlived its TTL, offers a RETENTION_SWEEP operation.
 *   At most one sweep of a namespace is open at a time (the database refuses a second), so whichever
 *   process offers first wins, and the operation runs like any other: leased, taken over when its
 *   process dies, listed by OperationService, recorded in the audit log when it deleted something.
 * The sweep itself (operations.ts) deletes expired sessions in batches, reading the policy again before
 * each batch and checking each session again under its row lock, so a session that became active, or
 * held, since it was read is kept.
 */
import type { Namespace, NamespaceStore } from "./namespace-store.js";
import type { Operations } from "./operations.js";
import { cutoffsOf, type RetentionPolicies, type RetentionPolicy, type RetentionStore } from "./retention.js";
import type { SweepStore } from "./sweep-store.js";

/** How long a client-secret request record is kept: its one-minute window, and a margin. */
const CLIENT_REQUEST_KEEP_MS = 2 * 60_000;
/** How long an ended operation (and its per-id results) is kept for OperationService. */
export const OPERATION_KEEP_MS = 7 * 24 * 3600 * 1000;
/** Namespaces read per statement when the default policy applies to all of them. */
const NAMESPACE_PAGE = 1000;

/** What one pass found and did. */
export interface SweepPass {
  /** Namespaces whose policy limits anything. */
  namespaces: number;
  /** Sweeps this pass started (a namespace with one already open gets none). */
  offered: number;
  /** How long the longest-expired session still present has been expired, in ms (0 when none is). */
  lagMs: number;
  clientRequests: number;
}

/** The loop of one process. */
export interface Sweeper {
  /** Runs a pass now (also what the loop runs). */
  pass(): Promise<SweepPass>;
  /** Starts the loop: a pass every `intervalMs`. */
  start(): void;
  /** Stops the loop (a pass in progress finishes). */
  stop(): Promise<void>;
  /** Figures of the last pass and totals since start (for metrics). */
  stats(): { lagMs: number; clientRequests: number; operations: number };
}

/** Builds the sweeper of this process. */
export function createSweeper(deps: {
  namespaces: NamespaceStore;
  retention: RetentionStore;
  policies: RetentionPolicies;
  sweeps: SweepStore;
  operations: Pick<Operations, "offerSweep">;
  intervalMs: number;
  log?: (err: unknown) => void;
  /** Recorded session changes (WatchSession, WatchSessions): pruned once older than `keepMs`. */
  changes?: { prune(before: Date): Promise<number>; keepMs: number };
}): Sweeper {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let lagMs = 0;
  let clientRequests = 0;
  let operationsPruned = 0;

  const limits = (p: RetentionPolicy) => Boolean(p.maxAgeMs || p.maxIdleMs || p.sessionlessTraceTtlMs);

  /** Every namespace whose policy limits anything, with that policy. */
  async function* targets(): AsyncGenerator<{ namespace: Namespace; policy: RetentionPolicy }> {
    const own = new Map((await deps.retention.all()).map((r) => [r.namespaceId, r.policy]));
    if (!limits(deps.policies.defaultPolicy) && ![...own.values()].some(limits)) return;
    for (let after: Namespace | undefined, page: Namespace[] = []; ; after = page.at(-1)) {
      page = await deps.namespaces.list(after && { createTime: after.createTime, uuid: after.uuid }, NAMESPACE_PAGE);
      for (const ns of page) {
        const policy = own.get(ns.uuid) ?? deps.policies.defaultPolicy;
        if (limits(policy)) yield { namespace: ns, policy };
      }
      if (page.length < NAMESPACE_PAGE) return;
    }
  }

  async function pass(): Promise<SweepPass> {
    const now = Date.now();
    const pruned = await deps.sweeps.pruneClientRequests(new Date(now - CLIENT_REQUEST_KEEP_MS));
    clientRequests += pruned;
    operationsPruned += await deps.sweeps.pruneOperations(new Date(now - OPERATION_KEEP_MS));
    if (deps.changes) await deps.changes.prune(new Date(now - deps.changes.keepMs));
    let namespaces = 0;
    let offered = 0;
    let lag = 0;
    for await (const { namespace, policy } of targets()) {
      namespaces++;
      const c = cutoffsOf(policy, now);
      const oldest = c ? await deps.sweeps.oldestExpiry(namespace.uuid, policy, c) : undefined;
      if (oldest) lag = Math.max(lag, now - oldest.getTime());
      const traces = policy.sessionlessTraceTtlMs ? await deps.sweeps.hasExpiredTraces(namespace.uuid, new Date(now - policy.sessionlessTraceTtlMs)) : false;
      if ((oldest || traces) && (await deps.operations.offerSweep(namespace.uuid, namespace.name))) offered++;
    }
    lagMs = lag;
    return { namespaces, offered, lagMs: lag, clientRequests: pruned };
  }

  const tick = () => {
    if (running) return;
    running = pass()
      .catch((err) => deps.log?.(err))
      .finally(() => (running = undefined));
  };

  return {
    pass,
    start() {
      if (timer || deps.intervalMs <= 0) return;
      timer = setInterval(tick, deps.intervalMs);
      timer.unref?.();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
    stats: () => ({ lagMs, clientRequests, operations: operationsPruned }),
  };
}
