/**
 * Compactions (CompactSession): sessions.compacted_seq marks the turns archived (kept, out of the live
 * list), session_compactions holds each compaction's summary, and the outbox takes a COMPACTED change.
 * session_compactions is distributed by namespace and colocated with sessions under Citus.
 * sessiond_delete_sessions() also returns (and records in the DELETED change) the archived turns and the
 * compactions that went; it is dropped and made again (and distributed again under Citus).
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { DELETE_SESSIONS_SIGNATURE, distribute } from "../distribution.js";
import { DELETE_SESSIONS as WATCH_DELETE_SESSIONS } from "./1796160000000-WatchChanges.js";

const KINDS = ["created", "updated", "cancelled", "soft_deleted", "undeleted", "truncated", "participant_bound", "participant_unbound", "deleted"];
const kindCheck = (kinds: string[]) => `ALTER TABLE "session_changes" ADD CONSTRAINT "ck_session_changes_kind" CHECK ("kind" IN (${kinds.map((k) => `'${k}'`).join(", ")}))`;

export const DELETE_SESSIONS = `
        CREATE FUNCTION sessiond_delete_sessions(
            p_namespace uuid, p_ids uuid[], p_external_ids text[], p_dry_run boolean, p_purge_memories boolean, p_version integer)
        RETURNS TABLE (id uuid, external_id varchar, participants integer, turns integer, traces integer, spans integer,
                       annotations integer, archived_turns integer, compactions integer, memories integer, stale boolean)
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
                    RETURN QUERY SELECT s.id, s.external_id, 0, 0, 0, 0, 0, 0, 0, 0, true FROM sessions s WHERE s.namespace_id = p_namespace AND s.id = v_id;
                    CONTINUE;
                END IF;
                -- The memories stay and lose their link here (unless purged), not by the foreign key's SET
                -- NULL, which Citus cannot keep (db/distribution.ts).
                IF p_dry_run THEN
                    SELECT count(*)::integer INTO v_memories FROM memories m WHERE m.namespace_id = p_namespace AND m.source_session_id = v_id;
                    RETURN QUERY SELECT s.id, s.external_id, s.participant_count, s.turn_count, s.trace_count, s.span_count, s.annotation_count, s.archived_turn_count, s.compaction_count, v_memories, false
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
                                           'spans', v_row.span_count, 'annotations', v_row.annotation_count, 'archived_turns', v_row.archived_turn_count,
                                           'compactions', v_row.compaction_count, 'memories', v_memories));
                RETURN QUERY SELECT v_row.id, v_row.external_id, v_row.participant_count, v_row.turn_count, v_row.trace_count,
                    v_row.span_count, v_row.annotation_count, v_row.archived_turn_count, v_row.compaction_count, v_memories, false;
            END LOOP;
        END
        $$`;

export class Compactions1796170000000 implements MigrationInterface {
    name = 'Compactions1796170000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        // The function first: under Citus, a distributed function cannot be dropped after parallel DDL on
        // a distributed table in the same transaction (its body names the new columns only when it runs).
        await queryRunner.query(`DROP FUNCTION ${DELETE_SESSIONS_SIGNATURE}`);
        await queryRunner.query(DELETE_SESSIONS);
        await queryRunner.query(`CREATE TABLE "session_compactions" ("namespace_id" uuid NOT NULL, "session_id" uuid NOT NULL, "up_to_seq" bigint NOT NULL, "first_seq" bigint NOT NULL, "turns_archived" integer NOT NULL, "summary" text NOT NULL, "summarizer" character varying(64) NOT NULL, "memory_ids" uuid array NOT NULL DEFAULT '{}', "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_session_compactions" PRIMARY KEY ("namespace_id", "session_id", "up_to_seq"))`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "compacted_seq" bigint NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "compaction_count" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "archived_turn_count" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "session_compactions" ADD CONSTRAINT "fk_session_compactions_session" FOREIGN KEY ("namespace_id", "session_id") REFERENCES "sessions"("namespace_id", "id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "session_changes" DROP CONSTRAINT "ck_session_changes_kind"`);
        await queryRunner.query(kindCheck([...KINDS.slice(0, -1), "compacted", "deleted"]));
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP FUNCTION ${DELETE_SESSIONS_SIGNATURE}`);
        await queryRunner.query(WATCH_DELETE_SESSIONS);
        await queryRunner.query(`DELETE FROM "session_changes" WHERE "kind" = 'compacted'`);
        await queryRunner.query(`ALTER TABLE "session_changes" DROP CONSTRAINT "ck_session_changes_kind"`);
        await queryRunner.query(kindCheck(KINDS));
        await queryRunner.query(`ALTER TABLE "session_compactions" DROP CONSTRAINT "fk_session_compactions_session"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "archived_turn_count"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "compaction_count"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "compacted_seq"`);
        await queryRunner.query(`DROP TABLE "session_compactions"`);
    }

}
