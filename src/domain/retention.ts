/**
 * Retention: how long a namespace keeps its sessions and its sessionless traces. A namespace's own
 * policy (AdminService.SetRetentionPolicy) or, without one, the server's default (configuration).
 * A session past its policy (older than max_age, or idle longer than max_idle, and carrying none of the
 * hold labels) is hidden at once: loadSession answers NOT_FOUND and ListSessions leaves it out. The
 * sweeper (sweeper.ts) then deletes it, as a RETENTION_SWEEP operation.
 *
 * Policies are read through a per-process cache (POLICY_CACHE_MS): a change takes effect at once on the
 * process that made it, and within that time on the others.
 */
import { InvalidInputError, NotFoundError } from "./errors.js";
import { checkNamespace, MAX_LABEL_KEY, MAX_LABELS } from "./session-model.js";

/** A retention policy; an unset duration keeps data forever. */
export interface RetentionPolicy {
  maxAgeMs?: number;
  maxIdleMs?: number;
  purgeMemories: boolean;
  /** Label keys that exempt a session (a legal hold). */
  holdLabels: string[];
  sessionlessTraceTtlMs?: number;
}

/** A namespace's own policy, as stored. */
export interface StoredPolicy {
  policy: RetentionPolicy;
  updateTime: Date;
}

/** The storage policies need (db/). */
export interface RetentionStore {
  get(namespaceId: string): Promise<StoredPolicy | undefined>;
  set(namespaceId: string, policy: RetentionPolicy): Promise<StoredPolicy>;
  /** Namespaces that have a policy of their own, with it. */
  all(): Promise<{ namespaceId: string; policy: RetentionPolicy }[]>;
}

/**
 * Where a session's retention ends, for one policy at one instant: it is expired when it carries none
 * of `holdLabels` and it was created before `createdBefore` or last active before `idleBefore`.
 */
export interface RetentionCutoffs {
  createdBefore?: Date;
  idleBefore?: Date;
  holdLabels: string[];
}

export const MIN_RETENTION_MS = 60_000;
/** 100 years. */
export const MAX_RETENTION_MS = 100 * 365 * 24 * 3600 * 1000;
/** How long a process trusts a cached policy. */
export const POLICY_CACHE_MS = 5000;
/** A policy that keeps everything. */
export const KEEP_EVERYTHING: RetentionPolicy = { purgeMemories: false, holdLabels: [] };

const LABEL_KEY = /^[A-Za-z0-9_.-]+$/;

function checkDuration(ms: number | undefined, field: string): number | undefined {
  if (ms === undefined || ms === 0) return undefined;
  if (!Number.isFinite(ms) || ms < 0) throw new InvalidInputError(field, "must not be negative");
  if (ms < MIN_RETENTION_MS) throw new InvalidInputError(field, "must be at least 1 minute (or unset, to keep forever)");
  if (ms > MAX_RETENTION_MS) throw new InvalidInputError(field, "must be at most 100 years (or unset, to keep forever)");
  return ms;
}

/** Checks a policy as a caller sends it. @throws InvalidInputError naming the field */
export function checkPolicy(p: RetentionPolicy, field = "policy"): RetentionPolicy {
  if (p.holdLabels.length > MAX_LABELS) throw new InvalidInputError(`${field}.hold_labels`, `at most ${MAX_LABELS} labels`);
  p.holdLabels.forEach((k, i) => {
    if (!k || k.length > MAX_LABEL_KEY || !LABEL_KEY.test(k)) throw new InvalidInputError(`${field}.hold_labels[${i}]`, `must be 1 to ${MAX_LABEL_KEY} characters of [A-Za-z0-9_.-]`);
  });
  return {
    maxAgeMs: checkDuration(p.maxAgeMs, `${field}.max_age`),
    maxIdleMs: checkDuration(p.maxIdleMs, `${field}.max_idle`),
    purgeMemories: p.purgeMemories,
    holdLabels: [...new Set(p.holdLabels)],
    sessionlessTraceTtlMs: checkDuration(p.sessionlessTraceTtlMs, `${field}.sessionless_trace_ttl`),
  };
}

