/** Adds the annotation counter that lets a delete report its cascade from the session row. */
import { MigrationInterface, QueryRunner } from "typeorm";

export class SessionAnnotationCount1795426881141 implements MigrationInterface {
    name = 'SessionAnnotationCount1795426881141'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "sessions" ADD "annotation_count" integer NOT NULL DEFAULT '0'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "annotation_count"`);
    }

}
