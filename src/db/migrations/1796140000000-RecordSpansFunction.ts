/**
 * RecordSpans as one function call, sessiond_record_spans(): the named session locked and checked, the
 * call's traces upserted (a trace it creates gets its summary as it is created), the spans of new
 * traces inserted as they are (no other transaction can hold spans of a trace row it cannot see yet),
 * the spans of traces that existed inserted unless stored already and folded into those traces'
 * summaries, and the counters of every session concerned moved, all in one statement. It was a
 * transaction of seven round trips (BEGIN, the session's lock, the traces, the spans, the summaries,
 * the counters, COMMIT), each planned and answered on its own. Under Citus a distributed function by
 * p_namespace (distribution.ts): a call runs whole on the worker that holds the namespace.
 *
 * Arguments: the namespace; the session (NULL: traces under no session); per distinct trace of the
 * call, in any order: its OpenTelemetry id, how many spans the call holds of it, their earliest start
 * and latest end (epoch milliseconds), their highest status code and the name of their earliest root
 * span ('' if none); the spans as a JSON array of {t (trace id), s, p, n, k, st, et, c, m, a, e},
 * each (trace, span id) at most once. Lock order: the session, the traces in trace-id order, then the
 * other sessions whose counters change, in id order.
 *
 * Every session whose counters move gets its last_activity_time set (migration SessionActivity).
 *
 * Returns one row: session_state ('missing', 'active', 'cancelled' or 'soft_deleted'; NULL without a
 * session), spans recorded, traces created. Nothing is written unless the session is active.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { distribute, RECORD_SPANS_SIGNATURE } from "../distribution.js";

// Milliseconds since the epoch as a timestamp: whole seconds plus an interval, exact for years 1 to 9999.
const at = (ms: string) => `to_timestamp(${ms} / 1000) + (${ms} % 1000) * interval '1 millisecond'`;

// The call's spans into their traces (m.created tells a trace this call made); both inserts below add a WHERE.
const INSERT_SPANS = `
            INSERT INTO spans AS s (namespace_id, trace_id, otel_span_id, otel_parent_span_id, name, kind, start_time, end_time, status_code, status_message, attributes, events)
            SELECT p_namespace, m.id, x.s, NULLIF(x.p, ''), x.n, x.k, ${at("x.st")}, ${at("x.et")}, x.c, x.m, x.a, x.e
            FROM json_to_recordset(p_spans) AS x(t text, s text, p text, n text, k smallint, st bigint, et bigint, c smallint, m text, a jsonb, e jsonb)
            JOIN unnest(v_ids, v_otel_ids, v_created) AS m(id, otel_id, created) ON m.otel_id = x.t`;

const RECORD_SPANS = `
        CREATE FUNCTION sessiond_record_spans(
            p_namespace uuid, p_session uuid,
            p_trace_ids text[], p_counts integer[], p_starts bigint[], p_ends bigint[], p_statuses smallint[], p_roots text[],
            p_spans json)
        RETURNS TABLE (session_state text, recorded integer, traces_created integer)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_id uuid;
            v_otel_id text;
            v_owner uuid;
            v_new boolean;
            v_ids uuid[] := '{}';
            v_otel_ids text[] := '{}';
            v_owners uuid[] := '{}';
            v_created boolean[] := '{}';
            v_fresh integer := 0;
            v_existing integer := 0;
            v_n integer;
            -- What the spans stored for traces that existed add to them.
            v_trace uuid;
            v_start timestamptz;
            v_end timestamptz;
            v_status smallint;
            v_name text;
            v_root boolean;
            v_s_traces uuid[] := '{}';
            v_s_starts timestamptz[] := '{}';
            v_s_ends timestamptz[] := '{}';
            v_s_statuses smallint[] := '{}';
            v_s_names text[] := '{}';
            v_s_roots boolean[] := '{}';
            -- What each session gains: (session, traces, spans) rows.
            v_d_sessions uuid[] := '{}';
            v_d_traces integer[] := '{}';
            v_d_spans integer[] := '{}';
            r record;
        BEGIN
            recorded := 0;
            traces_created := 0;
            IF p_session IS NOT NULL THEN
                SELECT CASE WHEN s.delete_time IS NOT NULL THEN 'soft_deleted' ELSE s.state::text END INTO session_state
                FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = p_session FOR UPDATE;
                IF NOT FOUND THEN
                    session_state := 'missing';
                END IF;
                IF session_state <> 'active' THEN
                    RETURN NEXT;
                    RETURN;
                END IF;
            END IF;
            -- Row by row, so that the INSERT's RETURNING names its own columns only (Citus cannot plan
            -- PL/pgSQL variables there).
            FOR v_id, v_otel_id, v_owner, v_new IN
                INSERT INTO traces AS t (namespace_id, session_id, otel_trace_id, span_count, start_time, end_time, status_code, root_name)
                SELECT p_namespace, p_session, x.o, x.n, ${at("x.st")}, ${at("x.et")}, x.c, x.r
                FROM unnest(p_trace_ids, p_counts, p_starts, p_ends, p_statuses, p_roots) AS x(o, n, st, et, c, r)
                ORDER BY x.o
                ON CONFLICT (namespace_id, otel_trace_id) DO UPDATE SET otel_trace_id = EXCLUDED.otel_trace_id
                RETURNING t.id, t.otel_trace_id, t.session_id, (t.xmax = 0)
            LOOP
                v_ids := v_ids || v_id;
                v_otel_ids := v_otel_ids || v_otel_id;
                v_owners := v_owners || v_owner;
                v_created := v_created || v_new;
                IF v_new THEN
                    v_fresh := v_fresh + 1;
                ELSE
                    v_existing := v_existing + 1;
                END IF;
            END LOOP;
            traces_created := v_fresh;
            IF v_fresh > 0 THEN
                ${INSERT_SPANS}
                WHERE m.created;
                GET DIAGNOSTICS v_n = ROW_COUNT;
                recorded := v_n;
                IF p_session IS NOT NULL THEN
                    v_d_sessions := v_d_sessions || p_session;
                    v_d_traces := v_d_traces || v_fresh;
                    v_d_spans := v_d_spans || v_n;
                END IF;
            END IF;
            IF v_existing > 0 THEN
                FOR v_trace, v_start, v_end, v_status, v_name, v_root IN
                    ${INSERT_SPANS}
                    WHERE NOT m.created
                    ON CONFLICT (namespace_id, trace_id, otel_span_id) DO NOTHING
                    RETURNING s.trace_id, s.start_time, s.end_time, s.status_code, s.name, (s.otel_parent_span_id IS NULL)
                LOOP
                    v_s_traces := v_s_traces || v_trace;
                    v_s_starts := v_s_starts || v_start;
                    v_s_ends := v_s_ends || v_end;
                    v_s_statuses := v_s_statuses || v_status;
                    v_s_names := v_s_names || v_name;
                    v_s_roots := v_s_roots || v_root;
                END LOOP;
                -- Each trace by its primary key, in id order (rows locked by the upsert above).
                FOR r IN
                    SELECT u.id, count(*)::integer AS n, min(u.st) AS first, max(u.et) AS last, max(u.c) AS status,
                           (array_agg(u.name ORDER BY u.st) FILTER (WHERE u.root))[1] AS root
                    FROM unnest(v_s_traces, v_s_starts, v_s_ends, v_s_statuses, v_s_names, v_s_roots) AS u(id, st, et, c, name, root)
                    GROUP BY u.id ORDER BY u.id
                LOOP
                    UPDATE traces t SET span_count = t.span_count + r.n, start_time = LEAST(t.start_time, r.first), end_time = GREATEST(t.end_time, r.last),
                        status_code = GREATEST(t.status_code, r.status), root_name = CASE WHEN t.root_name = '' THEN coalesce(r.root, '') ELSE t.root_name END
                    WHERE t.namespace_id = p_namespace AND t.id = r.id;
                    recorded := recorded + r.n;
                    v_owner := v_owners[array_position(v_ids, r.id)];
                    IF v_owner IS NOT NULL THEN
                        v_d_sessions := v_d_sessions || v_owner;
                        v_d_traces := v_d_traces || 0;
                        v_d_spans := v_d_spans || r.n;
                    END IF;
                END LOOP;
            END IF;
            -- The sessions' counters, each session once, in id order.
            FOR r IN
                SELECT d.id, sum(d.traces)::integer AS traces, sum(d.spans)::integer AS spans
                FROM unnest(v_d_sessions, v_d_traces, v_d_spans) AS d(id, traces, spans)
                GROUP BY d.id ORDER BY d.id
            LOOP
                UPDATE sessions s SET trace_count = s.trace_count + r.traces, span_count = s.span_count + r.spans, last_activity_time = now()
                WHERE s.namespace_id = p_namespace AND s.id = r.id;
            END LOOP;
            RETURN NEXT;
        END
        $$`;

export class RecordSpansFunction1796140000000 implements MigrationInterface {
    name = 'RecordSpansFunction1796140000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(RECORD_SPANS);
        // Under Citus, distributed now (not only at the next server start), as UniqueKeyPlans does.
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${RECORD_SPANS_SIGNATURE}`);
    }

}
