/**
 * The storage namespaces need (namespace-service.ts, api-key-service.ts), declared by the domain and implemented in
 * db/. Deleting a namespace takes what it still holds with it.
 */
import type { Cursor } from "./page-token.js";

/** A namespace. */
export interface Namespace {
  uuid: string;
  name: string;
  createTime: Date;
}

/** What went with a deleted namespace (besides its sessions). */
export interface NamespaceDeletion {
  namespace: Namespace;
  memories: number;
  traces: number;
  apiKeys: number;
}

/** Storage of namespaces. */
export interface NamespaceStore {
  /** @throws AlreadyExistsError */
  insert(name: string): Promise<Namespace>;
  find(name: string): Promise<Namespace | undefined>;
  /** Up to `limit` namespaces, oldest first, after the cursor. */
  list(after: Cursor | undefined, limit: number): Promise<Namespace[]>;
  /** Deletes the namespace with all it still holds. Undefined when already gone. */
  delete(uuid: string): Promise<NamespaceDeletion | undefined>;
}
