/**
 * Distributes the schema over Citus when the database has the `citus` extension (see db/distribution.ts:
 * namespaced tables by namespace_id, colocated; namespaces and api_keys as reference tables); on plain
 * PostgreSQL it does nothing. The same step runs after the migrations on every start, so a deployment
 * that adds Citus later is distributed then.
 */
import { MigrationInterface, QueryRunner } from "typeorm";
import { distribute, hasCitus } from "../distribution.js";

export class Distribute1796100000000 implements MigrationInterface {
    name = 'Distribute1796100000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await distribute(queryRunner.manager);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // Gathering the shards back onto the coordinator is an operator's decision (undistribute_table,
        // docs/operations.md), not a side effect of reverting a migration.
        if (await hasCitus(queryRunner.manager)) throw new Error("Distribute: the tables stay distributed; undistribute them by hand (see docs/operations.md) before reverting");
    }

}
