/**
 * Storage of participants and turns: every SQL statement about them lives here. Every statement is
 * scoped by session (whose namespace the domain has already checked) and, for writes, by namespace_id.
 *
 * Counters: writes that add participants or turns update the session's counters in the same
 * statement or transaction, under the session row lock (see the INVARIANT on SessionEntity).
 */
import type { DataSource, EntityManager } from "typeorm";
import { ROLE_OF_KIND, type NewTurn, type Participant, type ParticipantKind, type Turn } from "../../domain/conversation.js";
import { databaseErrorCode } from "../../domain/errors.js";

/** Values of a participant to bind. */
export interface BindValues {
  namespaceId: string;
  sessionUuid: string;
  participantId: string;
  kind: ParticipantKind;
  displayName: string;
  metadata: Record<string, unknown>;
}

/** Outcome of one AppendTurns statement. */
export type AppendOutcome =
  | { ok: true; turns: Turn[] }
  /** The session is no longer active (cancelled, soft-deleted or gone). */
  | { ok: false; reason: "session" }
  /** A speaker is not bound, or has left. */
  | { ok: false; reason: "participant" }
  /** The request_id was used before. */
  | { ok: false; reason: "request"; previous: { firstSeq: number; count: number; fingerprint: string } };

/** A turn page query. */
export interface TurnQuery {
  sessionUuid: string;
  participantId?: string;
  afterSeq: number;
  /** Inclusive upper bound of seq, when set. */
  untilSeq?: number;
  limit: number;
}

const NOT_NULL_VIOLATION = "23502";
const UNIQUE_VIOLATION = "23505";

const PARTICIPANT_COLUMNS = `p.participant_id, p.kind, p.display_name, p.metadata, p.insights, p.last_integrated_seq, p.bound_time, p.left_time`;
const TURN_COLUMNS = `t.seq, p.participant_id, t.role, t.content, t.tool_calls, t.metadata, t.request_id, t.create_time`;
/** ROLE_OF_KIND in SQL: the role of a turn given without one. */
const DEFAULT_ROLE = `CASE p.kind ${Object.entries(ROLE_OF_KIND).map(([kind, role]) => `WHEN '${kind}' THEN '${role}'`).join(" ")} END`;

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

