/**
 * The bulk-delete store (the domain's BulkDeleteStore) and the batch delete behind it: one code path
 * for DeleteSession and BulkDeleteSessions. A batch is one transaction
 * of three statements: lock the sessions in id order (so overlapping batches of concurrent calls cannot
 * deadlock, and a second caller finds them gone), count their memories and unlink (or purge) them, then
 * one DELETE; the rest goes by foreign-key cascade. What
 * went with each session is read from the counters of the deleted row (`RETURNING`): every write of
 * child rows updates those counters under the session row lock, so they are exact at this point.
 */
import type { DataSource, EntityManager } from "typeorm";
import type { BatchKeys, BatchOptions, BulkDeleteStore, DeletedSession, SessionSnapshot } from "../../domain/bulk-delete-store.js";
import type { SessionFilter } from "../../domain/session-model.js";
import { translated } from "../errors.js";
import { filterSql } from "./session-filter.js";

/** SQL for a parameter holding comma-separated uuids, as uuid[]. */
const UUIDS = (param: string) => `string_to_array(${param}, ',')::uuid[]`;

const COUNTERS = `participant_count AS participants, turn_count AS turns, trace_count AS traces, span_count AS spans,
  annotation_count AS annotations`;

/**
 * Deletes (or, in a dry run, reads) the sessions of `keys` that exist in the namespace, in the caller's
 * transaction: lock them in id order, count (or purge) their memories while the link still exists, then
 * one DELETE returning each session's counters. Sessions already gone are simply absent from the result.
 */
export async function deleteBatch(db: EntityManager, namespaceId: string, keys: BatchKeys, opts: BatchOptions): Promise<DeletedSession[]> {
  if (!keys.values.length) return [];
  // Uuids travel as one comma-separated text (they hold no commas): pg's array literal encoder escapes
  // every element and allocates several times more per id, which shows in the server's memory.
  const [match, values] = keys.kind === "uuid" ? [`id = ANY(${UUIDS("$2")})`, keys.values.join(",")] : ["external_id = ANY($2::text[])", keys.values];
  const lock = opts.dryRun ? "FOR SHARE" : "FOR UPDATE";
  const locked: { id: string }[] = await db.query(`SELECT id FROM sessions WHERE namespace_id = $1 AND ${match} ORDER BY id ${lock}`, [namespaceId, values]);
  if (!locked.length) return [];
  const ids = locked.map((r) => r.id).join(",");
  const memoryRows: { id: string; n: number }[] =
    opts.purgeMemories && !opts.dryRun
      ? await db.query(`WITH d AS (DELETE FROM memories WHERE namespace_id = $1 AND source_session_id = ANY(${UUIDS("$2")}) RETURNING source_session_id) SELECT source_session_id AS id, count(*)::int AS n FROM d GROUP BY 1`, [namespaceId, ids])
      : opts.dryRun
        ? await db.query(`SELECT source_session_id AS id, count(*)::int AS n FROM memories WHERE namespace_id = $1 AND source_session_id = ANY(${UUIDS("$2")}) GROUP BY 1`, [namespaceId, ids])
        : // The memories stay and lose their link here, not by the foreign key's SET NULL, which Citus
          // cannot keep (db/distribution.ts); the sessions are locked, so no memory links to them meanwhile.
          await db.query(
            `WITH c AS (SELECT source_session_id AS id, count(*)::int AS n FROM memories WHERE namespace_id = $1 AND source_session_id = ANY(${UUIDS("$2")}) GROUP BY 1),
                  u AS (UPDATE memories SET source_session_id = NULL WHERE namespace_id = $1 AND source_session_id = ANY(${UUIDS("$2")}))
             SELECT * FROM c`,
            [namespaceId, ids],
          );
  const memories = new Map(memoryRows.map((r) => [r.id, r.n]));
  const rows: any[] = opts.dryRun
    ? await db.query(`SELECT id, external_id, ${COUNTERS} FROM sessions WHERE namespace_id = $1 AND id = ANY(${UUIDS("$2")})`, [namespaceId, ids])
    : await db.query(`WITH d AS (DELETE FROM sessions WHERE namespace_id = $1 AND id = ANY(${UUIDS("$2")}) RETURNING id, external_id, ${COUNTERS}) SELECT * FROM d`, [namespaceId, ids]);
  return rows.map((r) => ({
    uuid: r.id,
    externalId: r.external_id,
    counts: { participants: r.participants, turns: r.turns, traces: r.traces, spans: r.spans, annotations: r.annotations },
    memories: memories.get(r.id) ?? 0,
  }));
}

