/**
 * Namespaces as AdminService manages them. Deleting one is an operation (operations.ts): the deletion of
 * its sessions with the BulkDeleteSessions machinery (batches, progress, cancellation between batches,
 * takeover when its process dies), then the namespace row, which takes its memories, sessionless
 * traces, API keys and anything created meanwhile by foreign-key cascade. It shares BulkDeleteSessions'
 * slots: long work of both kinds together keeps to a bounded share of the database pool.
 */
import { InvalidInputError } from "./errors.js";
import type { Namespace, NamespaceStore } from "./namespace-store.js";
import type { DeleteNamespaceEvent, Operations } from "./operations.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import { checkNamespace, checkPageSize } from "./session-model.js";

export type { DeleteNamespaceEvent };

/** Managing namespaces. */
export interface NamespaceService {
  create(name: string): Promise<Namespace>;
  /** Oldest first. */
  list(input: { pageSize: number; pageToken: string }): Promise<{ namespaces: Namespace[]; nextPageToken: string }>;
  delete(input: { name: string; batchSize: number; detach?: boolean; actor?: string }, signal: AbortSignal): AsyncGenerator<DeleteNamespaceEvent>;
}

function checkName(name: string): string {
  if (!name) throw new InvalidInputError("name", "is required");
  return checkNamespace(name, "name");
}

/** The service over the namespace store and the operations. */
export function createNamespaceService(deps: { namespaces: NamespaceStore; operations: Pick<Operations, "deleteNamespace"> }): NamespaceService {
  const { namespaces } = deps;
  return {
    create: (name) => namespaces.insert(checkName(name)),

    async list(input) {
      const limit = checkPageSize(input.pageSize);
      const fp = fingerprint("namespaces");
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "the request") : undefined;
      const rows = await namespaces.list(after, limit + 1);
      const page = pageOf(rows, limit, (last) => encodePageToken({ createTime: last.createTime, uuid: last.uuid }, fp));
      return { namespaces: page.items, nextPageToken: page.nextPageToken };
    },

    async *delete(input, signal) {
      yield* deps.operations.deleteNamespace({ ...input, name: checkName(input.name) }, signal);
    },
  };
}
