/**
 * Keys that name the namespace, so the schema can be distributed by namespace_id (Citus, see
 * ../shared/citus and issue 14) and every lookup by key is routed to one namespace. Written by hand:
 * - the primary key of every namespaced table becomes (namespace_id, <its key>), and every unique key
 *   starts with namespace_id (Citus requires the distribution column in each);
 * - foreign keys between namespaced tables become composite, (namespace_id, x_id) REFERENCES
 *   t (namespace_id, id), with the same cascades and names. memories.source_session_id still only
 *   detaches: `ON DELETE SET NULL (source_session_id)` (PostgreSQL 15+) nulls that column alone, since
 *   namespace_id is NOT NULL; TypeORM cannot declare the column list but reads the action as SET NULL,
 *   which is what MemoryEntity declares, so the drift check agrees;
 * - indexes that served a foreign key start with namespace_id too (ix_traces_session goes:
 *   ix_traces_namespace_session_create_time serves fk_traces_session);
 * - sessiond_admit_client_request takes the session's namespace, so each of its statements names it.
 * Not changed: namespaces (a small global table: a reference table under Citus), api_keys (namespace_id
 * NULL means every namespace, and keys are looked up by secret across namespaces: a reference table)
 * and audit_events (namespace_id NULL for calls outside a namespace; an append-only log read across
 * namespaces: a table local to the coordinator).
 */
import { MigrationInterface, QueryRunner } from "typeorm";

/** Composite foreign keys: [table, name, columns, referenced table, ON DELETE]. */
const FOREIGN_KEYS: [string, string, string, string, string][] = [
  ["participants", "fk_participants_session", "session_id", "sessions", "CASCADE"],
  ["turns", "fk_turns_session", "session_id", "sessions", "CASCADE"],
  ["turns", "fk_turns_participant", "participant_ref", "participants", "CASCADE"],
  ["turn_requests", "fk_turn_requests_session", "session_id", "sessions", "CASCADE"],
  ["traces", "fk_traces_session", "session_id", "sessions", "CASCADE"],
  ["spans", "fk_spans_trace", "trace_id", "traces", "CASCADE"],
  ["annotations", "fk_annotations_session", "session_id", "sessions", "CASCADE"],
  ["annotations", "fk_annotations_trace", "trace_id", "traces", "CASCADE"],
  ["annotations", "fk_annotations_span", "span_id", "spans", "CASCADE"],
  ["memories", "fk_memories_source_session", "source_session_id", "sessions", "SET NULL"],
  ["client_requests", "fk_client_requests_session", "session_id", "sessions", "CASCADE"],
];

/** Primary keys: [table, old columns]; the new key puts namespace_id first. Parents before children. */
const PRIMARY_KEYS: [string, string][] = [
  ["sessions", `"id"`],
  ["participants", `"id"`],
  ["turns", `"id"`],
  ["turn_requests", `"session_id", "request_id"`],
  ["traces", `"id"`],
  ["spans", `"id"`],
  ["annotations", `"id"`],
  ["memories", `"id"`],
  ["client_requests", `"id"`],
];

/** Unique constraints: [table, name, old columns]; the new one puts namespace_id first. */
const UNIQUES: [string, string, string][] = [
  ["participants", "uq_participants_session_participant", `"session_id", "participant_id"`],
  ["turns", "uq_turns_session_seq", `"session_id", "seq"`],
  ["spans", "uq_spans_trace_otel_span_id", `"trace_id", "otel_span_id"`],
];

/** Indexes: [table, name, old columns]; the new one puts namespace_id first. */
const INDEXES: [string, string, string][] = [
  ["turns", "ix_turns_participant_seq", `"participant_ref", "seq"`],
  ["annotations", "ix_annotations_session", `"session_id"`],
  ["annotations", "ix_annotations_trace", `"trace_id"`],
  ["annotations", "ix_annotations_span", `"span_id"`],
  ["memories", "ix_memories_source_session", `"source_session_id"`],
  ["client_requests", "ix_client_requests_session_at", `"session_id", "at"`],
];

