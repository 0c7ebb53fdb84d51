/**
 * Time-ordered ids. Lists page by (create_time, id), and create_time has millisecond precision (now(),
 * the start of the transaction), so rows created within one millisecond were ordered by a random uuid.
 * New ids are UUIDv7 made by the database: ids made later sort later, so (create_time, id) is total and
 * follows creation order. Existing rows keep their ids.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

/** Tables whose uuid primary key the database generates. */
const TABLES = ["namespaces", "sessions", "participants", "traces", "annotations", "memories", "api_keys", "audit_events"];

export class TimeOrderedIds1795979340577 implements MigrationInterface {
    name = 'TimeOrderedIds1795979340577'

    public async up(queryRunner: QueryRunner): Promise<void> {
        // Written by hand, after PostgreSQL 18's uuidv7() (RFC 9562, method 3): 48 bits of Unix time in
        // ms, the version, 12 bits of sub-millisecond fraction (clock_timestamp() has microseconds, so
        // every microsecond gets its own value), the variant and 62 random bits. Monotonic per backend
        // like uuidv7(): when the clock has not moved on (or went back) the fraction is the last one
        // plus one step; the last value lives in a session setting. Across backends the order is the
        // clock's. A plain function (no extension), so it runs on PostgreSQL 15 to 18 and on Citus;
        // PARALLEL UNSAFE because set_config is not allowed in a parallel worker.
        await queryRunner.query(`CREATE FUNCTION sessiond_uuid_v7() RETURNS uuid
            LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
            DECLARE
                -- Time in steps of 1/4096 ms: the 48-bit ms and the 12-bit fraction in one number.
                v_step bigint := floor(extract(epoch FROM clock_timestamp()) * 4096000)::bigint;
                v_last bigint := nullif(current_setting('sessiond.uuid_v7_last', true), '')::bigint;
                v_bytes bytea := uuid_send(gen_random_uuid());
            BEGIN
                IF v_step <= v_last THEN
                    v_step := v_last + 1;
                END IF;
                PERFORM set_config('sessiond.uuid_v7_last', v_step::text, false);
                v_bytes := overlay(v_bytes PLACING substring(int8send(v_step >> 12) FROM 3 FOR 6) FROM 1 FOR 6);
                v_bytes := set_byte(v_bytes, 6, 112 | ((v_step >> 8) & 15)::integer);
                v_bytes := set_byte(v_bytes, 7, (v_step & 255)::integer);
                -- Byte 8 keeps gen_random_uuid()'s variant bits (10xx).
                RETURN encode(v_bytes, 'hex')::uuid;
            END
            $$`);
        for (const table of TABLES) await queryRunner.query(`ALTER TABLE "${table}" ALTER COLUMN "id" SET DEFAULT sessiond_uuid_v7()`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        for (const table of TABLES) await queryRunner.query(`ALTER TABLE "${table}" ALTER COLUMN "id" SET DEFAULT gen_random_uuid()`);
        await queryRunner.query(`DROP FUNCTION sessiond_uuid_v7()`);
    }

}
