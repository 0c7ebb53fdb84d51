/**
 * The steps of an erasure (domain/erasure.ts), each run inside the transaction that records it
 * (operation-store.ts commitErasure). Every statement names the namespace (one shard under Citus).
 * Each step selects only what is left to do (the subject's sessions that still exist, memories still
 * about it, participants still bearing its id, turns after the cursor's seq, changes still carrying
 * it), so a step run again after a takeover finds what its first run did not commit.
 */
import type { EntityManager } from "typeorm";
import { REDACTED, type ErasureStepResult, type ErasureWork } from "../../domain/erasure.js";
import { deleteBatch } from "./bulk-delete-store.js";

/**
 * The pseudonym a redacted participant takes, as SQL over its session id column: one per session and
 * subject (so a participant row and the changes recording it agree, and two subjects erased from one
 * session stay apart), which does not show the subject id. MD5, an IMMUTABLE function over text: under
 * Citus an UPDATE may call no STABLE one (convert_to, which SHA-256 over text would need) with a column.
 */
const pseudonym = (sessionColumn: string, subjectParam: string) => `'redacted-' || left(md5(${sessionColumn}::text || ':' || ${subjectParam}), 16)`;

/** Runs one step of an erasure through `tx`. */
export async function eraseStep(tx: EntityManager, work: ErasureWork): Promise<ErasureStepResult> {
  const { namespaceId: ns, subject, cursor, limit } = work;
  const user = subject.kind === "user";
  switch (cursor.step) {
    case "sessions": {
      if (!user) return { more: false, counts: {} };
      // The subject's sessions (soft-deleted ones too), the oldest first; each batch deletes them, so
      // the next one starts again from the first left.
      const rows: { id: string }[] = await tx.query("SELECT s.id FROM sessions s WHERE s.namespace_id = $1 AND s.user_id = $2 ORDER BY s.create_time, s.id LIMIT $3", [ns, subject.id, limit]);
      const sessions = (await deleteBatch(tx, ns, { kind: "uuid", values: rows.map((r) => r.id) }, { dryRun: false, purgeMemories: true })).map(({ stale: _, ...row }) => row);
      return { more: rows.length === limit, sessions, counts: {} };
    }
    case "memories": {
      const about = "(m.subject_participant_id = $2 OR ($3 AND m.subject_user = $2))";
      const [r] = await tx.query(
        `WITH d AS (DELETE FROM memories x WHERE x.namespace_id = $1 AND x.id IN (SELECT m.id FROM memories m WHERE m.namespace_id = $1 AND ${about} LIMIT $4) RETURNING 1),
              u AS (UPDATE memories x SET integrated_by = '' WHERE x.namespace_id = $1
                      AND x.id IN (SELECT m.id FROM memories m WHERE m.namespace_id = $1 AND m.integrated_by = $2 AND NOT ${about} LIMIT $4) RETURNING 1)
         SELECT (SELECT count(*) FROM d)::int AS deleted, (SELECT count(*) FROM u)::int AS redacted`,
        [ns, subject.id, user, limit],
      );
      return { more: r.deleted === limit || r.redacted === limit, counts: { memoriesDeleted: r.deleted, memoriesRedacted: r.redacted } };
    }
    case "participants":
      return redactParticipant(tx, work, cursor);
    case "changes": {
      // The snapshots of the subject's sessions lose user, data and labels; the participant changes of
      // the subject take its pseudonym and lose name, metadata and insights. The row, its kind and its
      // place in the feed stay, so feed readers miss nothing. Only IMMUTABLE functions over columns (Citus
      // allows no other in an UPDATE's CASE): the pseudonym, hex digits, is spliced into JSON text.
      const userMatch = "($3 AND c.session->>'user_id' = $2)";
      const participantMatch = "(c.kind IN ('participant_bound', 'participant_unbound') AND c.detail->>'participant_id' = $2 AND (NOT $3 OR c.detail->>'kind' = 'user'))";
      const [r] = await tx.query(
        `WITH pick AS (SELECT c.session_id, c.change FROM session_changes c WHERE c.namespace_id = $1 AND (${userMatch} OR ${participantMatch}) LIMIT $4),
              u AS (UPDATE session_changes c SET
                      session = CASE WHEN ${userMatch} THEN c.session || '{"user_id": "", "data": {}, "labels": {}}'::jsonb ELSE c.session END,
                      detail = CASE WHEN ${participantMatch}
                        THEN c.detail || ('{"participant_id": "' || ${pseudonym("c.session_id", "$2")} || '", "display_name": "", "metadata": {}, "insights": []}')::jsonb
                        ELSE c.detail END
                    FROM pick WHERE c.namespace_id = $1 AND c.session_id = pick.session_id AND c.change = pick.change RETURNING 1)
         SELECT count(*)::int AS n FROM u`,
        [ns, subject.id, user, limit],
      );
      return { more: r.n === limit, counts: { changesRedacted: r.n } };
    }
    case "operations": {
      if (!user) return { more: false, counts: {} };
      // Ended ones only: a running one still needs its request (it names the subject on purpose, and
      // ends before the erasure can be asked again).
      const [r] = await tx.query(
        `WITH u AS (UPDATE operations o SET request = jsonb_set(o.request, '{selector,filter,user}', to_jsonb($3::text))
                    WHERE o.namespace_id = $1 AND o.state IN ('succeeded', 'failed', 'cancelled') AND o.request->'selector'->'filter'->>'user' = $2 RETURNING 1)
         SELECT count(*)::int AS n FROM u`,
        [ns, subject.id, REDACTED],
      );
      return { more: false, counts: { operationsRedacted: r.n } };
    }
  }
}

