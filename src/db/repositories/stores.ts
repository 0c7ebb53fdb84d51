/**
 * Builds the domain's Stores over a DataSource: every store bound to the pool or, inside
 * `transaction`, to one transaction, with each store's errors translated into domain errors (errors.ts).
 */
import type { DataSource, EntityManager } from "typeorm";
import type { Stores } from "../../domain/stores.js";
import { translated, translatingErrors } from "../errors.js";
import { createAuditStore } from "./audit-store.js";
import { createBulkDeleteStore } from "./bulk-delete-store.js";
import { createClientSecretStore } from "./client-secret-store.js";
import { createConversationStore } from "./conversation-store.js";
import { createKeyStore } from "./key-store.js";
import { createMemoryStore } from "./memory-store.js";
import { createNamespaceStore } from "./namespace-store.js";
import { createOperationStore } from "./operation-store.js";
import { createRetentionStore, createSweepStore } from "./retention-store.js";
import { createRetentionPolicies, type RetentionPolicy } from "../../domain/retention.js";
import { createSessionExportStore } from "./session-export-store.js";
import { createSessionStore, type NamespaceCache } from "./session-store.js";
import { createTraceStore } from "./trace-store.js";
import { createWatchStore } from "./watch-store.js";
import { createSearchStore } from "./search-store.js";

/**
 * Creates the stores over `dataSource`, with one namespace-id cache and one retention-policy cache for
 * the process (`retentionDefault`: the policy of namespaces without one; none keeps everything).
 */
export function createStores(dataSource: DataSource, opts: { retentionDefault?: RetentionPolicy } = {}): Stores {
  const namespaceCache: NamespaceCache = new Map();
  const namespaceNames = new Map<string, string>();
  const forgetNamespace = (name: string) => void namespaceCache.delete(name);
  const retention = translated(createRetentionStore(dataSource));
  const policies = createRetentionPolicies(retention, opts.retentionDefault);
  const sessionStore = (db: EntityManager) => translated(createSessionStore(db, namespaceCache, namespaceNames, policies));
  const sessions = sessionStore(dataSource.manager);
  const sweeps = translated(createSweepStore(dataSource));
  const bulkDeletes = translated(createBulkDeleteStore(dataSource, sessions.namespaceId));
  const operations = translated(createOperationStore(dataSource));
  const watch = translated(createWatchStore(dataSource));
  const exports = translated(createSessionExportStore(dataSource));
  const search = translated(createSearchStore(dataSource));

  /** The stores bound to `db`; `transaction` on them runs in `inTransaction`, or starts one. */
  const on = (db: EntityManager, inTransaction?: () => Stores): Stores => ({
    sessions: db === dataSource.manager ? sessions : sessionStore(db),
    conversations: translated(createConversationStore(db)),
    memories: translated(createMemoryStore(db)),
    traces: translated(createTraceStore(db)),
    keys: translated(createKeyStore(db)),
    clientSecrets: translated(createClientSecretStore(db)),
    namespaces: translated(createNamespaceStore(db)),
    audit: translated(createAuditStore(db)),
    bulkDeletes,
    operations,
    retention,
    policies,
    sweeps,
    exports,
    watch,
    search,
    // BEGIN and COMMIT fail too (a lost race at commit, a dropped connection): translated like the rest.
    transaction: (work) =>
      inTransaction ? work(inTransaction()) : translatingErrors(() => dataSource.transaction((tx) => work(bound(tx)))),
    forgetNamespace,
  });
  const bound = (tx: EntityManager): Stores => {
    const stores: Stores = on(tx, () => stores);
    return stores;
  };
  return on(dataSource.manager);
}
