/**
 * Every domain service, built from the stores and what they are told from outside (the integrator
 * factory, failure logs). One place to wire them, for the server and for tests alike.
 */
import { createApiKeyService, type ApiKeyService } from "./api-key-service.js";
import { createAuditLog, type AuditLog, type AuditLogger } from "./audit-log.js";
import type { FailureLog } from "./bulk-delete.js";
import { createCredentials, type Credentials } from "./credentials.js";
import { createCompactionService, type CompactionService } from "./compaction.js";
import { createConversationService, type ConversationService } from "./conversation-service.js";
import { createIntegrationService, type IntegrationFailureLog, type IntegrationService } from "./integration-service.js";
import type { Integrator, IntegratorConfig } from "./integrator-contract.js";
import { createMemoryService, type MemoryService } from "./memory-service.js";
import { newUuid } from "./ids.js";
import { createNamespaceService, type NamespaceService } from "./namespace-service.js";
import { createOperations, type OperationDeps, type OperationLimits, type Operations } from "./operations.js";
import { createRetentionService, type RetentionService } from "./retention.js";
import { createSweeper, type Sweeper } from "./sweeper.js";
import { createSessionExport, type ImportFailureLog, type SessionExport } from "./session-export.js";
import { createSessionService, type SessionService } from "./session-service.js";
import type { Stores } from "./stores.js";
import { createTurnSearch, type TurnSearch } from "./turn-search.js";
import { createTracingService, type TracingService } from "./trace-service.js";
import { createWatches, DEFAULT_WATCH_LIMITS, type WatchLimits, type Watches } from "./watch.js";

/** The domain services. */
export interface Services {
  sessions: SessionService;
  conversations: ConversationService;
  integration: IntegrationService;
  compaction: CompactionService;
  memories: MemoryService;
  tracing: TracingService;
  namespaces: NamespaceService;
  apiKeys: ApiKeyService;
  credentials: Credentials;
  audit: AuditLog;
  operations: Operations;
  retention: RetentionService;
  /** The retention sweeper of this process (started by the server). */
  sweeper: Sweeper;
  /** WatchSession and WatchSessions of this process. */
  watches: Watches;
  /** ExportSessions and ImportSessions. */
  exports: SessionExport;
  /** SearchTurns. */
  search: TurnSearch;
}

/** What the services are built from. */
export interface ServiceDeps {
  stores: Stores;
  /**
   * How many operations (bulk deletes and namespace deletions) this process runs at once, how many may
   * queue per namespace, and the lease timings (default DEFAULT_OPERATION_LIMITS).
   */
  operationLimits?: Partial<OperationLimits>;
  /** This process's name in operation leases; a fresh one when unset. */
  owner?: string;
  /** Where operations report failures and takeovers. */
  logOperation?: OperationDeps["log"];
  /** How often the sweeper looks for data past retention, in ms (default 60 s; 0: never). */
  sweepIntervalMs?: number;
  /** Where a failed sweeper pass is reported. */
  logSweep?: (err: unknown) => void;
  integratorFor(config: IntegratorConfig): Integrator;
  logBatchFailure?: FailureLog;
  /** Where an import record that could not be written for an unexpected reason is reported. */
  logImportFailure?: ImportFailureLog;
  logIntegrationFailure?: IntegrationFailureLog;
  /** Where the audit log reports falling behind, catching up and lost events. */
  logAudit?: AuditLogger;
  /** Limits and timings of the watches (default DEFAULT_WATCH_LIMITS). */
  watchLimits?: Partial<WatchLimits>;
  /** Where a failed read of a watched session is reported. */
  logWatch?: (err: unknown, context: string) => void;
}

/** Builds every domain service. */
export function createServices(deps: ServiceDeps): Services {
  const audit = createAuditLog({ store: deps.stores.audit, sessions: deps.stores.sessions, log: deps.logAudit });
  const watches = createWatches({ store: deps.stores.watch, sessions: deps.stores.sessions, limits: deps.watchLimits, log: deps.logWatch });
  const changed = watches.changed;
  const operations = createOperations({
    store: deps.stores.operations,
    bulk: deps.stores.bulkDeletes,
    namespaces: deps.stores.namespaces,
    forget: deps.stores.forgetNamespace,
    owner: deps.owner ?? `process-${newUuid()}`,
    limits: deps.operationLimits,
    logBatchFailure: deps.logBatchFailure,
    log: deps.logOperation,
    retention: { policies: deps.stores.policies, sweeps: deps.stores.sweeps },
    changed,
    audit: (e) =>
      audit.record({ time: new Date(), namespace: e.namespace, actor: "system:retention", method: "sessiond.v1.OperationService/RetentionSweep", itemCount: e.itemCount, code: "ok", requestId: e.operationId }),
  });
  const integration = createIntegrationService({ stores: deps.stores, integratorFor: deps.integratorFor, logFailure: deps.logIntegrationFailure });
  return {
    sessions: createSessionService({ stores: deps.stores, operations, changed }),
    conversations: createConversationService(deps.stores, changed),
    integration,
    compaction: createCompactionService({ stores: deps.stores, integration, integratorFor: deps.integratorFor, changed }),
    memories: createMemoryService(deps.stores),
    tracing: createTracingService(deps.stores),
    namespaces: createNamespaceService({ namespaces: deps.stores.namespaces, operations }),
    apiKeys: createApiKeyService(deps.stores),
    credentials: createCredentials(deps.stores),
    audit,
    operations,
    retention: createRetentionService({ store: deps.stores.retention, policies: deps.stores.policies, namespaceId: deps.stores.sessions.namespaceId }),
    sweeper: createSweeper({
      namespaces: deps.stores.namespaces,
      retention: deps.stores.retention,
      policies: deps.stores.policies,
      sweeps: deps.stores.sweeps,
      operations,
      intervalMs: deps.sweepIntervalMs ?? 60_000,
      log: deps.logSweep,
      changes: { prune: (before) => deps.stores.watch.prune(before), keepMs: deps.watchLimits?.retentionMs ?? DEFAULT_WATCH_LIMITS.retentionMs },
    }),
    watches,
    exports: createSessionExport({ store: deps.stores.exports, bulk: deps.stores.bulkDeletes, log: deps.logImportFailure, changed }),
    search: createTurnSearch({ search: deps.stores.search, sessions: deps.stores.sessions }),
  };
}