/**
 * Fixes the set of the namespace's sessions matching `filter` as the call begins, without holding a
 * connection: one statement counts them and notes the last of them in (create_time, id) order (the
 * high-water mark); each page is then one short keyset statement of its own, bounded by that mark, so a
 * bulk delete uses one pooled connection at a time and never waits for a second while holding one.
 * Sessions created after the call began sort after the mark (create_time is the creating transaction's
 * start) and are never caught; memory stays flat however many sessions match. Unlike a held
 * transaction, each page sees the present: sessions deleted meanwhile, or that stopped matching, are
 * skipped (a session whose creation was committing at the very instant the call began may or may not be).
 */
export async function openSnapshot(dataSource: DataSource, namespaceId: string, filter: SessionFilter, includeDeleted: boolean): Promise<SessionSnapshot> {
  const { where, params } = filterSql(namespaceId, filter, includeDeleted);
  const [head]: { n: number; create_time: Date | null; id: string | null }[] = await dataSource.query(
    `SELECT c.n, l.create_time, l.id
     FROM (SELECT count(*)::int AS n FROM sessions s WHERE ${where}) c
     LEFT JOIN LATERAL (SELECT s.create_time, s.id FROM sessions s WHERE ${where} ORDER BY s.create_time DESC, s.id DESC LIMIT 1) l ON true`,
    params,
  );
  // create_time is timestamptz(3): a Date carries it exactly, so keyset bounds round-trip.
  const mark = head.id === null ? undefined : { createTime: head.create_time!, id: head.id };
  let after: { createTime: Date; id: string } | undefined;
  return {
    total: head.n,
    async next(limit) {
      if (!mark) return [];
      const p = [...params, mark.createTime, mark.id];
      let cond = `${where} AND (s.create_time, s.id) <= ($${p.length - 1}, $${p.length})`;
      if (after) {
        p.push(after.createTime, after.id);
        cond += ` AND (s.create_time, s.id) > ($${p.length - 1}, $${p.length})`;
      }
      p.push(limit);
      const rows: { id: string; create_time: Date }[] = await dataSource.query(
        `SELECT s.id, s.create_time FROM sessions s WHERE ${cond} ORDER BY s.create_time, s.id LIMIT $${p.length}`,
        p,
      );
      if (rows.length) after = { createTime: rows[rows.length - 1].create_time, id: rows[rows.length - 1].id };
      return rows.map((r) => r.id);
    },
    async close() {},
  };
}

/**
 * The storage BulkDeleteSessions runs on: each batch in a transaction of its own, the snapshot's pages
 * one statement each. `namespaceId` resolves names (the session store's, with its cache).
 */
export function createBulkDeleteStore(dataSource: DataSource, namespaceId: BulkDeleteStore["namespaceId"]): BulkDeleteStore {
  return {
    namespaceId,
    deleteBatch: (ns, keys, opts) => dataSource.transaction((tx) => deleteBatch(tx, ns, keys, opts)),
    // The snapshot outlives this call: its pages' errors are translated too.
    openSnapshot: async (ns, filter, includeDeleted) => translated(await openSnapshot(dataSource, ns, filter, includeDeleted)),
  };
}