// The rate limit's function (see the Tenancy migration), each statement scoped by the session's namespace.
const ADMIT_BY_NAMESPACE = `CREATE FUNCTION sessiond_admit_client_request(p_namespace uuid, p_session uuid, p_limit integer) RETURNS integer
            LANGUAGE plpgsql AS $$
            DECLARE
                v_now timestamptz;
                v_count integer;
                v_oldest timestamptz;
            BEGIN
                PERFORM pg_advisory_xact_lock(hashtextextended('sessiond.client_requests:' || p_session::text, 0));
                v_now := clock_timestamp();
                DELETE FROM client_requests WHERE namespace_id = p_namespace AND session_id = p_session AND at <= v_now - interval '60 seconds';
                SELECT count(*), min(at) INTO v_count, v_oldest FROM client_requests WHERE namespace_id = p_namespace AND session_id = p_session;
                IF v_count >= p_limit THEN
                    RETURN greatest(1, ceil(extract(epoch FROM (v_oldest + interval '60 seconds' - v_now)) * 1000))::integer;
                END IF;
                INSERT INTO client_requests (namespace_id, session_id, at) SELECT namespace_id, id, v_now FROM sessions WHERE namespace_id = p_namespace AND id = p_session;
                RETURN 0;
            END
            $$`;

// The Tenancy migration's function, as it was.
const ADMIT_BY_SESSION = `CREATE FUNCTION sessiond_admit_client_request(p_session uuid, p_limit integer) RETURNS integer
            LANGUAGE plpgsql AS $$
            DECLARE
                v_now timestamptz;
                v_count integer;
                v_oldest timestamptz;
            BEGIN
                PERFORM pg_advisory_xact_lock(hashtextextended('sessiond.client_requests:' || p_session::text, 0));
                v_now := clock_timestamp();
                DELETE FROM client_requests WHERE session_id = p_session AND at <= v_now - interval '60 seconds';
                SELECT count(*), min(at) INTO v_count, v_oldest FROM client_requests WHERE session_id = p_session;
                IF v_count >= p_limit THEN
                    RETURN greatest(1, ceil(extract(epoch FROM (v_oldest + interval '60 seconds' - v_now)) * 1000))::integer;
                END IF;
                INSERT INTO client_requests (namespace_id, session_id, at) SELECT namespace_id, id, v_now FROM sessions WHERE id = p_session;
                RETURN 0;
            END
            $$`;

export class NamespaceKeys1796040000000 implements MigrationInterface {
    name = 'NamespaceKeys1796040000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        for (const [table, name] of FOREIGN_KEYS) await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${name}"`);
        for (const [table, name] of UNIQUES) await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${name}"`);
        for (const [table, columns] of PRIMARY_KEYS) {
            await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "pk_${table}"`);
            await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "pk_${table}" PRIMARY KEY ("namespace_id", ${columns})`);
        }
        for (const [table, name, columns] of UNIQUES) await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${name}" UNIQUE ("namespace_id", ${columns})`);
        for (const [table, name, columns] of INDEXES) {
            await queryRunner.query(`DROP INDEX "public"."${name}"`);
            await queryRunner.query(`CREATE INDEX "${name}" ON "${table}"  ("namespace_id", ${columns}) `);
        }
        await queryRunner.query(`DROP INDEX "public"."ix_traces_session"`);
        for (const [table, name, column, parent, action] of FOREIGN_KEYS) {
            // SET NULL names its column: a plain SET NULL would also null namespace_id (NOT NULL).
            const onDelete = action === "SET NULL" ? `SET NULL ("${column}")` : action;
            await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${name}" FOREIGN KEY ("namespace_id", "${column}") REFERENCES "${parent}"("namespace_id", "id") ON DELETE ${onDelete} ON UPDATE NO ACTION`);
        }
        await queryRunner.query(`DROP FUNCTION sessiond_admit_client_request(uuid, integer)`);
        await queryRunner.query(ADMIT_BY_NAMESPACE);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION sessiond_admit_client_request(uuid, uuid, integer)`);
        await queryRunner.query(ADMIT_BY_SESSION);
        for (const [table, name] of FOREIGN_KEYS) await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${name}"`);
        await queryRunner.query(`CREATE INDEX "ix_traces_session" ON "traces"  ("session_id") `);
        for (const [table, name, columns] of INDEXES) {
            await queryRunner.query(`DROP INDEX "public"."${name}"`);
            await queryRunner.query(`CREATE INDEX "${name}" ON "${table}"  (${columns}) `);
        }
        for (const [table, name] of UNIQUES) await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${name}"`);
        for (const [table, columns] of PRIMARY_KEYS) {
            await queryRunner.query(`ALTER TABLE "${table}" DROP CONSTRAINT "pk_${table}"`);
            await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "pk_${table}" PRIMARY KEY (${columns})`);
        }
        for (const [table, name, columns] of UNIQUES) await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${name}" UNIQUE (${columns})`);
        for (const [table, name, column, parent, action] of FOREIGN_KEYS) {
            await queryRunner.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${name}" FOREIGN KEY ("${column}") REFERENCES "${parent}"("id") ON DELETE ${action} ON UPDATE NO ACTION`);
        }
    }

}
