/**
 * Traces and annotations: one key per annotation target (what ListAnnotations and the identifier
 * upsert go by) and the index ListTraces pages by.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

export class Traces1795435151799 implements MigrationInterface {
    name = 'Traces1795435151799'

    public async up(queryRunner: QueryRunner): Promise<void> {
        // Written by hand: fill the key of annotations stored before this migration, then require it.
        await queryRunner.query(`ALTER TABLE "annotations" ADD "target_key" character varying(64)`);
        await queryRunner.query(`UPDATE "annotations" SET "target_key" = "target_kind" || ':' || CASE "target_kind" WHEN 'span' THEN "span_id"::text WHEN 'trace' THEN "trace_id"::text ELSE "session_id"::text END`);
        await queryRunner.query(`ALTER TABLE "annotations" ALTER COLUMN "target_key" SET NOT NULL`);
        await queryRunner.query(`CREATE INDEX "ix_traces_namespace_session_create_time" ON "traces"  ("namespace_id", "session_id", "create_time", "id") `);
        await queryRunner.query(`CREATE UNIQUE INDEX "uq_annotations_identifier" ON "annotations"  ("namespace_id", "target_key", "name", "identifier") WHERE "identifier" <> ''`);
        await queryRunner.query(`CREATE INDEX "ix_annotations_target" ON "annotations"  ("namespace_id", "target_key", "create_time", "id") `);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."ix_annotations_target"`);
        await queryRunner.query(`DROP INDEX "public"."uq_annotations_identifier"`);
        await queryRunner.query(`DROP INDEX "public"."ix_traces_namespace_session_create_time"`);
        await queryRunner.query(`ALTER TABLE "annotations" DROP COLUMN "target_key"`);
    }

}
