import { defineConfig } from "vitest/config";

// Every test runs against the embedded Postgres; when DATABASE_URL is set (CI sets it to the machine's
// Postgres 15), every test runs a second time against that server as well. The fault suite
// (test/faults: real processes killed, Postgres stopped, fuzzed bodies) runs once, on the embedded
// Postgres, after the other projects: `npm run test:faults` runs it alone.
const projects = [
  { extends: true as const, test: { name: "embedded-pg", exclude: ["test/faults/**"], globalSetup: ["test/setup/global-embedded.ts"] } },
];
if (process.env.DATABASE_URL) {
  projects.push({ extends: true as const, test: { name: "database-url", exclude: ["test/faults/**"], globalSetup: ["test/setup/global-database-url.ts"] } });
}
projects.push({
  extends: true as const,
  test: {
    name: "faults",
    include: ["test/faults/**/*.test.ts"],
    globalSetup: ["test/setup/global-embedded.ts"],
    testTimeout: 120_000,
    // One fault file at a time: each drives real processes hard, and must not be disturbed by another.
    fileParallelism: false,
    sequence: { groupOrder: 1 },
  } as any,
});

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects,
  },
});
