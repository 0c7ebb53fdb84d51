import { DataSource } from "typeorm";

/** The TypeORM DataSource, as app.ts and the CLI hold it (they reach TypeORM only through db/). */
export type { DataSource };
import { entities } from "./entities/index.js";
import { migrations } from "./migrations/index.js";

/** Options for the database connection. */
export interface DataSourceOptions {
  /** postgres:// URL. */
  url: string;
  /** Pool size (node-postgres `max`). */
  poolSize?: number;
  /**
   * How long a query waits for a pooled connection before failing (node-postgres
   * `connectionTimeoutMillis`; default 3000). Without a bound a call waits forever when the pool is
   * exhausted; with it, the call fails with "timeout exceeded when trying to connect", which db/errors.ts
   * translates into StoreBusyError (`unavailable` with a retry hint).
   */
  connectTimeoutMs?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
}

/** The bound on waiting for a pooled connection when the caller names none (SESSIOND_DB_CONNECT_TIMEOUT_MS's default). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

/**
 * The one TypeORM DataSource factory. The schema is changed only by migrations (never `synchronize`).
 */
export function createDataSource(options: DataSourceOptions): DataSource {
  return new DataSource({
    type: "postgres",
    url: options.url,
    entities,
    migrations,
    synchronize: false,
    migrationsRun: false,
    migrationsTableName: "schema_migrations",
    applicationName: options.applicationName ?? "sessiond",
    installExtensions: false,
    uuidExtension: "pgcrypto",
    extra: { max: options.poolSize ?? 10, connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS },
  });
}
