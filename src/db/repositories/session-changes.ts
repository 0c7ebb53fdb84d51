/**
 * How writers record a session change (the outbox rows WatchSession and WatchSessions read, see the
 * SessionChangeEntity): a CTE appended to the writer's own statement, after the CTE `s` that wrote the
 * sessions row with `change_seq` bumped (`RETURNING s.*`). One statement: the change is recorded exactly
 * when the session changes, under the same row lock, so a session's changes are numbered in commit order.
 */

import type { Compaction } from "../../domain/conversation-model.js";
import type { ChangeKind as StoredChangeKind } from "../../domain/watch-model.js";

export type { StoredChangeKind };

/** A compaction's detail (recorded by CompactSession's statement as `to_jsonb` of its session_compactions row) -> the domain's. */
export function compactionOfJson(d: any): Compaction {
  return {
    firstSeq: Number(d.first_seq),
    upToSeq: Number(d.up_to_seq),
    turnsArchived: d.turns_archived,
    summary: d.summary,
    summarizer: d.summarizer,
    memoryIds: d.memory_ids,
    createTime: new Date(d.create_time),
  };
}

/** The statement fragment bumping a session's change number (in an UPDATE of `sessions s`). */
export const BUMP_CHANGE = "change_seq = s.change_seq + 1";

/**
 * A CTE `e` recording `kind` for every row of CTE `s`. `detail` is an SQL expression (a parameter) or
 * NULL; participant changes carry no session snapshot.
 */
export function recordChange(kind: StoredChangeKind, detail = "NULL"): string {
  const snapshot = kind.startsWith("participant_") ? "NULL" : "to_jsonb(s) - 'client_secret_hash'";
  return `e AS (INSERT INTO session_changes (namespace_id, session_id, change, kind, at_seq, external_id, session, detail)
    SELECT s.namespace_id, s.id, s.change_seq, '${kind}', s.last_turn_seq, s.external_id, ${snapshot}, ${detail} FROM s)`;
}
