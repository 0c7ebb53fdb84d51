/**
 * Erasure (AdminService.ForgetSubject):
 * - operations may be of kind `forget_subject`;
 * - audit_events.detail: what a call did beyond its item count (ForgetSubject: the subject's kind and
 *   SHA-256 digest and the counts; never content);
 * - ix_participants_namespace_participant finds a subject's participations across the namespace's
 *   sessions without reading all of its participants.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

const kindCheck = (kinds: string[]) => `ALTER TABLE "operations" ADD CONSTRAINT "ck_operations_kind" CHECK ("kind" IN (${kinds.map((k) => `'${k}'`).join(", ")}))`;
const KINDS = ["bulk_delete_sessions", "delete_namespace", "retention_sweep"];

export class Erasure1796190000000 implements MigrationInterface {
    name = 'Erasure1796190000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "operations" DROP CONSTRAINT "ck_operations_kind"`);
        await queryRunner.query(kindCheck([...KINDS, "forget_subject"]));
        await queryRunner.query(`ALTER TABLE "audit_events" ADD "detail" jsonb`);
        await queryRunner.query(`CREATE INDEX "ix_participants_namespace_participant" ON "participants"  ("namespace_id", "participant_id", "session_id") `);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."ix_participants_namespace_participant"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "detail"`);
        await queryRunner.query(`DELETE FROM "operations" WHERE "kind" = 'forget_subject'`);
        await queryRunner.query(`ALTER TABLE "operations" DROP CONSTRAINT "ck_operations_kind"`);
        await queryRunner.query(kindCheck(KINDS));
    }

}