/**
 * One step of the `participants` part: the next participant of the subject (or the one the cursor
 * names), a batch of its turns after the cursor's seq; once its turns are done, the participant itself,
 * the summaries covering its turns and the insights of those that integrated them. The session row is
 * locked first, as every writer of turns does: no turn of the participant can be appended meanwhile.
 */
async function redactParticipant(tx: EntityManager, work: ErasureWork, cursor: Extract<ErasureWork["cursor"], { step: "participants" }>): Promise<ErasureStepResult> {
  const { namespaceId: ns, subject, limit } = work;
  let p = cursor.participant;
  if (!p) {
    const kind = subject.kind === "user" ? "AND p.kind = 'user'" : "";
    const [row] = await tx.query(`SELECT p.id, p.session_id FROM participants p WHERE p.namespace_id = $1 AND p.participant_id = $2 ${kind} ORDER BY p.id LIMIT 1`, [ns, subject.id]);
    if (!row) return { more: false, counts: {} };
    p = { uuid: row.id, sessionUuid: row.session_id };
  }
  await tx.query("SELECT 1 FROM sessions WHERE namespace_id = $1 AND id = $2 FOR UPDATE", [ns, p.sessionUuid]);
  const [t] = await tx.query(
    `WITH t AS (UPDATE turns x SET content = $4, tool_calls = '[]'::jsonb, metadata = '{}'::jsonb
                WHERE x.namespace_id = $1 AND x.participant_ref = $2
                  AND x.seq IN (SELECT y.seq FROM turns y WHERE y.namespace_id = $1 AND y.participant_ref = $2 AND y.seq > $3 ORDER BY y.seq LIMIT $5)
                RETURNING x.seq)
     SELECT count(*)::int AS n, max(seq)::text AS last FROM t`,
    [ns, p.uuid, cursor.afterSeq ?? 0, REDACTED, limit],
  );
  if (t.n === limit) return { more: true, participant: p, lastSeq: Number(t.last), counts: { turnsRedacted: t.n } };
  // Every summary from the first compaction after the subject's first turn on: each summary carries the
  // one before it, so a later one may quote the subject though its own turns are others'. The watch
  // outbox's records of them go the same way, and so do the insights recorded for the others.
  const [r] = await tx.query(
    `WITH first AS (SELECT min(t.seq) AS seq FROM turns t WHERE t.namespace_id = $1 AND t.participant_ref = $3),
          c AS (UPDATE session_compactions c SET summary = $4 WHERE c.namespace_id = $1 AND c.session_id = $2 AND c.summary <> $4
                  AND c.up_to_seq >= (SELECT seq FROM first)
                RETURNING 1),
          oc AS (UPDATE session_changes e SET detail = e.detail || $6::jsonb
                 WHERE e.namespace_id = $1 AND e.session_id = $2 AND e.kind = 'compacted' AND e.detail->>'summary' <> $4
                   AND (e.detail->>'up_to_seq')::bigint >= (SELECT seq FROM first)
                 RETURNING 1),
          oi AS (UPDATE session_changes e SET detail = e.detail || '{"insights": []}'::jsonb
                 WHERE e.namespace_id = $1 AND e.session_id = $2 AND e.kind IN ('participant_bound', 'participant_unbound')
                   AND e.detail->>'participant_id' <> $5 AND e.detail->'insights' <> '[]'::jsonb AND (SELECT seq FROM first) IS NOT NULL
                 RETURNING 1),
          i AS (UPDATE participants o SET insights = '[]'::jsonb WHERE o.namespace_id = $1 AND o.session_id = $2 AND o.id <> $3 AND o.insights <> '[]'::jsonb
                  AND o.last_integrated_seq >= (SELECT min(t.seq) FROM turns t WHERE t.namespace_id = $1 AND t.participant_ref = $3)
                RETURNING 1),
          p AS (UPDATE participants x SET participant_id = ${pseudonym("x.session_id", "$5")}, display_name = '', metadata = '{}'::jsonb, insights = '[]'::jsonb
                WHERE x.namespace_id = $1 AND x.id = $3 AND x.participant_id = $5 RETURNING 1)
     SELECT (SELECT count(*) FROM c)::int AS summaries, (SELECT count(*) FROM i)::int AS insights, (SELECT count(*) FROM p)::int AS participants,
            (SELECT count(*) FROM oc)::int + (SELECT count(*) FROM oi)::int AS changes`,
    [ns, p.sessionUuid, p.uuid, REDACTED, subject.id, JSON.stringify({ summary: REDACTED })],
  );
  return {
    more: false,
    participant: p,
    counts: { turnsRedacted: t.n, summariesRedacted: r.summaries, insightsCleared: r.insights, participantsRedacted: r.participants, changesRedacted: r.changes },
  };
}
