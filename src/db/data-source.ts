import { DataSource } from "typeorm";
import { entities } from "./entities/index.js";
import { migrations } from "./migrations/index.js";

/** Options for the database connection. */
export interface DataSourceOptions {
  /** postgres:// URL. */
  url: string;
  /** Pool size (node-postgres `max`). */
  poolSize?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
}

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
    extra: { max: options.poolSize ?? 10 },
  });
}
