/**
 * Global setup of the "<layer>:citus" projects: the Citus cluster SESSIOND_TEST_CITUS_URL's coordinator
 * belongs to (.ci/run starts one with ../shared/citus/cluster.sh: a coordinator and two workers on
 * localhost). Its workers are read from the coordinator's pg_dist_node. The run's template is made on
 * every node and distributed by the migrations (src/db/distribution.ts); each test file gets a clone
 * on every node (see createTemplate), dropped at the end. test/db/distribution.test.ts checks the
 * layout (shards on both workers) and test/db/citus-routing.test.ts that the hot paths hit one shard.
 */
import type { TestProject } from "vitest/node";
import { citusCluster, createTemplate, dropDatabases, runPrefix, serverKey, shareServer } from "./databases.js";

/** The coordinator's admin URL (a database with the citus extension and the workers added). */
export const CITUS_URL_VARIABLE = "SESSIOND_TEST_CITUS_URL";

export default async function setup(project: TestProject) {
  const { server, release } = await shareServer(serverKey(project.name, "citus"), async () => {
    const adminUrl = process.env[CITUS_URL_VARIABLE];
    if (!adminUrl) throw new Error(`${CITUS_URL_VARIABLE} is not set`);
    const nodes = await citusCluster(adminUrl);
    const { workerUrls } = nodes;
    if (workerUrls.length < 2) throw new Error(`${CITUS_URL_VARIABLE}: the coordinator lists ${workerUrls.length} worker(s); the Citus run needs two (../shared/citus/cluster.sh)`);
    const prefix = runPrefix();
    try {
      const template = await createTemplate(nodes, prefix);
      return { server: { adminUrl, template, kind: "citus" as const, workerUrls }, stop: () => dropDatabases(nodes, prefix) };
    } catch (err) {
      await dropDatabases(nodes, prefix);
      throw err;
    }
  });
  project.provide("database", server);
  return release;
}
