/**
 * Participants, turns and memory integration: per-session turn numbering that survives a truncate,
 * idempotent AppendTurns (turn_requests), the namespace's integrator, who produced a memory, and the
 * indexes ListTurns (by participant) and ListMemories (newest first) page by.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

export class Conversations1795433411621 implements MigrationInterface {
    name = 'Conversations1795433411621'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."ix_turns_participant"`);
        await queryRunner.query(`CREATE TABLE "turn_requests" ("session_id" uuid NOT NULL, "request_id" character varying(128) NOT NULL, "namespace_id" uuid NOT NULL, "first_seq" bigint NOT NULL, "turn_count" integer NOT NULL, "fingerprint" character varying(64) NOT NULL, "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_turn_requests" PRIMARY KEY ("session_id", "request_id"))`);
        await queryRunner.query(`ALTER TABLE "namespaces" ADD "integrator_kind" character varying(16) NOT NULL DEFAULT 'rules'`);
        await queryRunner.query(`ALTER TABLE "namespaces" ADD "integrator_url" character varying(2048) NOT NULL DEFAULT ''`);
        await queryRunner.query(`ALTER TABLE "namespaces" ADD "integrator_timeout_ms" integer NOT NULL DEFAULT '10000'`);
        await queryRunner.query(`ALTER TABLE "sessions" ADD "last_turn_seq" bigint NOT NULL DEFAULT '0'`);
        // Written by hand: continue the numbering of turns stored before this migration.
        await queryRunner.query(`UPDATE "sessions" s SET "last_turn_seq" = t.max_seq FROM (SELECT "session_id", max("seq") AS max_seq FROM "turns" GROUP BY 1) t WHERE t."session_id" = s."id"`);
        await queryRunner.query(`ALTER TABLE "memories" ADD "integrated_by" character varying(256) NOT NULL DEFAULT ''`);
        await queryRunner.query(`CREATE INDEX "ix_memories_namespace_create_time" ON "memories"  ("namespace_id", "create_time", "id") `);
        await queryRunner.query(`CREATE INDEX "ix_turns_participant_seq" ON "turns"  ("participant_ref", "seq") `);
        await queryRunner.query(`ALTER TABLE "namespaces" ADD CONSTRAINT "ck_namespaces_integrator_kind" CHECK ("integrator_kind" IN ('rules', 'remote'))`);
        await queryRunner.query(`ALTER TABLE "turn_requests" ADD CONSTRAINT "fk_turn_requests_session" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "turn_requests" DROP CONSTRAINT "fk_turn_requests_session"`);
        await queryRunner.query(`ALTER TABLE "namespaces" DROP CONSTRAINT "ck_namespaces_integrator_kind"`);
        await queryRunner.query(`DROP INDEX "public"."ix_turns_participant_seq"`);
        await queryRunner.query(`DROP INDEX "public"."ix_memories_namespace_create_time"`);
        await queryRunner.query(`ALTER TABLE "memories" DROP COLUMN "integrated_by"`);
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "last_turn_seq"`);
        await queryRunner.query(`ALTER TABLE "namespaces" DROP COLUMN "integrator_timeout_ms"`);
        await queryRunner.query(`ALTER TABLE "namespaces" DROP COLUMN "integrator_url"`);
        await queryRunner.query(`ALTER TABLE "namespaces" DROP COLUMN "integrator_kind"`);
        await queryRunner.query(`DROP TABLE "turn_requests"`);
        await queryRunner.query(`CREATE INDEX "ix_turns_participant" ON "turns" USING btree ("participant_ref") `);
    }

}
