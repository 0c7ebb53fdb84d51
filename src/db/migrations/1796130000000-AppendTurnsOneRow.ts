/**
 * sessiond_append_turns() returns one row for the call instead of one per turn: the first turn's seq,
 * the turns' roles in seq order (comma-separated: a role is [a-z0-9_-], checked by the service, or a
 * default by kind), their create time (the transaction's, the same for every turn) and the session's
 * counters after the call. With 20 turns a call, the server parsed 20 rows of ten values where it now
 * parses one (a few per cent of its CPU under the bench:append load). It also sets the session's
 * last_activity_time (migration SessionActivity). The result type changes, so the
 * function is dropped and made again (and distributed again under Citus); a server of an earlier
 * version fails its AppendTurns calls until it is replaced: run this migration with the new version.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { distribute } from "../distribution.js";
import { APPEND_TURNS_SIGNATURE } from "./1796090000000-AppendTurnsFunction.js";
import { APPEND_TURNS as UNIQUE_KEY_APPEND_TURNS } from "./1796120000000-UniqueKeyPlans.js";

const APPEND_TURNS = `
        CREATE FUNCTION sessiond_append_turns(
            p_namespace uuid, p_session uuid, p_external_id text, p_count integer,
            p_participants text[], p_roles text[], p_contents text[], p_tool_calls jsonb[], p_metadata jsonb[],
            p_request_id text, p_fingerprint text, p_default_roles jsonb)
        RETURNS TABLE (first_seq bigint, roles text, create_time timestamptz,
                       participant_count integer, turn_count integer, trace_count integer, span_count integer,
                       memories_extracted integer, integration_count integer, last_seq bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_session uuid;
            v_base bigint;
            v_participants integer;
            v_turns integer;
            v_traces integer;
            v_spans integer;
            v_memories integer;
            v_integrations integer;
            v_seq bigint;
            v_role text;
            v_seqs bigint[] := '{}';
            v_roles text[] := '{}';
        BEGIN
            IF p_session IS NOT NULL THEN
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count, last_activity_time = now()
                WHERE s.namespace_id = p_namespace AND s.id = p_session AND (s.state = 'active' AND s.delete_time IS NULL) IS TRUE
                RETURNING s.id, s.last_turn_seq - p_count, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count
                INTO v_session, v_base, v_participants, v_turns, v_traces, v_spans, v_memories, v_integrations;
            ELSE
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count, last_activity_time = now()
                WHERE s.namespace_id = p_namespace AND s.external_id = p_external_id AND (s.state = 'active' AND s.delete_time IS NULL) IS TRUE
                RETURNING s.id, s.last_turn_seq - p_count, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count
                INTO v_session, v_base, v_participants, v_turns, v_traces, v_spans, v_memories, v_integrations;
            END IF;
            IF v_session IS NULL THEN
                RETURN;
            END IF;
            IF (SELECT count(*) FROM participants p WHERE p.namespace_id = p_namespace AND p.session_id = v_session AND p.left_time IS NULL AND p.participant_id = ANY (p_participants))
               <> (SELECT count(DISTINCT x) FROM unnest(p_participants) x) THEN
                RAISE EXCEPTION 'a turn names a participant that is not bound to the session' USING ERRCODE = 'not_null_violation';
            END IF;
            participant_count := v_participants;
            turn_count := v_turns;
            trace_count := v_traces;
            span_count := v_spans;
            memories_extracted := v_memories;
            integration_count := v_integrations;
            last_seq := v_base + p_count;
            first_seq := v_base + 1;
            -- Row by row, so that the INSERT's RETURNING names its own columns only (Citus cannot plan
            -- PL/pgSQL variables there); the roles are collected, then returned in seq order.
            FOR v_seq, v_role, create_time IN
                INSERT INTO turns AS t (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id)
                SELECT p_namespace, v_session, p.id, v_base + n.ord, CASE WHEN n.role <> '' THEN n.role ELSE p_default_roles ->> p.kind END,
                       n.content, n.tool_calls, n.metadata, p_request_id
                FROM unnest(p_participants, p_roles, p_contents, p_tool_calls, p_metadata) WITH ORDINALITY AS n(participant_id, role, content, tool_calls, metadata, ord)
                JOIN participants p ON p.namespace_id = p_namespace AND p.session_id = v_session AND p.participant_id = n.participant_id AND p.left_time IS NULL
                RETURNING t.seq, t.role, t.create_time
            LOOP
                v_seqs := v_seqs || v_seq;
                v_roles := v_roles || v_role;
            END LOOP;
            roles := array_to_string(ARRAY(SELECT u.r FROM unnest(v_seqs, v_roles) AS u(s, r) ORDER BY u.s), ',');
            IF p_request_id IS NOT NULL THEN
                INSERT INTO turn_requests (namespace_id, session_id, request_id, first_seq, turn_count, fingerprint)
                VALUES (p_namespace, v_session, p_request_id, v_base + 1, p_count, p_fingerprint);
            END IF;
            RETURN NEXT;
        END
        $$`;

export class AppendTurnsOneRow1796130000000 implements MigrationInterface {
    name = 'AppendTurnsOneRow1796130000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${APPEND_TURNS_SIGNATURE}`);
        await queryRunner.query(APPEND_TURNS);
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${APPEND_TURNS_SIGNATURE}`);
        await queryRunner.query(UNIQUE_KEY_APPEND_TURNS.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION"));
        await distribute(queryRunner.manager);
    }

}
