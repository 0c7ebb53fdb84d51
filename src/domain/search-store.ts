/**
 * The storage SearchTurns needs (turn-search.ts), declared by the domain and implemented in db/.
 */

/** Where the next page of a search starts: the last hit served, in (rank desc, session, seq) order. */
export interface SearchCursor {
  rank: number;
  sessionUuid: string;
  seq: number;
}

/** A validated search, scoped to one namespace. */
export interface TurnSearchQuery {
  namespaceId: string;
  /** Web-search syntax (websearch_to_tsquery), trimmed and non-empty. */
  query: string;
  /** The sessions' labels must contain these. */
  labels?: Record<string, string>;
  participantId?: string;
  role?: string;
  /** Inclusive lower bound of the turn's create_time. */
  createTimeAfter?: Date;
  /** Exclusive upper bound of the turn's create_time. */
  createTimeBefore?: Date;
  includeArchived: boolean;
  after?: SearchCursor;
  /** Hits to return (the caller asks for one more than its page, to know whether another follows). */
  limit: number;
}

/** One turn found, with its session and snippet. */
export interface StoredHit {
  namespaceId: string;
  sessionUuid: string;
  /** The caller's id of the session. */
  sessionId: string;
  seq: number;
  participantId: string;
  role: string;
  createTime: Date;
  /** Fragments around the matches, matched words between SNIPPET_START and SNIPPET_STOP. */
  snippet: string;
  rank: number;
  archived: boolean;
}

/** Marks the start of a matched word in a snippet (a private-use character HTML escaping keeps). */
export const SNIPPET_START = "\uE000";
/** Marks the end of a matched word in a snippet. */
export const SNIPPET_STOP = "\uE001";

/**
 * At most this many matching turns are ranked per query (the first found within the filters, in
 * storage order): ranking every match of a common word over millions of turns would read them all, and
 * a phrase's candidates are each rechecked on their stored vector until this many match (bench:search
 * on 1M turns: with 1,000, a phrase of two common words took 150 ms; see README Performance).
 */
export const MAX_RANKED_HITS = 200;

/** How long one search may run in the database before it is cancelled. */
export const SEARCH_TIMEOUT_MS = 5000;

/** Full-text search over turns (always on the pool). */
export interface SearchStore {
  /**
   * Hits in (rank desc, session uuid, seq) order after `after`, with their snippets (made for these
   * hits only). Empty when the query has no searchable word.
   * @throws PreconditionError when the search runs longer than SEARCH_TIMEOUT_MS
   */
  searchTurns(query: TurnSearchQuery): Promise<StoredHit[]>;
}
