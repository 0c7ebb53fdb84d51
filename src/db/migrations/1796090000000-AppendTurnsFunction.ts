/**
 * AppendTurns as one function call, sessiond_append_turns(): the session's counters move under its row
 * lock, the turns go in with their participants resolved, and a request id is remembered, as before in
 * one statement. As a function (and not one statement of data-modifying CTEs) it runs on a single
 * shard under Citus: db/distribution.ts makes it a distributed function by p_namespace, colocated with
 * sessions, so the coordinator hands the whole call to the worker holding the namespace (Citus plans a
 * CTE that inserts from another CTE by pulling rows through the coordinator, and reports its errors as
 * internal ones). A turn naming a participant not bound to the session fails with not_null_violation
 * (23502), a request id already used with unique_violation (23505), both rolled back; a session not
 * found (or not active) returns no rows.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

/** The function's signature, as distribution.ts names it. */
export const APPEND_TURNS_SIGNATURE = "sessiond_append_turns(uuid,uuid,text,integer,text[],text[],text[],jsonb[],jsonb[],text,text,jsonb)";

export class AppendTurnsFunction1796090000000 implements MigrationInterface {
    name = 'AppendTurnsFunction1796090000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`
        CREATE FUNCTION sessiond_append_turns(
            p_namespace uuid, p_session uuid, p_external_id text, p_count integer,
            p_participants text[], p_roles text[], p_contents text[], p_tool_calls jsonb[], p_metadata jsonb[],
            p_request_id text, p_fingerprint text, p_default_roles jsonb)
        RETURNS TABLE (seq bigint, role varchar, create_time timestamptz)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_session uuid;
            v_base bigint;
        BEGIN
            IF p_session IS NOT NULL THEN
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
                WHERE s.namespace_id = p_namespace AND s.id = p_session AND s.state = 'active' AND s.delete_time IS NULL
                RETURNING s.id, s.last_turn_seq - p_count INTO v_session, v_base;
            ELSE
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
                WHERE s.namespace_id = p_namespace AND s.external_id = p_external_id AND s.state = 'active' AND s.delete_time IS NULL
                RETURNING s.id, s.last_turn_seq - p_count INTO v_session, v_base;
            END IF;
            IF v_session IS NULL THEN
                RETURN;
            END IF;
            IF (SELECT count(*) FROM participants p WHERE p.namespace_id = p_namespace AND p.session_id = v_session AND p.left_time IS NULL AND p.participant_id = ANY (p_participants))
               <> (SELECT count(DISTINCT x) FROM unnest(p_participants) x) THEN
                RAISE EXCEPTION 'a turn names a participant that is not bound to the session' USING ERRCODE = 'not_null_violation';
            END IF;
            RETURN QUERY
                INSERT INTO turns AS t (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id)
                SELECT p_namespace, v_session, p.id, v_base + n.ord, CASE WHEN n.role <> '' THEN n.role ELSE p_default_roles ->> p.kind END,
                       n.content, n.tool_calls, n.metadata, p_request_id
                FROM unnest(p_participants, p_roles, p_contents, p_tool_calls, p_metadata) WITH ORDINALITY AS n(participant_id, role, content, tool_calls, metadata, ord)
                JOIN participants p ON p.namespace_id = p_namespace AND p.session_id = v_session AND p.participant_id = n.participant_id AND p.left_time IS NULL
                RETURNING t.seq, t.role, t.create_time;
            IF p_request_id IS NOT NULL THEN
                INSERT INTO turn_requests (namespace_id, session_id, request_id, first_seq, turn_count, fingerprint)
                VALUES (p_namespace, v_session, p_request_id, v_base + 1, p_count, p_fingerprint);
            END IF;
        END
        $$`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${APPEND_TURNS_SIGNATURE}`);
    }

}
