/**
 * sessiond_append_turns() returns the counters and the create time once, in its first row, not in every
 * row: a call of 20 turns sent the same eight values 20 times, and the server parsed each. The turns'
 * create time is the transaction's, the same for every turn of a call. Same arguments and result columns
 * (the later rows carry NULL in all but seq and role); CREATE OR REPLACE keeps its Citus distribution.
 * A server of an earlier version reads the counters from the turn of the lowest seq, which is the first
 * row returned unless the insert's join reordered the turns: run this migration with the new version.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { APPEND_TURNS as UNIQUE_KEY_APPEND_TURNS } from "./1796120000000-UniqueKeyPlans.js";

const APPEND_TURNS = `
        CREATE OR REPLACE FUNCTION sessiond_append_turns(
            p_namespace uuid, p_session uuid, p_external_id text, p_count integer,
            p_participants text[], p_roles text[], p_contents text[], p_tool_calls jsonb[], p_metadata jsonb[],
            p_request_id text, p_fingerprint text, p_default_roles jsonb)
        RETURNS TABLE (seq bigint, role varchar, create_time timestamptz,
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
            v_role varchar;
            v_time timestamptz;
            v_first boolean := true;
        BEGIN
            IF p_session IS NOT NULL THEN
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
                WHERE s.namespace_id = p_namespace AND s.id = p_session AND (s.state = 'active' AND s.delete_time IS NULL) IS TRUE
                RETURNING s.id, s.last_turn_seq - p_count, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count
                INTO v_session, v_base, v_participants, v_turns, v_traces, v_spans, v_memories, v_integrations;
            ELSE
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
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
            -- Row by row, so that the INSERT's RETURNING names its own columns only (Citus cannot plan
            -- PL/pgSQL variables there). The first row returned carries the create time (the same for
            -- every turn: the transaction's) and the counters set above; the others carry NULL there.
            FOR v_seq, v_role, v_time IN
                INSERT INTO turns AS t (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id)
                SELECT p_namespace, v_session, p.id, v_base + n.ord, CASE WHEN n.role <> '' THEN n.role ELSE p_default_roles ->> p.kind END,
                       n.content, n.tool_calls, n.metadata, p_request_id
                FROM unnest(p_participants, p_roles, p_contents, p_tool_calls, p_metadata) WITH ORDINALITY AS n(participant_id, role, content, tool_calls, metadata, ord)
                JOIN participants p ON p.namespace_id = p_namespace AND p.session_id = v_session AND p.participant_id = n.participant_id AND p.left_time IS NULL
                RETURNING t.seq, t.role, t.create_time
            LOOP
                seq := v_seq;
                role := v_role;
                create_time := CASE WHEN v_first THEN v_time END;
                RETURN NEXT;
                IF v_first THEN
                    v_first := false;
                    participant_count := NULL;
                    turn_count := NULL;
                    trace_count := NULL;
                    span_count := NULL;
                    memories_extracted := NULL;
                    integration_count := NULL;
                    last_seq := NULL;
                END IF;
            END LOOP;
            IF p_request_id IS NOT NULL THEN
                INSERT INTO turn_requests (namespace_id, session_id, request_id, first_seq, turn_count, fingerprint)
                VALUES (p_namespace, v_session, p_request_id, v_base + 1, p_count, p_fingerprint);
            END IF;
        END
        $$`;

export class AppendTurnsLeanRows1796130000000 implements MigrationInterface {
    name = 'AppendTurnsLeanRows1796130000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(APPEND_TURNS);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(UNIQUE_KEY_APPEND_TURNS);
    }

}
