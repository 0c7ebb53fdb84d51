/**
 * Every domain service, built from the stores and what they are told from outside (the integrator
 * factory, failure logs). One place to wire them, for the server and for tests alike.
 */
import { createApiKeyService, type ApiKeyService } from "./api-key-service.js";
import { createAuditLog, type AuditLog, type AuditLogger } from "./audit-log.js";
import { createAdmission, type Admission, type BulkLimits } from "./bulk-admission.js";
import type { FailureLog } from "./bulk-delete.js";
import type { BulkDeleteStore } from "./bulk-delete-store.js";
import { createCredentials, type Credentials } from "./credentials.js";
import { createConversationService, type ConversationService } from "./conversation-service.js";
import { createIntegrationService, type IntegrationFailureLog, type IntegrationService } from "./integration-service.js";
import type { Integrator, IntegratorConfig } from "./integrator-contract.js";
import { createMemoryService, type MemoryService } from "./memory-service.js";
import { createNamespaceService, type NamespaceService } from "./namespace-service.js";
import { createSessionService, type SessionService } from "./session-service.js";
import type { Stores } from "./stores.js";
import { createTracingService, type TracingService } from "./trace-service.js";

/** The domain services. */
export interface Services {
  sessions: SessionService;
  conversations: ConversationService;
  integration: IntegrationService;
  memories: MemoryService;
  tracing: TracingService;
  namespaces: NamespaceService;
  apiKeys: ApiKeyService;
  credentials: Credentials;
  audit: AuditLog;
}

/** What the services are built from. */
export interface ServiceDeps {
  stores: Stores;
  /**
   * How many bulk deletes and namespace deletions run at once, and how many may queue: one set of slots
   * shared by both, so long work keeps to a bounded share of the pool (default DEFAULT_BULK_LIMITS).
   */
  bulkLimits?: BulkLimits;
  /** The slots themselves, when the caller wants to watch them (tests); made from bulkLimits otherwise. */
  admission?: Admission;
  integratorFor(config: IntegratorConfig): Integrator;
  logBatchFailure?: FailureLog;
  logIntegrationFailure?: IntegrationFailureLog;
  /** Where the audit log reports falling behind, catching up and lost events. */
  logAudit?: AuditLogger;
}

/** Builds every domain service. */
export function createServices(deps: ServiceDeps): Services {
  const bulkStore: BulkDeleteStore = { ...deps.stores.bulkDeletes, admission: deps.admission ?? createAdmission(deps.bulkLimits) };
  return {
    sessions: createSessionService({ stores: deps.stores, bulkStore, logBatchFailure: deps.logBatchFailure }),
    conversations: createConversationService(deps.stores),
    integration: createIntegrationService({ stores: deps.stores, integratorFor: deps.integratorFor, logFailure: deps.logIntegrationFailure }),
    memories: createMemoryService(deps.stores),
    tracing: createTracingService(deps.stores),
    namespaces: createNamespaceService({ namespaces: deps.stores.namespaces, bulkStore, forget: deps.stores.forgetNamespace, logBatchFailure: deps.logBatchFailure }),
    apiKeys: createApiKeyService(deps.stores),
    credentials: createCredentials(deps.stores),
    audit: createAuditLog({ store: deps.stores.audit, sessions: deps.stores.sessions, log: deps.logAudit }),
  };
}
