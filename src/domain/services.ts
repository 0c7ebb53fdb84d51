/**
 * Every domain service, built from the stores and what they are told from outside (the integrator
 * factory, failure logs). One place to wire them, for the server and for tests alike.
 */
import type { StoreSet } from "../db/repositories/stores.js";
import { createApiKeyService, type ApiKeyService } from "./api-keys.js";
import { createAuditLog, type AuditLog } from "./audit.js";
import type { BulkDeleteStore, FailureLog } from "./bulk-delete.js";
import { createCredentials, type Credentials } from "./credentials.js";
import { createConversationService, type ConversationService } from "./conversations.js";
import { createIntegrationService, type IntegrationFailureLog, type IntegrationService } from "./integration.js";
import type { Integrator, IntegratorConfig } from "./integrator.js";
import { createMemoryService, type MemoryService } from "./memories.js";
import { createNamespaceService, type NamespaceService } from "./namespaces.js";
import { createSessionService, type SessionService } from "./sessions.js";
import { createTracingService, type TracingService } from "./tracing.js";

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
  stores: StoreSet;
  bulkStore: BulkDeleteStore;
  integratorFor(config: IntegratorConfig): Integrator;
  logBatchFailure?: FailureLog;
  logIntegrationFailure?: IntegrationFailureLog;
  logAuditFailure?: (err: unknown, dropped: number) => void;
}

/** Builds every domain service. */
export function createServices(deps: ServiceDeps): Services {
  return {
    sessions: createSessionService({ store: deps.stores.sessions, bulkStore: deps.bulkStore, logBatchFailure: deps.logBatchFailure }),
    conversations: createConversationService(deps.stores),
    integration: createIntegrationService({ stores: deps.stores, integratorFor: deps.integratorFor, logFailure: deps.logIntegrationFailure }),
    memories: createMemoryService(deps.stores),
    tracing: createTracingService(deps.stores),
    namespaces: createNamespaceService({ namespaces: deps.stores.namespaces, bulkStore: deps.bulkStore, forget: deps.stores.forgetNamespace, logBatchFailure: deps.logBatchFailure }),
    apiKeys: createApiKeyService(deps.stores),
    credentials: createCredentials(deps.stores),
    audit: createAuditLog({ store: deps.stores.audit, sessions: deps.stores.sessions, onError: deps.logAuditFailure }),
  };
}
