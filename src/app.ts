/**
 * Wires the application: database (embedded or DATABASE_URL), migrations, services and the server.
 * main.ts runs it as a process; tests and benchmarks run it in-process.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import type { DataSource } from "./db/data-source.js";
import type { Config } from "./config.js";
import { createDataSource, poolerMode, poolOf } from "./db/data-source.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./db/embedded.js";
import { migrate } from "./db/distribution.js";
import { createStores } from "./db/repositories/stores.js";
import { createServices, type ServiceDeps, type Services } from "./domain/services.js";
import type { Stores } from "./domain/stores.js";
import { createIntegratorFactory } from "./handlers/integrators.js";
import type { Logger } from "./logger.js";
import { createHttpRoutes, createInterceptors, createRequestGate, createRoutes, healthServiceNames } from "./routes.js";
import { build } from "./server.js";
import { HealthStatus } from "./handlers/health.js";
import { Readiness } from "./handlers/readiness.js";
import { createDatabaseProbe } from "./db/probe.js";
import { createAuditing } from "./handlers/audit.js";
import { createAccess } from "./handlers/auth.js";
import { createCertificateIdentities } from "./domain/certificate-identities.js";
import { createMetrics, registerAuditMetrics, registerOperationMetrics, registerWatchMetrics } from "./handlers/metrics.js";
import { startChangeSignals } from "./db/change-signals.js";
import { createRpcTracing } from "./handlers/tracing.js";
import { traceQueries } from "./telemetry/db.js";
import { startTracing } from "./telemetry/provider.js";
import { encodeGlobalId } from "./domain/ids.js";
import type { RetentionPolicy } from "./domain/retention.js";

/** A running sessiond. */
export interface App {
  /** Base URL of the server, e.g. http://127.0.0.1:8080. */
  url: string;
  port: number;
  dataSource: DataSource;
  /**
   * The secret of the ADMIN key made at the first start of an embedded-database install without
   * SESSIOND_BOOTSTRAP_ADMIN_KEY; set only on that start, for the process to show once.
   */
  firstStartKey?: string;
  /** Graceful stop: in-flight calls finish, streams end with `unavailable`, then the database closes. */
  stop(): Promise<void>;
}

/** What {@link createServicesOn} is told besides the database: limits, failure logs, the integrators. */
export type ServiceOptions = Omit<ServiceDeps, "stores" | "integratorFor"> & Partial<Pick<ServiceDeps, "integratorFor">> & { retentionDefault?: RetentionPolicy };

/**
 * The stores over `dataSource` and every domain service over them: the wiring the server and the tests
 * share. The integrators default to the ones the server offers (RULES and REMOTE).
 */
export function createServicesOn(dataSource: DataSource, options: ServiceOptions = {}): { stores: Stores; services: Services } {
  const stores = createStores(dataSource, { retentionDefault: options.retentionDefault });
  const services = createServices({ ...options, stores, integratorFor: options.integratorFor ?? createIntegratorFactory() });
  return { stores, services };
}

/** Opens the database (starting an embedded Postgres when no URL is configured) and applies pending migrations. */
export async function openDatabase(config: Pick<Config, "databaseUrl" | "dataDir" | "dbPoolSize"> & Partial<Pick<Config, "dbConnectTimeoutMs">>, logger: Logger): Promise<{ dataSource: DataSource; embedded?: EmbeddedPostgres }> {
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  if (!url) {
    const dataDir = path.resolve(config.dataDir, "pg");
    embedded = await startEmbeddedPostgres({ dataDir, onLog: (line) => logger.debug({ component: "postgres" }, line) });
    url = embedded.url;
    logger.info({ data_dir: dataDir, port: embedded.port }, "embedded Postgres started (set DATABASE_URL to use your own)");
  }
  const dataSource = createDataSource({ url, poolSize: config.dbPoolSize, connectTimeoutMs: config.dbConnectTimeoutMs });
  try {
    await dataSource.initialize();
    const { applied, distribution } = await migrate(dataSource);
    if (applied.length) logger.info({ migrations: applied }, "migrations applied");
    if (distribution.citus) {
      const made = [...distribution.referenced.map((t) => `${t} (reference)`), ...distribution.distributed, ...distribution.functions.map((f) => `${f}()`)];
      logger.info(
        { workers: distribution.workers, ...(made.length ? { laid_out: made } : {}) },
        made.length ? "Citus: distributed the tables by namespace_id (namespaces and api_keys as reference tables)" : "Citus: the tables are distributed by namespace_id",
      );
    }
  } catch (err) {
    if (dataSource.isInitialized) await dataSource.destroy();
    await embedded?.stop();
    throw err;
  }
  return { dataSource, embedded };
}

