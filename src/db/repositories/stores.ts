/**
 * The stores a domain service works with, on the pool or together inside one transaction (so that a
 * session row lock taken through one store covers the writes made through another).
 */
import type { DataSource, EntityManager } from "typeorm";
import { createConversationStore, type ConversationStore } from "./conversation-store.js";
import { createMemoryStore, type MemoryStore } from "./memory-store.js";
import { bindSessionStore, type SessionStore } from "./session-store.js";
import { createTraceStore, type TraceStore } from "./trace-store.js";

/** Stores bound to one connection or transaction. */
export interface Stores {
  sessions: SessionStore;
  conversations: ConversationStore;
  memories: MemoryStore;
  traces: TraceStore;
}

/** Stores on the pool, plus a way to run work with all of them in one transaction. */
export interface StoreSet extends Stores {
  transaction<T>(work: (tx: Stores) => Promise<T>): Promise<T>;
}

/** Creates the stores over `dataSource`, with one namespace-id cache for the process. */
export function createStores(dataSource: DataSource): StoreSet {
  const namespaceCache = new Map<string, string>();
  const on = (db: EntityManager): Stores => ({
    sessions: bindSessionStore(db, namespaceCache),
    conversations: createConversationStore(db),
    memories: createMemoryStore(db),
    traces: createTraceStore(db),
  });
  return { ...on(dataSource.manager), transaction: (work) => dataSource.transaction((tx) => work(on(tx))) };
}
