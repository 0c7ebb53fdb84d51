/**
 * The stores a domain service works with, on the pool or together inside one transaction (so that a
 * session row lock taken through one store covers the writes made through another).
 */
import type { DataSource, EntityManager } from "typeorm";
import { createAuditStore, type AuditStore } from "./audit-store.js";
import { createClientSecretStore, type ClientSecretStore } from "./client-secret-store.js";
import { createConversationStore, type ConversationStore } from "./conversation-store.js";
import { createKeyStore, type KeyStore } from "./key-store.js";
import { createNamespaceStore, type NamespaceStore } from "./namespace-store.js";
import { createMemoryStore, type MemoryStore } from "./memory-store.js";
import { bindSessionStore, type NamespaceCache, type SessionStore } from "./session-store.js";
import { createTraceStore, type TraceStore } from "./trace-store.js";

/** Stores bound to one connection or transaction. */
export interface Stores {
  sessions: SessionStore;
  conversations: ConversationStore;
  memories: MemoryStore;
  traces: TraceStore;
  keys: KeyStore;
  clientSecrets: ClientSecretStore;
  namespaces: NamespaceStore;
  audit: AuditStore;
}

/** Stores on the pool, plus a way to run work with all of them in one transaction. */
export interface StoreSet extends Stores {
  transaction<T>(work: (tx: Stores) => Promise<T>): Promise<T>;
  /** Drops this process's cached id of a namespace that was deleted. */
  forgetNamespace(name: string): void;
}

/** Creates the stores over `dataSource`, with one namespace-id cache for the process. */
export function createStores(dataSource: DataSource): StoreSet {
  const namespaceCache: NamespaceCache = new Map();
  const on = (db: EntityManager): Stores => ({
    sessions: bindSessionStore(db, namespaceCache),
    conversations: createConversationStore(db),
    memories: createMemoryStore(db),
    traces: createTraceStore(db),
    keys: createKeyStore(db),
    clientSecrets: createClientSecretStore(db),
    namespaces: createNamespaceStore(db),
    audit: createAuditStore(db),
  });
  return {
    ...on(dataSource.manager),
    transaction: (work) => dataSource.transaction((tx) => work(on(tx))),
    forgetNamespace: (name) => namespaceCache.delete(name),
  };
}
