/**
 * The bulk-delete store (the domain's BulkDeleteStore) and the batch delete behind it: one code path
 * for DeleteSession, BulkDeleteSessions and DeleteNamespace. A batch is one call of a database function
 * that takes each session through its unique key (see deleteBatch); the rest goes by foreign-key
 * cascade. What went with each session is read from the counters of the deleted row (`RETURNING`):
 * every write of child rows updates those counters under the session row lock, so they are exact at
 * this point.
 */
import type { DataSource, EntityManager } from "typeorm";
import type { BatchKeys, BatchOptions, BulkDeleteStore, DeletedSession, SnapshotKey, SnapshotMark } from "../../domain/bulk-delete-store.js";
import type { SessionFilter } from "../../domain/session-model.js";
import { sqlOf } from "../sql.js";
import { filterSql } from "./session-filter.js";

/** One session a batch found: deleted (or read, in a dry run), or left alone as `stale`. */
export interface BatchRow extends DeletedSession {
  /** A version was asked for and the session has another: nothing was done to it. */
  stale: boolean;
}

/**
 * Deletes (or, in a dry run, reads) the sessions of `keys` that exist in the namespace: one call of
 * sessiond_delete_sessions() (migration UniqueKeyPlans), which takes the sessions one by one through
 * their unique key, locks them in id order (so overlapping batches of concurrent calls cannot deadlock,
 * and a second caller finds them gone), counts (or purges) each one's memories while the link still
 * exists, then deletes it, returning its counters. Sessions already gone are absent from the result.
 * With `version`, a session of another version is left alone and comes back `stale`.
 *
 * One statement: atomic without a transaction (the caller's, when `db` is in one), one round trip, and
 * under Citus, outside a transaction, run whole on the worker that holds the namespace. Addressing each
 * session by its key (not `id = ANY($ids)`) keeps the plan the same on tables never analyzed, where the
 * planner would guess that reading the whole namespace is cheaper than probing the ids.
 */
export async function deleteBatch(db: EntityManager, namespaceId: string, keys: BatchKeys, opts: BatchOptions, version?: number): Promise<BatchRow[]> {
  if (!keys.values.length) return [];
  // Uuids travel as one comma-separated text (they hold no commas): pg's array literal encoder escapes
  // every element and allocates several times more per id, which shows in the server's memory.
  const [uuids, externalIds] = keys.kind === "uuid" ? [keys.values.join(","), null] : [null, keys.values];
  const rows: any[] = await sqlOf(db)(
    `SELECT id, external_id, participants, turns, traces, spans, annotations, archived_turns, compactions, memories, stale
     FROM sessiond_delete_sessions($1::uuid, string_to_array($2::text, ',')::uuid[], $3::text[], $4::boolean, $5::boolean, $6::integer)`,
    [namespaceId, uuids, externalIds, opts.dryRun, opts.purgeMemories, version ?? null],
  );
  return rows.map((r) => ({
    uuid: r.id,
    externalId: r.external_id,
    counts: { participants: r.participants, turns: r.turns, traces: r.traces, spans: r.spans, annotations: r.annotations, archivedTurns: r.archived_turns, compactions: r.compactions },
    memories: r.memories,
    stale: r.stale,
  }));
}

/**
 * Fixes the set of the namespace's sessions matching `filter` as the call begins, without holding a
 * connection: one statement counts them and notes the last of them in (create_time, id) order (the
 * high-water mark); each page is then one short keyset statement of its own (snapshotPage), bounded by
 * that mark, so a bulk delete uses one pooled connection at a time and never waits for a second while
 * holding one, and the position between pages is two values that any process can resume from.
 * Sessions created after the call began sort after the mark (create_time is the creating transaction's
 * start) and are never caught; memory stays flat however many sessions match. Unlike a held
 * transaction, each page sees the present: sessions deleted meanwhile, or that stopped matching, are
 * skipped (a session whose creation was committing at the very instant the call began may or may not be).
 */
export async function markSnapshot(dataSource: DataSource, namespaceId: string, filter: SessionFilter, includeDeleted: boolean): Promise<SnapshotMark> {
  const { where, params } = filterSql(namespaceId, filter, includeDeleted);
  const [head]: { n: number; create_time: Date | null; id: string | null }[] = await dataSource.query(
    `SELECT c.n, l.create_time, l.id
     FROM (SELECT count(*)::int AS n FROM sessions s WHERE ${where}) c
     LEFT JOIN LATERAL (SELECT s.create_time, s.id FROM sessions s WHERE ${where} ORDER BY s.create_time DESC, s.id DESC LIMIT 1) l ON true`,
    params,
  );
  // create_time is timestamptz(3): its ISO text carries it exactly, so keyset bounds round-trip.
  return { total: head.n, mark: head.id === null ? undefined : { createTime: head.create_time!.toISOString(), id: head.id } };
}

/** One page of a snapshot (see markSnapshot). */
export async function snapshotPage(dataSource: DataSource, namespaceId: string, filter: SessionFilter, includeDeleted: boolean, mark: SnapshotKey, after: SnapshotKey | undefined, limit: number) {
  const { where, params } = filterSql(namespaceId, filter, includeDeleted);
  const p: unknown[] = [...params, mark.createTime, mark.id];
  let cond = `${where} AND (s.create_time, s.id) <= ($${p.length - 1}::timestamptz, $${p.length}::uuid)`;
  if (after) {
    p.push(after.createTime, after.id);
    cond += ` AND (s.create_time, s.id) > ($${p.length - 1}::timestamptz, $${p.length}::uuid)`;
  }
  p.push(limit);
  const rows: { id: string; create_time: Date }[] = await dataSource.query(`SELECT s.id, s.create_time FROM sessions s WHERE ${cond} ORDER BY s.create_time, s.id LIMIT $${p.length}`, p);
  const last = rows.at(-1);
  return { uuids: rows.map((r) => r.id), last: last && { createTime: last.create_time.toISOString(), id: last.id } };
}

/**
 * The storage BulkDeleteSessions runs on: each batch one statement (deleteBatch), the snapshot's pages
 * one statement each. `namespaceId` resolves names (the session store's, with its cache).
 */
export function createBulkDeleteStore(dataSource: DataSource, namespaceId: BulkDeleteStore["namespaceId"]): BulkDeleteStore {
  return {
    namespaceId,
    // One statement each, atomic by itself: no transaction around it (under Citus that keeps the
    // function's call whole on one worker).
    deleteBatch: async (ns, keys, opts) => (await deleteBatch(dataSource.manager, ns, keys, opts)).map(({ stale: _, ...row }) => row),
    markSnapshot: (ns, filter, includeDeleted) => markSnapshot(dataSource, ns, filter, includeDeleted),
    snapshotPage: (ns, filter, includeDeleted, mark, after, limit) => snapshotPage(dataSource, ns, filter, includeDeleted, mark, after, limit),
  };
}
