/**
 * Namespaces as AdminService manages them. Deleting one streams the deletion of its sessions with the
 * BulkDeleteSessions machinery (batches, progress, cancellation between batches), then deletes the
 * namespace row, which takes its memories, sessionless traces, API keys and anything created meanwhile
 * by foreign-key cascade. It shares BulkDeleteSessions' admission slots (services.ts): long work of
 * both kinds together keeps to a bounded share of the database pool.
 */
import { bulkDeleteSessions, type BulkDeleteEvent, type FailureLog } from "./bulk-delete.js";
import type { BulkDeleteStore } from "./bulk-delete-store.js";
import { InvalidInputError, NotFoundError } from "./errors.js";
import type { Namespace, NamespaceDeletion, NamespaceStore } from "./namespace-store.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import { checkNamespace, checkPageSize } from "./session-model.js";

/** An event of DeleteNamespace: the bulk delete's, then `deleted`. */
export type DeleteNamespaceEvent = BulkDeleteEvent | ({ type: "deleted" } & NamespaceDeletion);

/** Managing namespaces. */
export interface NamespaceService {
  create(name: string): Promise<Namespace>;
  /** Oldest first. */
  list(input: { pageSize: number; pageToken: string }): Promise<{ namespaces: Namespace[]; nextPageToken: string }>;
  delete(input: { name: string; batchSize: number }, signal: AbortSignal): AsyncGenerator<DeleteNamespaceEvent>;
}

function checkName(name: string): string {
  if (!name) throw new InvalidInputError("name", "is required");
  return checkNamespace(name, "name");
}

/** The service over the namespace store and the bulk-delete store. */
export function createNamespaceService(deps: { namespaces: NamespaceStore; bulkStore: BulkDeleteStore; forget: (name: string) => void; logBatchFailure?: FailureLog }): NamespaceService {
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
      const name = checkName(input.name);
      const found = await namespaces.find(name);
      if (!found) throw new NotFoundError(`namespace "${name}" not found`);
      const sessions = bulkDeleteSessions(
        deps.bulkStore,
        { namespace: name, selector: { kind: "filter", filter: {}, includeDeleted: true }, dryRun: false, purgeMemories: true, batchSize: input.batchSize },
        signal,
        deps.logBatchFailure ?? (() => {}),
      );
      // Memories of the sessions went with them (purged); the rest go with the namespace row.
      let purged = 0;
      for await (const event of sessions) {
        if (event.type === "progress") for (const r of event.results) if (r.outcome === "deleted") purged += r.memories;
        yield event;
      }
      if (signal.aborted) throw signal.reason;
      const gone = await namespaces.delete(found.uuid);
      deps.forget(name);
      if (!gone) throw new NotFoundError(`namespace "${name}" was deleted by a concurrent call`);
      yield { type: "deleted", ...gone, memories: gone.memories + purged };
    },
  };
}
