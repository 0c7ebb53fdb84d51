import type pg from "pg";
import { DataSource } from "typeorm";

/** The TypeORM DataSource, as app.ts and the CLI hold it (they reach TypeORM only through db/). */
export type { DataSource };
import { entities } from "./entities/index.js";
import { migrations } from "./migrations/index.js";
import { sessiondTypes } from "./pg-types.js";
import { explainConnectError, postgresTls, takeParameters, type PostgresTls } from "./postgres-tls.js";

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

/**
 * The URL parameter that says a pooler in transaction mode sits between sessiond and Postgres
 * (`?pgbouncer=true`, the name Prisma uses for the same thing). sessiond then sends unnamed statements
 * only. The parameter is sessiond's own: it is taken off the URL before the driver sees it.
 *
 * What sessiond keeps on a connection outside a transaction, and so what a transaction-mode pooler
 * (which hands each transaction any server connection) could break:
 * - named prepared statements: the hot statements (AppendTurns', the session lookup, the ListTurns page;
 *   `prepare` in sql.ts) are prepared once per connection, then only bound and run. Through the pooler the next call may reach a server connection
 *   that never saw it (`prepared statement "sessiond_..." does not exist`): `pgbouncer=true` turns this off.
 * - sessiond_uuid_v7()'s last value, a session setting (`set_config('sessiond.uuid_v7_last', ..., false)`,
 *   migration TimeOrderedIds). Through the pooler it belongs to the server connection, not to ours, and
 *   that is what matters: it keeps the ids one backend makes increasing even when its clock stands still
 *   or steps back; ids made by different backends were ordered by the clock anyway, as they are between
 *   the connections of sessiond's own pool. A pooler that resets connections (DISCARD ALL) only drops the
 *   value, and the clock orders the next id. Still correct.
 * - nothing else: the advisory lock of the client-secret rate limit is transaction-scoped
 *   (pg_advisory_xact_lock), and there is no SET, LISTEN, temporary table, cursor WITH HOLD or session
 *   lock; TypeORM's start (version, current database and schema) and migrations (one transaction each)
 *   only read or run in transactions; the startup parameters node-postgres sends (user, database,
 *   client_encoding, application_name) are all accepted by PgBouncer 1.18.
 */
export const POOLER_PARAMETER = "pgbouncer";

/**
 * Splits sessiond's `pgbouncer` parameter off `url`: the URL the driver gets, and whether named prepared
 * statements may be used (not when `pgbouncer=true`). Throws when the value is not `true` or `false`.
 */
export function poolerMode(url: string): { url: string; namedStatements: boolean } {
  // Only our parameter is removed; the others stay byte for byte.
  const { url: rest, values } = takeParameters(url, [POOLER_PARAMETER]);
  const value = values.get(POOLER_PARAMETER);
  if (value === undefined) return { url, namedStatements: true };
  if (value !== "true" && value !== "false") throw new Error(`DATABASE_URL: ${POOLER_PARAMETER} must be true or false, got "${value}"`);
  return { url: rest, namedStatements: value === "false" };
}

// The DataSources that must not use named statements; sql.ts asks namedStatements().
const UNNAMED_ONLY = new WeakSet<DataSource>();

/** Whether `dataSource` may run named (server-side prepared) statements outside transactions. */
export function namedStatements(dataSource: DataSource): boolean {
  return !UNNAMED_ONLY.has(dataSource);
}

/**
 * The node-postgres pool under `dataSource` (TypeORM's postgres driver keeps it as `master`), or
 * undefined before the DataSource is initialized. The one place that reaches into the driver for it.
 */
export function poolOf(dataSource: DataSource): pg.Pool | undefined {
  return (dataSource.driver as unknown as { master?: pg.Pool }).master;
}

/** The bound on waiting for a pooled connection when the caller names none (SESSIOND_DB_CONNECT_TIMEOUT_MS's default). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

/**
 * A DataSource whose failure to connect at start names what went wrong with TLS, if that was it
 * (postgres-tls.ts explainConnectError): Node's own words ("unable to verify the first certificate")
 * say neither which server nor which CA file.
 */
class SessiondDataSource extends DataSource {
  constructor(
    options: ConstructorParameters<typeof DataSource>[0],
    private readonly connection: { url: string; tls: PostgresTls },
  ) {
    super(options);
  }

  override async initialize(): Promise<this> {
    try {
      return await super.initialize();
    } catch (err) {
      throw explainConnectError(err, this.connection.url, this.connection.tls);
    }
  }
}

/**
 * The one TypeORM DataSource factory. The schema is changed only by migrations (never `synchronize`).
 * A `pgbouncer=true` parameter on the URL (see POOLER_PARAMETER) makes it use unnamed statements only.
 * The URL's sslmode, sslrootcert, sslcert and sslkey are applied with libpq's meaning (postgres-tls.ts);
 * throws an Error naming DATABASE_URL on a bad value or an unreadable certificate file.
 */
export function createDataSource(options: DataSourceOptions): DataSource {
  const { url: unpooled, namedStatements } = poolerMode(options.url);
  const tls = postgresTls(unpooled);
  const dataSource = new SessiondDataSource(
    {
      type: "postgres",
      url: tls.url,
      // Set even when false: node-postgres would otherwise read PGSSLMODE with its own meaning (the URL
      // is the one place for TLS settings).
      ssl: tls.ssl,
      entities,
      migrations,
      synchronize: false,
      migrationsRun: false,
      migrationsTableName: "schema_migrations",
      // Where TypeORM keeps what information_schema does not say as written (a generated column's expression).
      metadataTableName: "schema_metadata",
      applicationName: options.applicationName ?? "sessiond",
      installExtensions: false,
      uuidExtension: "pgcrypto",
      extra: {
        max: options.poolSize ?? 10,
        // node-postgres's parsers, with a faster timestamptz (pg-types.ts).
        types: sessiondTypes,
        connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        ...(tls.sslnegotiation ? { sslnegotiation: tls.sslnegotiation } : {}),
      },
    },
    { url: tls.url, tls },
  );
  if (!namedStatements) UNNAMED_ONLY.add(dataSource);
  return dataSource;
}
