/**
 * Full-text search over turns (SessionService.SearchTurns): a GIN index over the turns' text search
 * vector, as an expression index (no stored column: the vector costs no table space, and the search
 * recomputes it only for the bounded set of candidates it ranks).
 *
 * Text search configuration 'english', deliberately: its Snowball stemmer makes a search for "deploy"
 * find "deployed" and "deploying", which is what people expect of a search box, and its stop words
 * ("the", "and", "is", ...) stay out of the index, which keeps it smaller and cheaper to maintain on
 * every AppendTurns and keeps a query for "the" from matching every turn. Text in other languages is
 * still found by its words (both sides are stemmed alike), only without that language's stemming.
 * 'simple' would index every word as it is (stop words too): exact, but without word forms, and with
 * posting lists of the most common words as long as the table.
 *
 * The search (src/db/repositories/search-store.ts) must use the very expression to_tsvector('english',
 * content) for the planner to use the index. Under Citus the index is created on the distributed table
 * (and its shards). On a large existing table this statement holds a write lock on turns while it
 * builds: build it beforehand with CREATE INDEX CONCURRENTLY under the same name to avoid that.
 */
import { MigrationInterface, QueryRunner } from "typeorm";

export class TurnSearch1796180000000 implements MigrationInterface {
    name = 'TurnSearch1796180000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE INDEX IF NOT EXISTS "ix_turns_search" ON "turns" USING gin (to_tsvector('english'::regconfig, "content"))`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX IF EXISTS "ix_turns_search"`);
    }

}
