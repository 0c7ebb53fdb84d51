/**
 * Storage of participants and turns (the domain's ConversationStore): every SQL statement about them
 * lives here. Every statement is scoped by namespace_id and session (joins too: the keys are
 * (namespace_id, id)).
 *
 * Counters: writes that add participants or turns update the session's counters in the same
 * statement or transaction, under the session row lock (see the INVARIANT on SessionEntity).
 */
import type { DataSource, EntityManager } from "typeorm";
import { SUMMARY_ROLE, summaryTurn, type ConversationState, type Participant, type Turn } from "../../domain/conversation-model.js";
import type { ConversationStore } from "../../domain/conversation-store.js";
import { isNotNullViolation, isUniqueViolation } from "../errors.js";
import { COLUMNS, statsOf, toSession } from "./session-store.js";
import { arrayLiteral, sqlOf } from "../sql.js";
import { BUMP_CHANGE, compactionOfJson, recordChange } from "./session-changes.js";

const PARTICIPANT_COLUMNS = `p.participant_id, p.kind, p.display_name, p.metadata, p.insights, p.last_integrated_seq, p.bound_time, p.left_time`;
/** A turn row as toTurn reads it (over `turns t JOIN participants p`). */
export const TURN_COLUMNS = `t.seq, p.participant_id, t.role, t.content, t.tool_calls, t.metadata, t.request_id, t.create_time`;

function toParticipant(row: any): Participant {
  return {
    participantId: row.participant_id,
    kind: row.kind,
    displayName: row.display_name,
    metadata: row.metadata,
    insights: row.insights,
    lastIntegratedSeq: Number(row.last_integrated_seq),
    bindTime: row.bound_time,
    leaveTime: row.left_time,
  };
}

/** A participant's row (as selected by PARTICIPANT_COLUMNS) as a change records it (see participantOfJson). */
function participantJson(row: any): Record<string, unknown> {
  const { created: _, ...columns } = row;
  return columns;
}

/** The participant a change recorded: a participants row as JSON (times as text). */
export function participantOfJson(j: any): Participant {
  const time = (v: unknown) => (v == null ? null : new Date(v as string));
  return toParticipant({ ...j, bound_time: time(j.bound_time), left_time: time(j.left_time) });
}

export function toTurn(row: any): Turn {
  return {
    seq: Number(row.seq),
    participantId: row.participant_id,
    role: row.role,
    content: row.content,
    toolCalls: row.tool_calls,
    metadata: row.metadata,
    requestId: row.request_id ?? "",
    createTime: row.create_time,
  };
}

/** A session's counters and last seq, from the columns of the sessions row (the append function returns them under these names). */
function toState(row: any): ConversationState {
  return { stats: statsOf(row), lastSeq: Number(row.last_seq) };
}

/** JSON texts of objects that do not change (the default roles by kind), made once each. */
const jsonTexts = new WeakMap<object, string>();

function jsonOf(value: object): string {
  let json = jsonTexts.get(value);
  if (json === undefined) jsonTexts.set(value, (json = JSON.stringify(value)));
  return json;
}

