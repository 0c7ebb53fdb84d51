/**
 * Global setup of the "<layer>:database-url" projects: the Postgres server DATABASE_URL points at.
 * Each run makes one template and per-file databases there (named sessiond_test_*), shared by the
 * layer projects, and drops them at the end.
 */
import type { TestProject } from "vitest/node";
import { createTemplate, dropDatabases, runPrefix, serverKey, shareServer } from "./databases.js";

export default async function setup(project: TestProject) {
  const { server, release } = await shareServer(serverKey(project.name, "database-url"), async () => {
    const adminUrl = process.env.DATABASE_URL!;
    const prefix = runPrefix();
    const template = await createTemplate({ adminUrl }, prefix);
    return { server: { adminUrl, template, kind: "database-url" }, stop: () => dropDatabases({ adminUrl }, prefix) };
  });
  project.provide("database", server);
  return release;
}
