/**
 * Every domain service, built from the stores and what they are told from outside (the integrator
 * factory, failure logs). One place to wire them, for the server and for tests alike.
 */
import type { StoreSet } from "../db/repositories/stores.js";
import type { BulkDeleteStore, FailureLog } from "./bulk-delete.js";
import { createConversationService, type ConversationService } from "./conversations.js";
import { createIntegrationService, type IntegrationFailureLog, type IntegrationService } from "./integration.js";
import type { Integrator, IntegratorConfig } from "./integrator.js";
import { createMemoryService, type MemoryService } from "./memories.js";
import { createSessionService, type SessionService } from "./sessions.js";
import { createTracingService, type TracingService } from "./tracing.js";

/** The domain services. */
export interface Services {
  sessions: SessionService;
  conversations: ConversationService;
  integration: IntegrationService;
  memories: MemoryService;
  tracing: TracingService;
}

/** What the services are built from. */
export interface ServiceDeps {
  stores: StoreSet;
  bulkStore: BulkDeleteStore;
  integratorFor(config: IntegratorConfig): Integrator;
  logBatchFailure?: FailureLog;
  logIntegrationFailure?: IntegrationFailureLog;
}

/** Builds every domain service. */
export function createServices(deps: ServiceDeps): Services {
  return {
    sessions: createSessionService({ store: deps.stores.sessions, bulkStore: deps.bulkStore, logBatchFailure: deps.logBatchFailure }),
    conversations: createConversationService(deps.stores),
    integration: createIntegrationService({ stores: deps.stores, integratorFor: deps.integratorFor, logFailure: deps.logIntegrationFailure }),
    memories: createMemoryService(deps.stores),
    tracing: createTracingService(deps.stores),
  };
}
