/**
 * Watching what node-postgres sends: while `work` runs, `onQuery` sees every query call of a pg.Client
 * connected to `database` (the services' pool and transactions alike, whichever query form they use),
 * before it is sent. Client#query is restored afterwards. Used by the plan and Citus routing tests.
 */
import pg from "pg";

export async function watchingQueries(database: string, onQuery: (client: pg.Client, config: unknown, values: unknown) => void, work: () => Promise<unknown>): Promise<void> {
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, values?: unknown, ...rest: unknown[]) {
    if (this.database === database) onQuery(this, config, values);
    return (original as (...args: unknown[]) => unknown).call(this, config, values, ...rest);
  } as typeof original;
  try {
    await work();
  } finally {
    pg.Client.prototype.query = original;
  }
}
