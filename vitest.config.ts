import { defineConfig } from "vitest/config";

// Every test runs against the embedded Postgres; when DATABASE_URL is set (CI sets it to the machine's
// Postgres 15), every test runs a second time against that server as well.
const projects = [
  { extends: true as const, test: { name: "embedded-pg", globalSetup: ["test/setup/global-embedded.ts"] } },
];
if (process.env.DATABASE_URL) {
  projects.push({ extends: true as const, test: { name: "database-url", globalSetup: ["test/setup/global-database-url.ts"] } });
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects,
  },
});
