/**
 * Live sessions (WatchSession, WatchSessions):
 * - `session_changes`, the outbox of every session change other than turns appended, numbered per
 *   session by the new `sessions.change_seq` (bumped by the statement that makes the change, under the
 *   session row lock, so a session's changes are numbered densely in commit order). `feed_position` is
 *   the namespace feed's order, given after commit (watch-store.ts). Distributed by namespace under Citus,
 *   colocated with sessions (distribution.ts).
 * - sessiond_delete_sessions() records each deleted session's DELETED change in the same statement, so
 *   every way a session goes (DeleteSession, BulkDeleteSessions, DeleteNamespace, retention) reaches its
 *   watchers and the feed. Its result type is unchanged; the function is dropped and made again (and
 *   distributed again under Citus).
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { DELETE_SESSIONS_SIGNATURE, distribute } from "../distribution.js";
import { DELETE_SESSIONS as UNIQUE_KEY_DELETE_SESSIONS } from "./1796120000000-UniqueKeyPlans.js";

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
            v_row sessions%ROWTYPE;
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
                DELETE FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id RETURNING s.* INTO v_row;
                -- Its last change, for its watchers and the namespace's feed: the row as it was, without its secret.
                INSERT INTO session_changes (namespace_id, session_id, change, kind, at_seq, external_id, session, detail)
                VALUES (p_namespace, v_id, v_row.change_seq + 1, 'deleted', v_row.last_turn_seq, v_row.external_id,
                        to_jsonb(v_row) - 'client_secret_hash',
                        jsonb_build_object('participants', v_row.participant_count, 'turns', v_row.turn_count, 'traces', v_row.trace_count,
                                           'spans', v_row.span_count, 'annotations', v_row.annotation_count, 'memories', v_memories));
                RETURN QUERY SELECT v_row.id, v_row.external_id, v_row.participant_count, v_row.turn_count, v_row.trace_count,
                    v_row.span_count, v_row.annotation_count, v_memories, false;
            END LOOP;
        END
        $$`;

export class WatchChanges1796160000000 implements MigrationInterface {
    name = 'WatchChanges1796160000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "session_changes" ("namespace_id" uuid NOT NULL, "session_id" uuid NOT NULL, "change" bigint NOT NULL, "kind" character varying(24) NOT NULL, "at_seq" bigint NOT NULL, "external_id" character varying(256) NOT NULL, "session" jsonb, "detail" jsonb, "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(), "feed_position" bigint, CONSTRAINT "ck_session_changes_kind" CHECK ("kind" IN ('created', 'updated', 'cancelled', 'soft_deleted', 'undeleted', 'truncated', 'participant_bound', 'participant_unbound', 'deleted')), CONSTRAINT "pk_session_changes" PRIMARY KEY ("namespace_id", "session_id", "change"))`);
        await queryRunner.query(`CREATE INDEX "ix_session_changes_create_time" ON "session_changes"  ("create_time") `);
        await queryRunner.query(`CREATE INDEX "ix_session_changes_unsequenced" ON "session_changes"  ("namespace_id", "create_time") WHERE "feed_position" IS NULL`);
        await queryRunner.query(`CREATE INDEX "ix_session_changes_feed" ON "session_changes"  ("namespace_id", "feed_position") WHERE "feed_position" IS NOT NULL`);
        await queryRunner.query(`ALTER TABLE "session_changes" ADD CONSTRAINT "fk_session_changes_namespace" FOREIGN KEY ("namespace_id") REFERENCES "namespaces"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        // After the key to namespaces: under Citus, DDL on a reference table cannot follow parallel DDL on a
        // distributed one in the same transaction.
        await queryRunner.query(`ALTER TABLE "sessions" ADD "change_seq" bigint NOT NULL DEFAULT '0'`);
        await queryRunner.query(`DROP FUNCTION ${DELETE_SESSIONS_SIGNATURE}`);
        await queryRunner.query(DELETE_SESSIONS);
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${DELETE_SESSIONS_SIGNATURE}`);
        await queryRunner.query(UNIQUE_KEY_DELETE_SESSIONS);
        await queryRunner.query(`ALTER TABLE "session_changes" DROP CONSTRAINT "fk_session_changes_namespace"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "change_seq"`);
        await queryRunner.query(`DROP INDEX "public"."ix_session_changes_feed"`);
        await queryRunner.query(`DROP INDEX "public"."ix_session_changes_unsequenced"`);
        await queryRunner.query(`DROP INDEX "public"."ix_session_changes_create_time"`);
        await queryRunner.query(`DROP TABLE "session_changes"`);
        await distribute(queryRunner.manager);
    }

}
