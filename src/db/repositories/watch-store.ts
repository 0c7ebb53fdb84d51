/**
 * What WatchSession and WatchSessions read (the domain's WatchStore): a session's recorded changes
 * (session_changes, by change number), its turns, and the namespace feed (by feed position). Every
 * statement names the namespace.
 *
 * The feed's order: a change gets its feed position after it commits, from the sequencer below, which
 * numbers the namespace's committed changes that have none under a transaction-scoped advisory lock. A
 * pass sees every change committed before it and commits before the next pass can start, so positions
 * appear in increasing order and a reader that goes on from a position misses nothing and reads nothing
 * twice (a position taken from a sequence at insert would not be: a transaction may commit after one
 * that took a later number). Positions are microseconds since the epoch (or one more than the last,
 * if later), so a cursor tells how old it is.
 */
import type { DataSource } from "typeorm";
import type { Turn } from "../../domain/conversation-model.js";
import type { WatchStore } from "../../domain/watch-store.js";
import type { ChangeKind, SessionChange } from "../../domain/watch-model.js";
import { participantOfJson, toTurn, TURN_COLUMNS } from "./conversation-store.js";
import { COLUMNS, toSession } from "./session-store.js";
import { sqlOf } from "../sql.js";
import { compactionOfJson } from "./session-changes.js";

const CHANGE_COLUMNS = "c.namespace_id, c.session_id, c.change, c.kind, c.at_seq, c.external_id, c.session, c.detail, c.create_time, c.feed_position";

/**
 * The feed's present: the last position given, or the clock's microseconds when later (a pass gives
 * positions above both). Under Citus the clock may be a worker's: the nodes' clocks are taken to be
 * synchronised (NTP), as a cursor of the present relies on the clock not stepping back.
 */
const PRESENT = `SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
  (SELECT coalesce(max(feed_position), 0) FROM session_changes WHERE namespace_id = $1 AND feed_position IS NOT NULL))::text AS head`;

/** A session_changes row as the domain's SessionChange; `names` gives the namespace's name. */
function toChange(row: any, namespaceName: string): SessionChange {
  const j = row.session;
  const time = (v: unknown) => (v == null ? null : new Date(v as string));
  const change: SessionChange = {
    kind: row.kind as ChangeKind,
    change: Number(row.change),
    changeTime: row.create_time,
    atSeq: Number(row.at_seq),
    namespaceId: row.namespace_id,
    uuid: row.session_id,
    externalId: row.external_id,
  };
  if (j) {
    change.session = toSession({
      ...j,
      namespace_name: namespaceName,
      create_time: time(j.create_time),
      update_time: time(j.update_time),
      last_activity_time: time(j.last_activity_time),
      delete_time: time(j.delete_time),
      expire_time: time(j.expire_time),
    });
  }
  const d = row.detail;
  if (d && (row.kind === "participant_bound" || row.kind === "participant_unbound")) change.participant = participantOfJson(d);
  if (d && row.kind === "truncated") change.turnsDeleted = d.turns_deleted;
  if (d && row.kind === "compacted") change.compaction = compactionOfJson(d);
  if (d && row.kind === "deleted") change.deleted = { participants: d.participants, turns: d.turns, traces: d.traces, spans: d.spans, annotations: d.annotations, archivedTurns: d.archived_turns ?? 0, compactions: d.compactions ?? 0, memories: d.memories };
  if (row.feed_position != null) change.feedPosition = String(row.feed_position);
  return change;
}

/** The namespace's name, for the sessions changes carry (the namespaces table is small and cached by Postgres). */
async function namespaceName(q: ReturnType<typeof sqlOf>, namespaceId: string): Promise<string> {
  const [row] = await q("SELECT name FROM namespaces WHERE id = $1", [namespaceId], { prepare: true });
  return row?.name ?? "";
}