function toTurn(row: any): Turn {
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

/** Participant and turn storage bound to one connection or transaction. */
export interface ConversationStore {
  participants(sessionUuid: string, opts?: { activeOnly?: boolean }): Promise<Participant[]>;
  participant(sessionUuid: string, participantId: string): Promise<Participant | undefined>;
  /** Inserts or re-binds; counts a new participant on the session. Call with the session row locked. */
  bind(values: BindValues): Promise<{ participant: Participant; created: boolean }>;
  /** Marks a participant as left (keeps an earlier leave time). */
  unbind(sessionUuid: string, participantId: string): Promise<Participant | undefined>;
  /**
   * Appends turns in one statement: takes the session row lock, numbers the turns after the session's
   * last sequence number, bumps the counters and records the request_id. Nothing is written unless all
   * of it is.
   */
  append(namespaceId: string, sessionUuid: string, turns: NewTurn[], request?: { id: string; fingerprint: string }): Promise<AppendOutcome>;
  /** Turns in sequence order. */
  turns(query: TurnQuery): Promise<Turn[]>;
}

/** Creates the store over a DataSource or a transaction's EntityManager. */
export function createConversationStore(db: DataSource | EntityManager): ConversationStore {
  const q = (sql: string, params: unknown[] = []) => db.query(sql, params) as Promise<any[]>;

  return {
    async participants(sessionUuid, opts = {}) {
      const rows = await q(
        `SELECT ${PARTICIPANT_COLUMNS} FROM participants p WHERE p.session_id = $1 ${opts.activeOnly ? "AND p.left_time IS NULL" : ""} ORDER BY p.bound_time, p.id`,
        [sessionUuid],
      );
      return rows.map(toParticipant);
    },

    async participant(sessionUuid, participantId) {
      const rows = await q(`SELECT ${PARTICIPANT_COLUMNS} FROM participants p WHERE p.session_id = $1 AND p.participant_id = $2`, [sessionUuid, participantId]);
      return rows.length ? toParticipant(rows[0]) : undefined;
    },

    async bind(v) {
      const rows = await q(
        `WITH p AS (
           INSERT INTO participants AS x (namespace_id, session_id, participant_id, kind, display_name, metadata)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (session_id, participant_id) DO UPDATE
             SET display_name = EXCLUDED.display_name, metadata = EXCLUDED.metadata, left_time = NULL,
                 bound_time = CASE WHEN x.left_time IS NULL THEN x.bound_time ELSE now() END
           RETURNING x.*, (xmax = 0) AS created)
         SELECT ${PARTICIPANT_COLUMNS}, p.created FROM p`,
        [v.namespaceId, v.sessionUuid, v.participantId, v.kind, v.displayName, v.metadata],
      );
      const created = rows[0].created as boolean;
      if (created) await q("UPDATE sessions SET participant_count = participant_count + 1 WHERE id = $1", [v.sessionUuid]);
      return { participant: toParticipant(rows[0]), created };
    },

    async unbind(sessionUuid, participantId) {
      const rows = await q(
        `WITH p AS (UPDATE participants SET left_time = coalesce(left_time, now()) WHERE session_id = $1 AND participant_id = $2 RETURNING *)
         SELECT ${PARTICIPANT_COLUMNS} FROM p`,
        [sessionUuid, participantId],
      );
      return rows.length ? toParticipant(rows[0]) : undefined;
    },

    async append(namespaceId, sessionUuid, turns, request) {
      // An unknown or departed speaker leaves participant_ref NULL, which fails the whole statement
      // (NOT NULL); an inactive session matches no row in `s`, so nothing is inserted.
      const params = [
        sessionUuid,
        namespaceId,
        turns.length,
        turns.map((t) => t.participantId),
        turns.map((t) => t.role),
        turns.map((t) => t.content),
        turns.map((t) => JSON.stringify(t.toolCalls)),
        turns.map((t) => JSON.stringify(t.metadata)),
        request?.id ?? null,
        request?.fingerprint ?? null,
      ];
      try {
        const rows = await q(
          `WITH s AS (
             UPDATE sessions SET last_turn_seq = last_turn_seq + $3, turn_count = turn_count + $3
             WHERE id = $1 AND namespace_id = $2 AND state = 'active' AND delete_time IS NULL
             RETURNING last_turn_seq - $3 AS base),
           n AS (
             SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[])
               WITH ORDINALITY AS n(participant_id, role, content, tool_calls, metadata, ord)),
           t AS (
             INSERT INTO turns (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id)
             SELECT $2, $1, p.id, s.base + n.ord, CASE WHEN n.role <> '' THEN n.role ELSE ${DEFAULT_ROLE} END,
                    n.content, n.tool_calls, n.metadata, $9
             FROM n CROSS JOIN s
             LEFT JOIN participants p ON p.session_id = $1 AND p.participant_id = n.participant_id AND p.left_time IS NULL
             RETURNING seq, role, create_time),
           r AS (
             INSERT INTO turn_requests (session_id, request_id, namespace_id, first_seq, turn_count, fingerprint)
             SELECT $1, $9, $2, s.base + 1, $3, $10 FROM s WHERE $9::text IS NOT NULL)
           SELECT seq, role, create_time FROM t ORDER BY seq`,
          params,
        );
        if (!rows.length) return { ok: false, reason: "session" };
        return {
          ok: true,
          turns: rows.map((r, i) => ({ ...turns[i], seq: Number(r.seq), role: r.role, requestId: request?.id ?? "", createTime: r.create_time })),
        };
      } catch (err) {
        const code = databaseErrorCode(err);
        if (code === NOT_NULL_VIOLATION) return { ok: false, reason: "participant" };
        if (code === UNIQUE_VIOLATION && request) {
          const [prev] = await q("SELECT first_seq, turn_count, fingerprint FROM turn_requests WHERE session_id = $1 AND request_id = $2", [sessionUuid, request.id]);
          if (prev) return { ok: false, reason: "request", previous: { firstSeq: Number(prev.first_seq), count: prev.turn_count, fingerprint: prev.fingerprint } };
        }
        throw err;
      }
    },

    async turns(query) {
      const params: unknown[] = [query.sessionUuid, query.afterSeq];
      const where = ["t.session_id = $1", "t.seq > $2"];
      if (query.untilSeq !== undefined) {
        params.push(query.untilSeq);
        where.push(`t.seq <= $${params.length}`);
      }
      if (query.participantId !== undefined) {
        params.push(query.participantId);
        // By participant_ref, so the (participant_ref, seq) index serves the page.
        where.push(`t.participant_ref = (SELECT id FROM participants WHERE session_id = $1 AND participant_id = $${params.length})`);
      }
      params.push(query.limit);
      const rows = await q(
        `SELECT ${TURN_COLUMNS} FROM turns t JOIN participants p ON p.id = t.participant_ref
         WHERE ${where.join(" AND ")} ORDER BY t.seq LIMIT $${params.length}`,
        params,
      );
      return rows.map(toTurn);
    },
  };
}