/** Creates the store over a DataSource or a transaction's EntityManager. */
export function createConversationStore(db: DataSource | EntityManager): ConversationStore {
  const q = sqlOf(db);

  const store: ConversationStore = {
    async participants(session, opts = {}) {
      const rows = await q(
        `SELECT ${PARTICIPANT_COLUMNS} FROM participants p WHERE p.namespace_id = $1 AND p.session_id = $2 ${opts.activeOnly ? "AND p.left_time IS NULL" : ""} ORDER BY p.bound_time, p.id`,
        [session.namespaceId, session.uuid],
      );
      return rows.map(toParticipant);
    },

    async participant(session, participantId) {
      const rows = await q(`SELECT ${PARTICIPANT_COLUMNS} FROM participants p WHERE p.namespace_id = $1 AND p.session_id = $2 AND p.participant_id = $3`, [session.namespaceId, session.uuid, participantId]);
      return rows.length ? toParticipant(rows[0]) : undefined;
    },

    async bind(v) {
      const rows = await q(
        `WITH p AS (
           INSERT INTO participants AS x (namespace_id, session_id, participant_id, kind, display_name, metadata)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (namespace_id, session_id, participant_id) DO UPDATE
             SET display_name = EXCLUDED.display_name, metadata = EXCLUDED.metadata, left_time = NULL,
                 bound_time = CASE WHEN x.left_time IS NULL THEN x.bound_time ELSE EXCLUDED.bound_time END
           RETURNING x.*, (xmax = 0) AS created)
         SELECT ${PARTICIPANT_COLUMNS}, p.created FROM p`,
        [v.namespaceId, v.sessionUuid, v.participantId, v.kind, v.displayName, v.metadata],
      );
      const created = rows[0].created as boolean;
      // Counted when new; bound (again) either way: activity, and a change for the session's watchers.
      await q(
        `WITH s AS (UPDATE sessions s SET participant_count = s.participant_count + $3, last_activity_time = now(), ${BUMP_CHANGE}
                    WHERE s.namespace_id = $1 AND s.id = $2 RETURNING s.*),
         ${recordChange("participant_bound", "$4::jsonb")}
         SELECT 1`,
        [v.namespaceId, v.sessionUuid, created ? 1 : 0, JSON.stringify(participantJson(rows[0]))],
      );
      return { participant: toParticipant(rows[0]), created };
    },

    async bindNew(session, participants) {
      if (!participants.length) return [];
      // Multi-row VALUES, each row naming the namespace: one statement routed to one shard under Citus
      // (no INSERT ... SELECT). The session is new, so every participant is too: a plain INSERT, already
      // counted by the session's insert (participantCount).
      const params: unknown[] = [session.namespaceId, session.uuid];
      const rows = participants.map((p) => {
        params.push(p.participantId, p.kind, p.displayName, p.metadata);
        const n = params.length;
        return `($1, $2, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
      });
      const inserted = await q(
        `INSERT INTO participants AS p (namespace_id, session_id, participant_id, kind, display_name, metadata) VALUES ${rows.join(", ")} RETURNING ${PARTICIPANT_COLUMNS}`,
        params,
      );
      const byId = new Map(inserted.map((r) => [r.participant_id as string, toParticipant(r)]));
      return participants.map((p) => byId.get(p.participantId)!);
    },

    async unbind(session, participantId) {
      const rows = await q(
        // least() keeps the first leave time (NULLs aside, it is coalesce for a time in the past); Citus
        // refuses now() inside coalesce or CASE in a modification.
        // The session row is written too (its change number, under its lock): a change for its watchers.
        `WITH p AS (UPDATE participants SET left_time = least(left_time, now()) WHERE namespace_id = $1 AND session_id = $2 AND participant_id = $3 RETURNING *),
         s AS (UPDATE sessions s SET ${BUMP_CHANGE} WHERE s.namespace_id = $1 AND s.id = $2 AND EXISTS (SELECT 1 FROM p) RETURNING s.*),
         ${recordChange("participant_unbound", "(SELECT to_jsonb(p) FROM p)")}
         SELECT ${PARTICIPANT_COLUMNS} FROM p`,
        [session.namespaceId, session.uuid, participantId],
      );
      return rows.length ? toParticipant(rows[0]) : undefined;
    },

    async append(target, turns, { defaultRoles, request }) {
      // One call of sessiond_append_turns (migration AppendTurnsOneRow; a single shard under Citus):
      // an unknown or departed speaker fails it with not_null_violation, a request id already used with
      // unique_violation, both writing nothing; a session missing or not active returns no rows.
      const speakers: string[] = [];
      const roles: string[] = [];
      const contents: string[] = [];
      const toolCalls: string[] = [];
      const metadata: string[] = [];
      for (const t of turns) {
        speakers.push(t.participantId);
        roles.push(t.role);
        contents.push(t.content);
        toolCalls.push(t.toolCalls.length ? JSON.stringify(t.toolCalls) : "[]");
        metadata.push(t.metadataJson ?? JSON.stringify(t.metadata));
      }
      const params: unknown[] = [
        target.namespaceId,
        "uuid" in target ? target.uuid : null,
        "uuid" in target ? null : target.externalId,
        turns.length,
        arrayLiteral(speakers),
        arrayLiteral(roles),
        arrayLiteral(contents),
        arrayLiteral(toolCalls),
        arrayLiteral(metadata),
        request?.id ?? null,
        request?.fingerprint ?? null,
        jsonOf(defaultRoles),
      ];
      try {
        const rows = await q(
          `SELECT first_seq, roles, create_time, participant_count, turn_count, trace_count, span_count, memories_extracted, integration_count, last_seq FROM sessiond_append_turns($1::uuid, $2::uuid, $3::text, $4::integer, $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::text, $11::text, $12::jsonb)`,
          params,
          // Prepared: AppendTurns is the hot path, and its statement costs about as much to plan as to run.
          { prepare: true },
        );
        if (!rows.length) return { ok: false, reason: "session" };
        // One row for the call (migration AppendTurnsOneRow): the turns are numbered from first_seq, their
        // roles comma-separated in seq order, their create time the same.
        const [row] = rows;
        const first = Number(row.first_seq);
        const createTime: Date = row.create_time;
        const turns = (row.roles as string).split(",").map((role, k) => ({ seq: first + k, role, createTime }));
        return { ok: true, turns, session: toState(row) };
      } catch (err) {
        if (isNotNullViolation(err)) return { ok: false, reason: "participant" };
        if (isUniqueViolation(err) && request) {
          const previous = await store.previousRequest(target, request.id);
          if (previous) return { ok: false, reason: "request", previous };
        }
        throw err;
      }
    },

    async previousRequest(target, requestId) {
      const key = "uuid" in target ? ["s.id = $3", target.uuid] : ["s.external_id = $3", target.externalId];
      const [prev] = await q(
        `SELECT r.namespace_id, r.session_id, r.first_seq, r.turn_count AS request_turns, r.fingerprint, s.participant_count, s.turn_count, s.trace_count,
                s.span_count, s.memories_extracted, s.integration_count, s.last_turn_seq AS last_seq FROM turn_requests r
         JOIN sessions s ON s.namespace_id = r.namespace_id AND s.id = r.session_id
         WHERE r.request_id = $1 AND s.namespace_id = $2 AND ${key[0]}`,
        [requestId, target.namespaceId, key[1]],
      );
      return prev
        ? { namespaceId: prev.namespace_id, sessionUuid: prev.session_id, firstSeq: Number(prev.first_seq), count: prev.request_turns, fingerprint: prev.fingerprint, session: toState(prev) }
        : undefined;
    },

    async appended(session, from, count) {
      const rows = await q("SELECT seq, role, create_time FROM turns WHERE namespace_id = $1 AND session_id = $2 AND seq >= $3 AND seq < $4 ORDER BY seq", [
        session.namespaceId,
        session.uuid,
        from,
        from + count,
      ]);
      return rows.map((r) => ({ seq: Number(r.seq), role: r.role, createTime: r.create_time }));
    },

    async turns(query) {
      const params: unknown[] = [query.session.namespaceId, query.session.uuid, query.afterSeq];
      const where = ["t.namespace_id = $1", "t.session_id = $2", "t.seq > $3"];
      // The session's own row, by its unique key, in the same statement (and on Citus the same shard).
      if (query.ifVisible) where.push("EXISTS (SELECT 1 FROM sessions s WHERE s.namespace_id = $1 AND s.id = $2 AND s.delete_time IS NULL)");
      if (query.untilSeq !== undefined) {
        params.push(query.untilSeq);
        where.push(`t.seq <= $${params.length}`);
      }
      if (query.participantId !== undefined) {
        params.push(query.participantId);
        // By participant_ref, so the (participant_ref, seq) index serves the page.
        where.push(`t.participant_ref = (SELECT id FROM participants WHERE namespace_id = $1 AND session_id = $2 AND participant_id = $${params.length})`);
      }
      params.push(query.limit);
      const rows = await q(
        `SELECT ${TURN_COLUMNS} FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
         WHERE ${where.join(" AND ")} ORDER BY t.seq${query.newestFirst ? " DESC" : ""} LIMIT $${params.length}`,
        params,
        // Prepared: a chat's read path (16 texts at most, by which options are set).
        { prepare: true },
      );
      return rows.map(toTurn);
    },

    async page(query) {
      // Keys to seq bounds: a turn's key 2s is > k when s > floor(k / 2), a summary's 2u + 1 when u > floor((k - 1) / 2).
      const params: unknown[] = [
        query.session.namespaceId,
        query.session.uuid,
        Math.floor(query.afterKey / 2),
        Math.floor((query.afterKey - 1) / 2),
        query.untilKey === undefined ? null : Math.floor(query.untilKey / 2),
        query.untilKey === undefined ? null : Math.floor((query.untilKey - 1) / 2),
        query.includeArchived,
      ];
      let participant = "";
      if (query.participantId !== undefined) {
        params.push(query.participantId);
        participant = `AND t.participant_ref = (SELECT id FROM participants WHERE namespace_id = $1 AND session_id = $2 AND participant_id = $${params.length})`;
      }
      params.push(query.limit);
      const order = query.newestFirst ? "DESC" : "";
      // The session's row (its compacted_seq) by its key, in the same statement: none, no row (missing or, with ifVisible, soft-deleted).
      const rows = await q(
        `WITH s AS (SELECT compacted_seq FROM sessions WHERE namespace_id = $1 AND id = $2${query.ifVisible ? " AND delete_time IS NULL" : ""})
         SELECT * FROM (
           (SELECT ${TURN_COLUMNS}, t.seq <= s.compacted_seq AS archived, NULL::bigint AS first_seq, NULL::integer AS turns_archived,
                   NULL::varchar AS summarizer, NULL::uuid[] AS memory_ids, 2 * t.seq AS key
            FROM s, turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
            WHERE t.namespace_id = $1 AND t.session_id = $2 AND t.seq > $3 AND ($5::bigint IS NULL OR t.seq <= $5)
              AND ($7 OR t.seq > s.compacted_seq) ${participant}
            ORDER BY t.seq ${order} LIMIT $${params.length})
           UNION ALL
           (SELECT c.up_to_seq, '', '${SUMMARY_ROLE}', c.summary, '[]'::jsonb, '{}'::jsonb, NULL, c.create_time, c.up_to_seq < s.compacted_seq,
                   c.first_seq, c.turns_archived, c.summarizer, c.memory_ids, 2 * c.up_to_seq + 1
            FROM s, session_compactions c
            WHERE c.namespace_id = $1 AND c.session_id = $2 AND c.up_to_seq > $4 AND ($6::bigint IS NULL OR c.up_to_seq <= $6)
              AND ($7 OR c.up_to_seq = s.compacted_seq) ${query.participantId !== undefined ? "AND false" : ""}
            ORDER BY c.up_to_seq ${order} LIMIT $${params.length})
         ) x ORDER BY key ${order} LIMIT $${params.length}`,
        params,
        { prepare: true },
      );
      return rows.map((r) => {
        const turn = toTurn(r);
        const key = Number(r.key);
        if (r.first_seq === null) return { ...turn, archived: r.archived, key };
        const compaction = { firstSeq: Number(r.first_seq), upToSeq: turn.seq, turnsArchived: r.turns_archived, summary: turn.content, summarizer: r.summarizer, memoryIds: r.memory_ids, createTime: turn.createTime };
        return { ...summaryTurn(compaction, r.archived), key };
      });
    },

    async compaction(session, upToSeq) {
      const rows = await q(`SELECT to_jsonb(c) AS c FROM session_compactions c WHERE namespace_id = $1 AND session_id = $2 AND up_to_seq = $3`, [
        session.namespaceId,
        session.uuid,
        upToSeq,
      ]);
      return rows.length ? compactionOfJson(rows[0].c) : undefined;
    },

    async compact(session, w) {
      const key = [session.namespaceId, session.uuid];
      const [row] = await q("SELECT compacted_seq, last_turn_seq, state, delete_time FROM sessions WHERE namespace_id = $1 AND id = $2 FOR UPDATE", key);
      if (!row) return { ok: false, reason: "gone" };
      if (row.state !== "active" || row.delete_time) return { ok: false, reason: "inactive" };
      const compactedSeq = Number(row.compacted_seq);
      const lastSeq = Number(row.last_turn_seq);
      if (w.upToSeq === compactedSeq) return { ok: false, reason: "already", compaction: await store.compaction(session, w.upToSeq) };
      if (w.upToSeq < compactedSeq) return { ok: false, reason: "below", compactedSeq, lastSeq };
      if (w.upToSeq > lastSeq) return { ok: false, reason: "beyond", compactedSeq, lastSeq };
      // The compaction of the turns still live up to upToSeq (none: nothing to archive, e.g. truncated away)...
      const [made] = await q(
        `WITH a AS (SELECT count(*)::integer AS n, min(seq) AS first_seq FROM turns WHERE namespace_id = $1 AND session_id = $2 AND seq > $3 AND seq <= $4)
         INSERT INTO session_compactions (namespace_id, session_id, up_to_seq, first_seq, turns_archived, summary, summarizer, memory_ids)
         SELECT $1, $2, $4, a.first_seq, a.n, $5, $6, $7::uuid[] FROM a WHERE a.n > 0 RETURNING to_jsonb(session_compactions.*) AS c`,
        [...key, compactedSeq, w.upToSeq, w.summary, w.summarizer, w.memoryIds],
      );
      if (!made) return { ok: false, reason: "empty", compactedSeq, lastSeq };
      const compaction = compactionOfJson(made.c);
      // ...then the session's mark and counters with its COMPACTED change (the compaction as its detail), in one statement.
      const rows = await q(
        `WITH s AS (UPDATE sessions s SET compacted_seq = $3, compaction_count = s.compaction_count + 1, archived_turn_count = s.archived_turn_count + $4,
                           update_time = now(), ${BUMP_CHANGE}
                    WHERE s.namespace_id = $1 AND s.id = $2 RETURNING s.*),
         ${recordChange("compacted", "$5::jsonb")}
         SELECT ${COLUMNS} FROM s JOIN namespaces n ON n.id = s.namespace_id`,
        [...key, w.upToSeq, compaction.turnsArchived, made.c],
      );
      return { ok: true, compaction, session: toSession(rows[0]) };
    },
  };
  return store;
}
