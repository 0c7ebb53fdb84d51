/**
 * sessions.last_activity_time: when a session last had activity (its creation, an UpdateSession or
 * TruncateSession, turns appended, spans recorded, an annotation added, a participant bound), set by
 * every such writer in the statement that records it. ListSessions (and a bulk delete by filter) can
 * select by it, and retention will measure idleness by it.
 *
 * Sessions that exist get the latest of their update time and of their newest turn, trace,
 * annotation and participant binding (each an UPDATE ... FROM a grouped subquery joined on the
 * distribution column: one pass per table, colocated under Citus). This leans late, the safe way for
 * retention: update_time also moved on cancel, soft delete and secret refresh; spans added to an
 * existing trace left no server time to recover. The sessions table stays locked while it runs (a pass
 * over turns included). No index: the column changes on every append, and an index on it would cost
 * every append an update of every index of sessions (no more HOT updates).
 */
import { MigrationInterface, QueryRunner } from "typeorm";

export class SessionActivity1796125000000 implements MigrationInterface {
    name = 'SessionActivity1796125000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "sessions" ADD "last_activity_time" TIMESTAMP(3) WITH TIME ZONE`);
        await queryRunner.query(`UPDATE sessions s SET last_activity_time = s.update_time`);
        for (const [table, column] of [["turns", "create_time"], ["traces", "create_time"], ["annotations", "update_time"], ["participants", "bound_time"]]) {
            await queryRunner.query(
                `UPDATE sessions s SET last_activity_time = x.last
                 FROM (SELECT namespace_id, session_id, max(${column}) AS last FROM ${table} WHERE session_id IS NOT NULL GROUP BY namespace_id, session_id) x
                 WHERE s.namespace_id = x.namespace_id AND s.id = x.session_id AND x.last > s.last_activity_time`,
            );
        }
        await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "last_activity_time" SET DEFAULT now()`);
        await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "last_activity_time" SET NOT NULL`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "last_activity_time"`);
    }

}
