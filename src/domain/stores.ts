/**
 * Every store the domain services work with, as one set: declared by the domain, built by db/
 * (createStores) and handed to the services by app.ts.
 */
import type { WatchStore } from "./watch-store.js";
import type { SearchStore } from "./search-store.js";
import type { AuditStore } from "./audit-log.js";
import type { BulkDeleteStore } from "./bulk-delete-store.js";
import type { ClientSecretStore } from "./client-secret-store.js";
import type { ConversationStore } from "./conversation-store.js";
import type { KeyStore } from "./key-store.js";
import type { MemoryStore } from "./memory-store.js";
import type { NamespaceStore } from "./namespace-store.js";
import type { OperationStore } from "./operation-store.js";
import type { RetentionPolicies, RetentionStore } from "./retention.js";
import type { SweepStore } from "./sweep-store.js";
import type { SessionExportStore } from "./session-export-store.js";
import type { SessionStore } from "./session-store.js";
import type { TraceStore } from "./trace-store.js";

/**
 * The stores, bound to the pool or to one transaction (so that a session row lock taken through one
 * store covers the writes made through another).
 */
export interface Stores {
  sessions: SessionStore;
  conversations: ConversationStore;
  memories: MemoryStore;
  traces: TraceStore;
  keys: KeyStore;
  clientSecrets: ClientSecretStore;
  namespaces: NamespaceStore;
  audit: AuditStore;
  /** Always on the pool, even within a transaction: each of its batches is a transaction of its own. */
  bulkDeletes: BulkDeleteStore;
  /** Always on the pool: each batch it commits is a transaction of its own. */
  operations: OperationStore;
  /** Retention policies as stored, and the policies in force through the process's cache. */
  retention: RetentionStore;
  policies: RetentionPolicies;
  /** What the sweeper reads and deletes besides sessions. */
  sweeps: SweepStore;
  /** Exports and imports of sessions (always on the pool: each page or record is a transaction of its own). */
  exports: SessionExportStore;
  /** What the watches read (always on the pool). */
  watch: WatchStore;
  /** Full-text search over turns (always on the pool: each search is a transaction of its own). */
  search: SearchStore;
  /** Runs `work` in one transaction with every store bound to it (inside one already: in that one). */
  transaction<T>(work: (tx: Stores) => Promise<T>): Promise<T>;
  /** Drops this process's cached id of a namespace that was deleted. */
  forgetNamespace(name: string): void;
}
