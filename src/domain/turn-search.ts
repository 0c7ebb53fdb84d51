/**
 * SearchTurns: full-text search over a namespace's turns, ranked and keyset-paged. Validation and
 * paging live here; the text search itself (Postgres) in the store.
 */
import { InvalidInputError } from "./errors.js";
import { encodeSessionId } from "./ids.js";
import { decodeSearchToken, encodeSearchToken, fingerprint, pageOf } from "./page-token.js";
import type { SearchStore, StoredHit } from "./search-store.js";
import { checkLabels, checkNamespace, checkPageSize, checkText } from "./session-model.js";
import type { SessionStore } from "./session-store.js";

/** The longest query accepted, in UTF-8 bytes. */
export const MAX_QUERY_BYTES = 1024;
const DEFAULT_SEARCH_PAGE_SIZE = 20;
const MAX_SEARCH_PAGE_SIZE = 100;

/** Input of {@link TurnSearch.search}, as it arrives (not yet validated). */
export interface SearchTurnsInput {
  namespace: string;
  query: string;
  labels: Record<string, string>;
  /** "" for any. */
  participantId: string;
  /** "" for any. */
  role: string;
  createTimeAfter?: Date;
  createTimeBefore?: Date;
  includeArchived: boolean;
  pageSize: number;
  pageToken: string;
}

/** A hit as returned: the stored one with its session's global id. */
export interface TurnHit extends StoredHit {
  id: string;
}

/** Full-text search over turns. */
export interface TurnSearch {
  /** One page of hits, best first, and the token of the next page ("" on the last). @throws InvalidInputError, PreconditionError */
  search(input: SearchTurnsInput): Promise<{ hits: TurnHit[]; nextPageToken: string }>;
}

/** Checks the query text: required (not only whitespace), at most MAX_QUERY_BYTES, storable text. */
export function checkQuery(query: string): string {
  const trimmed = query.trim();
  if (trimmed === "") throw new InvalidInputError("query", "is required (and must not be only whitespace)");
  const bytes = Buffer.byteLength(query, "utf8");
  if (bytes > MAX_QUERY_BYTES) throw new InvalidInputError("query", `must be at most ${MAX_QUERY_BYTES} bytes, got ${bytes}`);
  return checkText("query", trimmed, MAX_QUERY_BYTES);
}

/** Creates the search over its stores. */
export function createTurnSearch(deps: { search: SearchStore; sessions: Pick<SessionStore, "namespaceId"> }): TurnSearch {
  return {
    async search(input) {
      const namespace = checkNamespace(input.namespace);
      const query = checkQuery(input.query);
      const labels = Object.keys(input.labels).length ? checkLabels(input.labels) : undefined;
      const participantId = input.participantId ? checkText("participant_id", input.participantId, 256) : undefined;
      const role = input.role ? checkText("role", input.role, 32) : undefined;
      const { createTimeAfter, createTimeBefore } = input;
      if (createTimeAfter && createTimeBefore && createTimeAfter >= createTimeBefore) throw new InvalidInputError("create_time_before", "must be later than create_time_after");
      if (input.pageSize > MAX_SEARCH_PAGE_SIZE) throw new InvalidInputError("page_size", `must be between 1 and ${MAX_SEARCH_PAGE_SIZE}`);
      const limit = checkPageSize(input.pageSize, DEFAULT_SEARCH_PAGE_SIZE);
      const fp = fingerprint({
        namespace,
        query,
        labels: labels && Object.fromEntries(Object.entries(labels).sort()),
        participantId,
        role,
        after: createTimeAfter?.getTime(),
        before: createTimeBefore?.getTime(),
        archived: input.includeArchived,
      });
      const after = input.pageToken ? decodeSearchToken(input.pageToken, fp) : undefined;
      const namespaceId = await deps.sessions.namespaceId(namespace, false);
      if (!namespaceId) return { hits: [], nextPageToken: "" };
      const rows = await deps.search.searchTurns({ namespaceId, query, labels, participantId, role, createTimeAfter, createTimeBefore, includeArchived: input.includeArchived, after, limit: limit + 1 });
      const { items, nextPageToken } = pageOf(rows, limit, (last) => encodeSearchToken({ rank: last.rank, sessionUuid: last.sessionUuid, seq: last.seq }, fp));
      return { hits: items.map((h) => ({ ...h, id: encodeSessionId(h.namespaceId, h.sessionUuid) })), nextPageToken };
    },
  };
}