/** The cutoffs of `policy` at `now`; undefined when it keeps sessions forever. */
export function cutoffsOf(policy: RetentionPolicy, now = Date.now()): RetentionCutoffs | undefined {
  if (!policy.maxAgeMs && !policy.maxIdleMs) return undefined;
  return {
    createdBefore: policy.maxAgeMs ? new Date(now - policy.maxAgeMs) : undefined,
    idleBefore: policy.maxIdleMs ? new Date(now - policy.maxIdleMs) : undefined,
    holdLabels: policy.holdLabels,
  };
}

/** Whether a session is past `policy` now. */
export function isExpired(policy: RetentionPolicy, s: { createTime: Date; lastActivityTime: Date; labels: Record<string, string> }, now = Date.now()): boolean {
  if (!policy.maxAgeMs && !policy.maxIdleMs) return false;
  const old = policy.maxAgeMs !== undefined && s.createTime.getTime() < now - policy.maxAgeMs;
  const idle = policy.maxIdleMs !== undefined && s.lastActivityTime.getTime() < now - policy.maxIdleMs;
  if (!old && !idle) return false;
  for (const k of policy.holdLabels) if (Object.hasOwn(s.labels, k)) return false;
  return true;
}

/** The policies in force, per namespace, through a per-process cache. */
export interface RetentionPolicies {
  /**
   * The policy in force in a namespace (its own, or the default). On a cache miss it is read with `read`
   * when given (a transaction's own connection: never a second one while that is held), else the store.
   */
  policyOf(namespaceId: string, read?: RetentionStore["get"]): Promise<RetentionPolicy>;
  /** The policy in force when this process has it cached (no await on the hot path), else undefined. */
  cached(namespaceId: string): RetentionPolicy | undefined;
  /** The same, read from the store now (for the sweeper, before each batch). */
  fresh(namespaceId: string): Promise<RetentionPolicy>;
  /** The default, for namespaces without a policy of their own. */
  readonly defaultPolicy: RetentionPolicy;
  /** Drops this process's cached policy of a namespace (after it changed). */
  forget(namespaceId: string): void;
}

/** The policies over `store`, with `defaultPolicy` for namespaces without one. */
export function createRetentionPolicies(store: RetentionStore, defaultPolicy: RetentionPolicy = KEEP_EVERYTHING): RetentionPolicies {
  const cache = new Map<string, { policy: RetentionPolicy; until: number }>();
  return {
    defaultPolicy,
    async policyOf(namespaceId, read = store.get) {
      const hit = cache.get(namespaceId);
      if (hit && hit.until > Date.now()) return hit.policy;
      const policy = (await read(namespaceId))?.policy ?? defaultPolicy;
      if (cache.size > 10_000) cache.clear();
      cache.set(namespaceId, { policy, until: Date.now() + POLICY_CACHE_MS });
      return policy;
    },
    cached(namespaceId) {
      const hit = cache.get(namespaceId);
      return hit && hit.until > Date.now() ? hit.policy : undefined;
    },
    fresh: async (namespaceId) => (await store.get(namespaceId))?.policy ?? defaultPolicy,
    forget: (namespaceId) => void cache.delete(namespaceId),
  };
}

/** AdminService's Get/SetRetentionPolicy. */
export interface RetentionService {
  get(namespace: string): Promise<{ policy: RetentionPolicy; isDefault: boolean; updateTime?: Date }>;
  set(namespace: string, policy: RetentionPolicy): Promise<RetentionPolicy>;
}

/** The service over the store, the cache and the namespace resolver. */
export function createRetentionService(deps: { store: RetentionStore; policies: RetentionPolicies; namespaceId(name: string, create: boolean): Promise<string | undefined> }): RetentionService {
  const resolve = async (namespace: string) => {
    const name = checkNamespace(namespace);
    const id = await deps.namespaceId(name, false);
    if (!id) throw new NotFoundError(`namespace "${name}" not found`);
    return id;
  };
  return {
    async get(namespace) {
      const id = await resolve(namespace);
      const own = await deps.store.get(id);
      return own ? { policy: own.policy, isDefault: false, updateTime: own.updateTime } : { policy: deps.policies.defaultPolicy, isDefault: true };
    },
    async set(namespace, policy) {
      const checked = checkPolicy(policy);
      const id = await resolve(namespace);
      const stored = await deps.store.set(id, checked);
      deps.policies.forget(id);
      return stored.policy;
    },
  };
}
