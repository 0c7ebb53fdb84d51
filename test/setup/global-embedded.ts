/**
 * Global setup of the "embedded-pg" project: a throwaway embedded Postgres for the whole run, the same
 * one `npm start` uses when DATABASE_URL is unset (fsync off: test data is disposable).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/db/embedded.js";
import { createTemplate, runPrefix } from "./databases.js";

export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-test-pg-"));
  chmodSync(dir, 0o755); // Postgres runs as its own OS user when we are root
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), ephemeral: true });
  const template = await createTemplate(pg.adminUrl, runPrefix());
  project.provide("database", { adminUrl: pg.adminUrl, template, kind: "embedded" });
  return async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
