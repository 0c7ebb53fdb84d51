/**
 * Global setup of the "database-url" project: the Postgres server DATABASE_URL points at. Each run makes
 * its own template and per-file databases there (named sessiond_test_*) and drops them at the end.
 */
import type { TestProject } from "vitest/node";
import { createTemplate, dropDatabases, runPrefix } from "./databases.js";

export default async function setup(project: TestProject) {
  const adminUrl = process.env.DATABASE_URL!;
  const prefix = runPrefix();
  const template = await createTemplate(adminUrl, prefix);
  project.provide("database", { adminUrl, template, kind: "database-url" });
  return () => dropDatabases(adminUrl, prefix);
}
