/**
 * Retention policies (the domain's RetentionStore) and what the sweeper reads and deletes besides
 * sessions: the expired sessions of a namespace page by page, the oldest expiry still present (sweep
 * lag), expired sessionless traces, and client-secret request windows that have ended.
 */
import type { DataSource } from "typeorm";
import type { RetentionCutoffs, RetentionPolicy, RetentionStore } from "../../domain/retention.js";
import type { SweepStore } from "../../domain/sweep-store.js";

const num = (v: string | null) => (v === null ? undefined : Number(v));

/** A retention_policies row -> the domain's policy. */
export function toPolicy(r: any): RetentionPolicy {
  return { maxAgeMs: num(r.max_age_ms), maxIdleMs: num(r.max_idle_ms), purgeMemories: r.purge_memories, holdLabels: r.hold_labels, sessionlessTraceTtlMs: num(r.sessionless_trace_ttl_ms) };
}

/**
 * The SQL condition (over alias `s`) of a session past `c`, with its parameters numbered from
 * `first`: not held, and created or last active before the cutoffs.
 */
export function expiredSql(c: RetentionCutoffs, first: number): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const past: string[] = [];
  if (c.createdBefore) {
    params.push(c.createdBefore);
    past.push(`s.create_time < $${first + params.length - 1}`);
  }
  if (c.idleBefore) {
    params.push(c.idleBefore);
    past.push(`s.last_activity_time < $${first + params.length - 1}`);
  }
  if (!past.length) return { sql: "false", params: [] };
  let sql = `(${past.join(" OR ")})`;
  if (c.holdLabels.length) {
    params.push(c.holdLabels);
    sql += ` AND NOT (s.labels ?| $${first + params.length - 1}::text[])`;
  }
  return { sql, params };
}

/** The negation of expiredSql: a session still within `c` (for lists). */
export function retainedSql(c: RetentionCutoffs, first: number): { sql: string; params: unknown[] } {
  const e = expiredSql(c, first);
  return { sql: `NOT (${e.sql})`, params: e.params };
}

/** Policies over `dataSource`. */
export function createRetentionStore(dataSource: DataSource): RetentionStore {
  const db = dataSource.manager;
  return {
    async get(namespaceId) {
      const [r] = await db.query("SELECT * FROM retention_policies WHERE namespace_id = $1", [namespaceId]);
      return r ? { policy: toPolicy(r), updateTime: r.update_time } : undefined;
    },
    async set(namespaceId, p) {
      const [r] = await db.query(
        // (Citus, with retention_policies a reference table, refuses now() in DO UPDATE SET: the VALUES carry it.)
        `INSERT INTO retention_policies (namespace_id, max_age_ms, max_idle_ms, purge_memories, hold_labels, sessionless_trace_ttl_ms, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, now())
         ON CONFLICT (namespace_id) DO UPDATE SET max_age_ms = EXCLUDED.max_age_ms, max_idle_ms = EXCLUDED.max_idle_ms,
           purge_memories = EXCLUDED.purge_memories, hold_labels = EXCLUDED.hold_labels,
           sessionless_trace_ttl_ms = EXCLUDED.sessionless_trace_ttl_ms, update_time = EXCLUDED.update_time
         RETURNING *`,
        [namespaceId, p.maxAgeMs ?? null, p.maxIdleMs ?? null, p.purgeMemories, p.holdLabels, p.sessionlessTraceTtlMs ?? null],
      );
      return { policy: toPolicy(r), updateTime: r.update_time };
    },
    async all() {
      const rows: any[] = await db.query("SELECT * FROM retention_policies ORDER BY namespace_id");
      return rows.map((r) => ({ namespaceId: r.namespace_id, policy: toPolicy(r) }));
    },
  };
}

/** The sweeper's queries over `dataSource`. */
export function createSweepStore(dataSource: DataSource): SweepStore {
  const db = dataSource.manager;
  return {
    async expiredPage(namespaceId, c, after, limit) {
      const e = expiredSql(c, 2);
      const p: unknown[] = [namespaceId, ...e.params];
      let cond = `s.namespace_id = $1 AND ${e.sql}`;
      if (after) {
        p.push(after.createTime, after.id);
        cond += ` AND (s.create_time, s.id) > ($${p.length - 1}::timestamptz, $${p.length}::uuid)`;
      }
      p.push(limit);
      const rows: { id: string; create_time: Date }[] = await db.query(`SELECT s.id, s.create_time FROM sessions s WHERE ${cond} ORDER BY s.create_time, s.id LIMIT $${p.length}`, p);
      const last = rows.at(-1);
      return { uuids: rows.map((r) => r.id), last: last && { createTime: last.create_time.toISOString(), id: last.id } };
    },

    async oldestExpiry(namespaceId, policy, c) {
      const e = expiredSql(c, 4);
      const [r] = await db.query(
        `SELECT min(LEAST(CASE WHEN $2::bigint IS NULL THEN NULL ELSE s.create_time + $2::bigint * interval '1 millisecond' END,
                          CASE WHEN $3::bigint IS NULL THEN NULL ELSE s.last_activity_time + $3::bigint * interval '1 millisecond' END)) AS at
         FROM sessions s WHERE s.namespace_id = $1 AND ${e.sql}`,
        [namespaceId, policy.maxAgeMs ?? null, policy.maxIdleMs ?? null, ...e.params],
      );
      return r.at ?? undefined;
    },

    async hasExpiredTraces(namespaceId, before) {
      const [r] = await db.query("SELECT EXISTS (SELECT 1 FROM traces WHERE namespace_id = $1 AND session_id IS NULL AND create_time < $2) AS any", [namespaceId, before]);
      return r.any;
    },

    async deleteSessionlessTraces(namespaceId, before, limit) {
      const [, count] = await db.query(
        `DELETE FROM traces WHERE namespace_id = $1 AND id IN (
           SELECT id FROM traces WHERE namespace_id = $1 AND session_id IS NULL AND create_time < $2 ORDER BY create_time LIMIT $3)`,
        [namespaceId, before, limit],
      );
      return count;
    },

    async pruneOperations(before) {
      const [, count] = await db.query("DELETE FROM operations WHERE end_time < $1", [before]);
      return count;
    },

    async pruneClientRequests(before) {
      const [, count] = await db.query("DELETE FROM client_requests WHERE at < $1", [before]);
      return count;
    },
  };
}
