/**
 * sessiond_append_turns() also returns where the session stands once the turns are in: its counters and
 * its last sequence number, as its UPDATE of the sessions row left them (RETURNING ... INTO), on every
 * row it returns. AppendTurns answers with them, so a client needs no GetSession after an append, and
 * the call still costs one round trip. The arguments are unchanged (APPEND_TURNS_SIGNATURE, which
 * distribution.ts distributes by p_namespace); a function's result type cannot be altered in place, so
 * it is dropped and created again in this migration's transaction, then distributed again under Citus
 * (distribute() does only what is missing). The first three columns are the earlier ones: a server of
 * the previous version selects them by name and keeps working.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { distribute } from "../distribution.js";
import { APPEND_TURNS_SIGNATURE, AppendTurnsFunction1796090000000 } from "./1796090000000-AppendTurnsFunction.js";

export class AppendTurnsState1796110000000 implements MigrationInterface {
    name = 'AppendTurnsState1796110000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${APPEND_TURNS_SIGNATURE}`);
        await queryRunner.query(`
        CREATE FUNCTION sessiond_append_turns(
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
        BEGIN
            IF p_session IS NOT NULL THEN
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
                WHERE s.namespace_id = p_namespace AND s.id = p_session AND s.state = 'active' AND s.delete_time IS NULL
                RETURNING s.id, s.last_turn_seq - p_count, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count
                INTO v_session, v_base, v_participants, v_turns, v_traces, v_spans, v_memories, v_integrations;
            ELSE
                UPDATE sessions s SET last_turn_seq = s.last_turn_seq + p_count, turn_count = s.turn_count + p_count
                WHERE s.namespace_id = p_namespace AND s.external_id = p_external_id AND s.state = 'active' AND s.delete_time IS NULL
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
            -- PL/pgSQL variables there), and each row carries the counters set above.
            FOR seq, role, create_time IN
                INSERT INTO turns AS t (namespace_id, session_id, participant_ref, seq, role, content, tool_calls, metadata, request_id)
                SELECT p_namespace, v_session, p.id, v_base + n.ord, CASE WHEN n.role <> '' THEN n.role ELSE p_default_roles ->> p.kind END,
                       n.content, n.tool_calls, n.metadata, p_request_id
                FROM unnest(p_participants, p_roles, p_contents, p_tool_calls, p_metadata) WITH ORDINALITY AS n(participant_id, role, content, tool_calls, metadata, ord)
                JOIN participants p ON p.namespace_id = p_namespace AND p.session_id = v_session AND p.participant_id = n.participant_id AND p.left_time IS NULL
                RETURNING t.seq, t.role, t.create_time
            LOOP
                RETURN NEXT;
            END LOOP;
            IF p_request_id IS NOT NULL THEN
                INSERT INTO turn_requests (namespace_id, session_id, request_id, first_seq, turn_count, fingerprint)
                VALUES (p_namespace, v_session, p_request_id, v_base + 1, p_count, p_fingerprint);
            END IF;
        END
        $$`);
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${APPEND_TURNS_SIGNATURE}`);
        await new AppendTurnsFunction1796090000000().up(queryRunner);
        await distribute(queryRunner.manager);
    }

}
