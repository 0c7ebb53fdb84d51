/**
 * Compactions (CompactSession): sessions.compacted_seq marks the turns archived (kept, out of the live
 * list), session_compactions holds each compaction's summary, and the outbox takes a COMPACTED change.
 * session_compactions is distributed by namespace and colocated with sessions under Citus.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { distribute } from "../distribution.js";

const KINDS = ["created", "updated", "cancelled", "soft_deleted", "undeleted", "truncated", "participant_bound", "participant_unbound", "deleted"];
const kindCheck = (kinds: string[]) => `ALTER TABLE "session_changes" ADD CONSTRAINT "ck_session_changes_kind" CHECK ("kind" IN (${kinds.map((k) => `'${k}'`).join(", ")}))`;

export class Compactions1796170000000 implements MigrationInterface {
    name = 'Compactions1796170000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "session_compactions" ("namespace_id" uuid NOT NULL, "session_id" uuid NOT NULL, "up_to_seq" bigint NOT NULL, "first_seq" bigint NOT NULL, "turns_archived" integer NOT NULL, "summary" text NOT NULL, "summarizer" character varying(64) NOT NULL, "memory_ids" uuid array NOT NULL DEFAULT '{}', "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_session_compactions" PRIMARY KEY ("namespace_id", "session_id", "up_to_seq"))`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "compacted_seq" bigint NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "compaction_count" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "archived_turn_count" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "session_compactions" ADD CONSTRAINT "fk_session_compactions_session" FOREIGN KEY ("session_id", "namespace_id") REFERENCES "sessions"("id","namespace_id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "session_changes" DROP CONSTRAINT "ck_session_changes_kind"`);
        await queryRunner.query(kindCheck([...KINDS.slice(0, -1), "compacted", "deleted"]));
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
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