/** Starts sessiond with `config`: database, migrations, then the server on config.port. */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  // sessiond's own traces (telemetry/), when an OTLP endpoint is configured; nothing is installed otherwise.
  const telemetry = config.tracing ? await startTracing(config.tracing, { logger }) : undefined;
  const { dataSource, embedded } = await openDatabase(config, logger);
  if (telemetry) traceQueries(poolOf(dataSource)!, telemetry);
  const tracing = telemetry && createRpcTracing(telemetry);
  // "" and every service name, NOT_SERVING until the first readiness probe after listening.
  const health = new HealthStatus(Object.fromEntries(["", ...healthServiceNames].map((name) => [name, "NOT_SERVING" as const])));
  const { stores, services } = createServicesOn(dataSource, {
    operationLimits: { maxRunning: config.maxBulkOperations, maxQueued: config.bulkQueueSize, leaseMs: config.operationLeaseMs, pollMs: config.operationPollMs },
    owner: `${os.hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`,
    logBatchFailure: (err, identifiers) => logger.error({ err, identifiers }, "bulk delete batch failed"),
    logImportFailure: (err, sessionId) => logger.error({ err, session_id: sessionId }, "import: a record could not be written"),
    logOperation: (level, message, fields) => logger[level](fields, message),
    retentionDefault: config.retentionDefault,
    sweepIntervalMs: config.sweepIntervalMs,
    logSweep: (err) => logger.warn({ err }, "retention sweeper pass failed (the next one tries again)"),
    logIntegrationFailure: (err, context) => logger.warn({ err, ...context }, "integrator failed"),
    watchLimits: config.watch,
    logWatch: (err, context) => logger.warn({ err }, `watch: failed ${context} (read again at the next signal or poll)`),
    logAudit: logger.child({ component: "audit" }),
    integratorFor: createIntegratorFactory({ interceptors: tracing ? [tracing.clientInterceptor] : [] }),
  });
  let firstStartKey: string | undefined;
  try {
    if (config.bootstrapAdminKey) {
      const key = await services.apiKeys.ensureBootstrap(config.bootstrapAdminKey);
      logger.info({ key_id: encodeGlobalId("ApiKey", key.uuid) }, "bootstrap admin key ready (SESSIOND_BOOTSTRAP_ADMIN_KEY)");
    } else if (embedded) {
      const first = await services.apiKeys.createFirstKey();
      if (first) {
        firstStartKey = first.secret;
        logger.info({ key_id: encodeGlobalId("ApiKey", first.key.uuid) }, "first start: created an ADMIN key for all namespaces (its secret is shown once, outside the log)");
      }
    } else if (!(await stores.keys.any())) {
      logger.warn("no API key exists yet, so every call will be refused: set SESSIOND_BOOTSTRAP_ADMIN_KEY, or run `npm run keys -- create --role admin` with the same DATABASE_URL");
    }
  } catch (err) {
    await dataSource.destroy();
    await embedded?.stop();
    throw err;
  }
  const access = createAccess({ credentials: services.credentials, certificates: createCertificateIdentities(config.clientIdentities), logger });
  const auditing = createAuditing(services.audit);
  // One registry per app (tests run several apps in one process); the pool gauges read the pg.Pool.
  const metrics = createMetrics({ pool: poolOf(dataSource)! });
  // The audit queue depth and dropped events, read on scrape.
  registerAuditMetrics(metrics.registry, services.audit.stats);
  registerOperationMetrics(metrics.registry, services.operations, services.sweeper);
  // One LISTEN connection per process carries watch signals between processes (db/change-signals.ts).
  // Not through PgBouncer in transaction mode, which does not keep a LISTEN: there it needs its own URL.
  const behindPooler = !config.listenDatabaseUrl && poolerMode(config.databaseUrl ?? "").namedStatements === false;
  if (behindPooler) {
    logger.warn(
      { poll_ms: config.watch.pollMs },
      "DATABASE_URL goes through PgBouncer (pgbouncer=true): set SESSIOND_LISTEN_DATABASE_URL to reach Postgres directly for watch signals between processes; until then, watchers see other processes' changes by polling",
    );
  }
  const signals = startChangeSignals({
    url: behindPooler ? undefined : (config.listenDatabaseUrl ?? config.databaseUrl ?? embedded!.url),
    onSignals: (s) => services.watches.received(s),
    onReconnect: () => services.watches.resync(),
    log: (level, message, fields) => logger[level](fields ?? {}, message),
  });
  services.watches.connect((s) => signals.send(s));
  registerWatchMetrics(metrics.registry, services.watches, signals);
  // Readiness = the database answers within 1 s through the pool (db/probe.ts); drives /readyz and gRPC health.
  const readiness = new Readiness({
    health,
    probe: createDatabaseProbe(dataSource, { onFailure: (err) => logger.debug({ err }, "readiness probe failed") }),
    onChange: ({ ready, reason }) => (ready ? logger.info("ready: the database answers") : logger.warn({ reason }, "not ready")),
  });
  let server: ReturnType<typeof build>;
  let address: { port: number; url: string };
  try {
    // build() reads the TLS files: a missing or unusable one fails the start here, naming the setting.
    server = build({
      config,
      logger,
      readiness: () => readiness.check(),
      onRefused: metrics.refused,
      routes: createRoutes({ services, health, readiness }),
      interceptors: createInterceptors(logger, { access, auditing, metrics, tracing }),
      requestGate: createRequestGate({ access, metrics, tracing }),
      http: createHttpRoutes({ services, health }, { readMaxBytes: config.readMaxBytes, logger, access, auditing, metrics }),
    });
    address = await server.listen();
  } catch (err) {
    readiness.stop();
    await services.watches.stop(0);
    await signals.close();
    await services.operations.stop();
    await services.audit.close();
    await telemetry?.shutdown();
    await dataSource.destroy();
    await embedded?.stop();
    throw err;
  }
  await readiness.check();
  // Queued operations, and those of processes that died, are taken up from now on; the sweeper looks
  // for data past retention.
  services.operations.start();
  services.sweeper.start();
  return {
    ...address,
    dataSource,
    firstStartKey,
    async stop() {
      readiness.stop();
      health.setAll("NOT_SERVING");
      // Before the server ends the calls: a stream ended by shutdown must not cancel its operation,
      // which is given back (queued) for another process to go on with.
      const operationsStopped = Promise.all([services.sweeper.stop(), services.operations.stop()]);
      // Watches end with unavailable and where to resume, before the shutdown's abort would end them
      // without it.
      await services.watches.stop();
      await server.shutdown();
      await operationsStopped;
      await signals.close();
      await services.audit.close();
      await telemetry?.shutdown();
      await dataSource.destroy();
      await embedded?.stop();
    },
  };
}