export function createWatchStore(dataSource: DataSource): WatchStore {
  const q = sqlOf(dataSource);
  const names = new Map<string, string>();
  const nameOf = async (namespaceId: string) => {
    let name = names.get(namespaceId);
    if (name === undefined) {
      name = await namespaceName(q, namespaceId);
      if (names.size > 10_000) names.clear();
      if (name) names.set(namespaceId, name);
    }
    return name;
  };

  return {
    async snapshot(namespaceId, uuid) {
      // One statement, one snapshot: the participants as of the session's change number.
      const [row] = await q(
        `SELECT ${COLUMNS}, s.change_seq, s.last_turn_seq,
                (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.bound_time, p.id), '[]'::jsonb) FROM participants p WHERE p.namespace_id = s.namespace_id AND p.session_id = s.id) AS participants
         FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.namespace_id = $1 AND s.id = $2`,
        [namespaceId, uuid],
        { prepare: true },
      );
      return row && { session: toSession(row), head: { change: Number(row.change_seq), lastSeq: Number(row.last_turn_seq) }, participants: (row.participants as unknown[]).map(participantOfJson) };
    },

    async heads(keys) {
      const out = new Map<string, { change: number; lastSeq: number }>();
      if (!keys.length) return out;
      // By ids and their namespaces (Citus prunes the shards by the namespaces); pairs are matched here.
      const rows = await q("SELECT namespace_id, id, change_seq, last_turn_seq FROM sessions WHERE id = ANY($1::uuid[]) AND namespace_id = ANY($2::uuid[])", [
        keys.map((k) => k.uuid),
        [...new Set(keys.map((k) => k.namespaceId))],
      ]);
      for (const r of rows) out.set(`${r.namespace_id}/${r.id}`, { change: Number(r.change_seq), lastSeq: Number(r.last_turn_seq) });
      return out;
    },

    async changes(namespaceId, uuid, afterChange, limit) {
      // One statement, one snapshot: the head row and the changes after afterChange. Turns up to the
      // head's last seq are committed (an append bumps last_turn_seq in its own transaction).
      const rows = await q(
        `(SELECT true AS head, s.change_seq AS change, s.last_turn_seq AS at_seq, NULL::uuid AS namespace_id, NULL::uuid AS session_id, NULL::varchar AS kind,
                 NULL::varchar AS external_id, NULL::jsonb AS session, NULL::jsonb AS detail, NULL::timestamptz AS create_time, NULL::bigint AS feed_position
          FROM sessions s WHERE s.namespace_id = $1 AND s.id = $2)
         UNION ALL
         (SELECT false, ${CHANGE_COLUMNS.replace("c.namespace_id, c.session_id, c.change, c.kind, c.at_seq", "c.change, c.at_seq, c.namespace_id, c.session_id, c.kind")}
          FROM session_changes c WHERE c.namespace_id = $1 AND c.session_id = $2 AND c.change > $3 ORDER BY c.change LIMIT $4)`,
        [namespaceId, uuid, afterChange, limit],
        { prepare: true },
      );
      const headRow = rows.find((r) => r.head);
      const changeRows = rows.filter((r) => !r.head).sort((a, b) => Number(a.change) - Number(b.change));
      const name = changeRows.some((r) => r.session) ? await nameOf(namespaceId) : "";
      return {
        head: headRow && { change: Number(headRow.change), lastSeq: Number(headRow.at_seq) },
        changes: changeRows.map((r) => toChange(r, name)),
      };
    },

    async turns(namespaceId, uuid, afterSeq, untilSeq, limit): Promise<Turn[]> {
      const rows = await q(
        `SELECT ${TURN_COLUMNS} FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
         WHERE t.namespace_id = $1 AND t.session_id = $2 AND t.seq > $3 AND t.seq <= $4 ORDER BY t.seq LIMIT $5`,
        [namespaceId, uuid, afterSeq, untilSeq, limit],
        { prepare: true },
      );
      return rows.map(toTurn);
    },

    async sequenceFeed(namespaceId, limit) {
      const runner = dataSource.createQueryRunner();
      try {
        await runner.connect();
        await runner.startTransaction();
        try {
          // Not a wait: a pass of another process holds the lock for one short statement, and its
          // positions are read on the next wake.
          const [lock] = await runner.query("SELECT pg_try_advisory_xact_lock(hashtextextended('sessiond.feed.' || $1::text, 0)) AS ok", [namespaceId]);
          if (!lock.ok) {
            await runner.rollbackTransaction();
            return undefined;
          }
          const result = await runner.query(
            `WITH p AS (SELECT session_id, change, row_number() OVER (ORDER BY create_time, session_id, change) AS n
                        FROM session_changes WHERE namespace_id = $1 AND feed_position IS NULL ORDER BY create_time, session_id, change LIMIT $2),
                  b AS (SELECT greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                                        (SELECT coalesce(max(feed_position), 0) FROM session_changes WHERE namespace_id = $1 AND feed_position IS NOT NULL)) AS base)
             UPDATE session_changes c SET feed_position = b.base + p.n FROM p, b
             WHERE c.namespace_id = $1 AND c.session_id = p.session_id AND c.change = p.change`,
            [namespaceId, limit],
          );
          // Under the lock: every position given so far is at most this, and the next pass starts above it.
          const [present] = await runner.query(PRESENT, [namespaceId]);
          await runner.commitTransaction();
          return { count: Number(result?.[1] ?? 0), head: BigInt(present.head) };
        } catch (err) {
          if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => {});
          throw err;
        }
      } finally {
        await runner.release();
      }
    },

    async feed(namespaceId, after, limit) {
      const rows = await q(
        `SELECT ${CHANGE_COLUMNS} FROM session_changes c WHERE c.namespace_id = $1 AND c.feed_position > $2 ORDER BY c.feed_position LIMIT $3`,
        [namespaceId, after.toString(), limit],
        { prepare: true },
      );
      const name = rows.some((r) => r.session) ? await nameOf(namespaceId) : "";
      return rows.map((r) => toChange(r, name));
    },

    async feedHead(namespaceId) {
      const [row] = await q(PRESENT, [namespaceId]);
      return BigInt(row.head);
    },

    async prune(before) {
      // Every namespace at once, like the sweeper's other prunes (each shard in parallel under Citus).
      const [, count] = await dataSource.query("DELETE FROM session_changes WHERE create_time < $1", [before]);
      return Number(count ?? 0);
    },
  };
}
