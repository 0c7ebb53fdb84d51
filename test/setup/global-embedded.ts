/**
 * Global setup of the "<layer>:embedded-pg" projects and of "faults": a throwaway embedded Postgres,
 * the same one `npm start` uses when DATABASE_URL is unset (fsync off: test data is disposable), with
 * the migrated template. The layer projects (db, rpc, e2e) share one server and one template for the
 * whole run; the fault suite gets its own.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/db/embedded.js";
import { createTemplate, runPrefix, serverKey, shareServer } from "./databases.js";

export default async function setup(project: TestProject) {
  const { server, release } = await shareServer(serverKey(project.name, "embedded-pg"), async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sessiond-test-pg-"));
    chmodSync(dir, 0o755); // Postgres runs as its own OS user when we are root
    const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), ephemeral: true });
    const template = await createTemplate({ adminUrl: pg.adminUrl }, runPrefix());
    return {
      server: { adminUrl: pg.adminUrl, template, kind: "embedded" },
      async stop() {
        await pg.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
  project.provide("database", server);
  return release;
}
