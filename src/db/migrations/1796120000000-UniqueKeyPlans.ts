/**
 * Plans that do not depend on statistics. On a table never analyzed (a bulk load before autovacuum
 * reaches it, or autovacuum off) the planner guesses: one namespace_id value is 0.5% of the rows, a
 * `state = 'active'` or a `delete_time IS NULL` 0.5% of those. Whichever index then matches more of a
 * statement's conditions looks cheapest, even one that reads a whole namespace. Two functions leave it
 * nothing to misread:
 *
 * - sessiond_append_turns() finds the session by its unique key alone (`(namespace_id, id)` or
 *   `(namespace_id, external_id)`) and checks its state in the row. Its UPDATE said
 *   `AND state = 'active' AND delete_time IS NULL`, and with the external id the planner took
 *   ix_sessions_namespace_state (namespace_id, state, ...) over the unique key: every active session of
 *   the namespace read on every append (768 buffers instead of 26 with 20,000 sessions). Now the check
 *   is `(...) IS TRUE`, which no index serves. Same arguments, result columns and body otherwise as in
 *   AppendTurnsState (CREATE OR REPLACE keeps its Citus distribution).
 * - sessiond_delete_sessions(): a deletion batch (DeleteSession's one session, a BulkDeleteSessions
 *   batch, a DeleteNamespace batch) as one call that addresses each session by its unique key in its own
 *   statements: found, row-locked in id order, its memories detached (or purged, or counted), deleted.
 *   A set-based `id = ANY($ids)` lets the planner read the whole namespace instead of probing the ids
 *   once it guesses the namespace holds fewer rows than the batch names. One statement, so one round
 *   trip and atomic without a transaction; under Citus a distributed function by p_namespace
 *   (distribution.ts), so a call outside a transaction runs whole on the worker that holds the namespace.
 *   A session whose version is not p_version (when given) is returned with `stale` and left alone.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { DELETE_SESSIONS_SIGNATURE, distribute } from "../distribution.js";
import { AppendTurnsState1796110000000 } from "./1796110000000-AppendTurnsState.js";

// AppendTurnsState's function, but for how its UPDATE finds the session: the state is checked with
// IS TRUE, which no index can serve, so the unique key is the only index condition the planner is given.
export const APPEND_TURNS = `
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
        $$`;

export const DELETE_SESSIONS = `
        CREATE FUNCTION sessiond_delete_sessions(
            p_namespace uuid, p_ids uuid[], p_external_ids text[], p_dry_run boolean, p_purge_memories boolean, p_version integer)
        RETURNS TABLE (id uuid, external_id varchar, participants integer, turns integer, traces integer, spans integer,
                       annotations integer, memories integer, stale boolean)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_ids uuid[];
            v_id uuid;
            v_version integer;
            v_memories integer;
        BEGIN
            -- The sessions named, in id order (overlapping batches lock in the same order: no deadlock).
            -- Caller ids are resolved one by one through their unique key (LIMIT keeps each a probe).
            IF p_external_ids IS NULL THEN
                v_ids := ARRAY(SELECT DISTINCT k.id FROM unnest(p_ids) k(id) ORDER BY 1);
            ELSE
                v_ids := ARRAY(SELECT DISTINCT f.id FROM unnest(p_external_ids) k(external_id)
                               CROSS JOIN LATERAL (SELECT s.id FROM sessions s WHERE s.namespace_id = p_namespace AND s.external_id = k.external_id LIMIT 1) f
                               ORDER BY 1);
            END IF;
            FOREACH v_id IN ARRAY v_ids LOOP
                -- Locked first: no memory can link to the session meanwhile (its insert waits on the lock).
                IF p_dry_run THEN
                    SELECT s.version INTO v_version FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id FOR SHARE;
                ELSE
                    SELECT s.version INTO v_version FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id FOR UPDATE;
                END IF;
                CONTINUE WHEN NOT FOUND;
                IF p_version IS NOT NULL AND v_version <> p_version THEN
                    RETURN QUERY SELECT s.id, s.external_id, 0, 0, 0, 0, 0, 0, true FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id;
                    CONTINUE;
                END IF;
                -- The memories stay and lose their link here (unless purged), not by the foreign key's SET
                -- NULL, which Citus cannot keep (db/distribution.ts).
                IF p_dry_run THEN
                    SELECT count(*)::integer INTO v_memories FROM memories m WHERE m.namespace_id = p_namespace AND m.source_session_id = v_id;
                    RETURN QUERY SELECT s.id, s.external_id, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.annotation_count, v_memories, false
                        FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id;
                    CONTINUE;
                ELSIF p_purge_memories THEN
                    DELETE FROM memories m WHERE m.namespace_id = p_namespace AND m.source_session_id = v_id;
                ELSE
                    UPDATE memories m SET source_session_id = NULL WHERE m.namespace_id = p_namespace AND m.source_session_id = v_id;
                END IF;
                GET DIAGNOSTICS v_memories = ROW_COUNT;
                -- What went with it: the counters of the row (exact: every writer updates them under its lock).
                RETURN QUERY DELETE FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id
                    RETURNING s.id, s.external_id, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.annotation_count, v_memories, false;
            END LOOP;
        END
        $$`;

export class UniqueKeyPlans1796120000000 implements MigrationInterface {
    name = 'UniqueKeyPlans1796120000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(APPEND_TURNS);
        await queryRunner.query(DELETE_SESSIONS);
        // Under Citus, the new function becomes distributed now (not only at the next server start), so
        // that migrating with the CLI leaves no batch running statement by statement on the coordinator.
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${DELETE_SESSIONS_SIGNATURE}`);
        // AppendTurnsState's function again, as that migration makes it.
        await new AppendTurnsState1796110000000().up(queryRunner);
    }

}
