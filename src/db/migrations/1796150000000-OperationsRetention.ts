/**
 * Durable operations and retention:
 * - `operations` (a bulk delete, a namespace deletion or a retention sweep, with its request, state,
 *   cursor, counters and the lease of the process running it) and `operation_batches` (every committed
 *   batch's results, written in the batch's own transaction). Both stay on the coordinator under Citus
 *   (distribution.ts LOCAL_TABLES). ix_operations_open serves the processes looking for work to claim;
 *   uq_operations_open_sweep allows one open retention sweep per namespace.
 * - `retention_policies`: a namespace's own retention policy (a reference table under Citus, like
 *   namespaces).
 */
import { MigrationInterface, QueryRunner } from "typeorm";

export class OperationsRetention1796150000000 implements MigrationInterface {
    name = 'OperationsRetention1796150000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "operations" ("id" uuid NOT NULL DEFAULT sessiond_uuid_v7(), "namespace_id" uuid NOT NULL, "namespace" character varying(63) NOT NULL, "kind" character varying(32) NOT NULL, "state" character varying(16) NOT NULL DEFAULT 'queued', "request" jsonb NOT NULL, "cursor" jsonb NOT NULL, "progress" jsonb NOT NULL, "result" jsonb, "batches" integer NOT NULL DEFAULT '0', "detach" boolean NOT NULL, "actor" character varying(160) NOT NULL, "error" text NOT NULL DEFAULT '', "cancel_requested" boolean NOT NULL DEFAULT false, "lease_owner" character varying(128), "lease_until" TIMESTAMP(3) WITH TIME ZONE, "attempts" integer NOT NULL DEFAULT '0', "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "start_time" TIMESTAMP(3) WITH TIME ZONE, "update_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "end_time" TIMESTAMP(3) WITH TIME ZONE, CONSTRAINT "ck_operations_kind" CHECK ("kind" IN ('bulk_delete_sessions', 'delete_namespace', 'retention_sweep')), CONSTRAINT "ck_operations_state" CHECK ("state" IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')), CONSTRAINT "pk_operations" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE UNIQUE INDEX "uq_operations_open_sweep" ON "operations"  ("namespace_id") WHERE "kind" = 'retention_sweep' AND "state" IN ('queued', 'running')`);
        await queryRunner.query(`CREATE INDEX "ix_operations_open" ON "operations"  ("create_time", "id") WHERE "state" IN ('queued', 'running')`);
        await queryRunner.query(`CREATE INDEX "ix_operations_namespace_time" ON "operations"  ("namespace_id", "create_time", "id") `);
        await queryRunner.query(`CREATE TABLE "operation_batches" ("operation_id" uuid NOT NULL, "number" integer NOT NULL, "progress" jsonb NOT NULL, "create_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_operation_batches" PRIMARY KEY ("operation_id", "number"))`);
        await queryRunner.query(`CREATE TABLE "retention_policies" ("namespace_id" uuid NOT NULL, "max_age_ms" bigint, "max_idle_ms" bigint, "purge_memories" boolean NOT NULL DEFAULT false, "hold_labels" text array NOT NULL DEFAULT '{}', "sessionless_trace_ttl_ms" bigint, "update_time" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_retention_policies" PRIMARY KEY ("namespace_id"))`);
        await queryRunner.query(`ALTER TABLE "operation_batches" ADD CONSTRAINT "fk_operation_batches_operation" FOREIGN KEY ("operation_id") REFERENCES "operations"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "retention_policies" ADD CONSTRAINT "fk_retention_policies_namespace" FOREIGN KEY ("namespace_id") REFERENCES "namespaces"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "retention_policies" DROP CONSTRAINT "fk_retention_policies_namespace"`);
        await queryRunner.query(`ALTER TABLE "operation_batches" DROP CONSTRAINT "fk_operation_batches_operation"`);
        await queryRunner.query(`DROP TABLE "retention_policies"`);
        await queryRunner.query(`DROP TABLE "operation_batches"`);
        await queryRunner.query(`DROP INDEX "public"."ix_operations_namespace_time"`);
        await queryRunner.query(`DROP INDEX "public"."ix_operations_open"`);
        await queryRunner.query(`DROP INDEX "public"."uq_operations_open_sweep"`);
        await queryRunner.query(`DROP TABLE "operations"`);
    }

}
