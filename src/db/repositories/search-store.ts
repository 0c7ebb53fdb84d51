/**
 * Full-text search over turns (the domain's SearchStore), over the GIN index of migration TurnSearch:
 * the WHERE clause uses its very expression, to_tsvector('english', content), for the planner to use it.
 *
 * One statement, in three steps:
 * 1. candidates: the matching turns within the filters, at most MAX_RANKED_HITS of them, in the order
 *    the plan finds them (no ORDER BY, so a common word's matches are never all read: the scan stops
 *    once it has enough). For a common word Postgres reads the namespace's turns in storage order and
 *    keeps those that match (to_tsvector per row read); for a rarer one it goes through the GIN index;
 *    either way roughly the oldest matches first;
 * 2. ranking: ts_rank over those candidates only (to_tsvector again: 20–60 µs a turn on the
 *    benchmark's machine, which is what bounds MAX_RANKED_HITS), then the keyset (rank desc, session, seq) after the
 *    page token's cursor and the page's LIMIT;
 * 3. snippets: ts_headline (which parses the whole content again) for the page's hits only.
 * Every table is read by namespace_id (under Citus the statement is routed to one shard group). The
 * statement runs with a statement_timeout (SET LOCAL in its own transaction), so one pathological query
 * (a negation alone, a filter that rejects nearly every match) cannot hold a connection for long.
 */
import type { DataSource } from "typeorm";
import { PreconditionError } from "../../domain/errors.js";
import { MAX_RANKED_HITS, SEARCH_TIMEOUT_MS, SNIPPET_START, SNIPPET_STOP, type SearchStore } from "../../domain/search-store.js";
import { sqlState } from "../errors.js";

const QUERY_CANCELED = "57014";
/** The text search configuration of the index (see the TurnSearch migration for why 'english'). */
const CONFIG = "'english'::regconfig";
const VECTOR = `to_tsvector(${CONFIG}, t.content)`;
/** Up to two fragments of 10–30 words; the content's own marker characters are dropped first. */
const HEADLINE_OPTIONS = `StartSel=${SNIPPET_START}, StopSel=${SNIPPET_STOP}, MaxWords=30, MinWords=10, ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "`;

/** Creates the store over the pool. */
export function createSearchStore(dataSource: DataSource): SearchStore {
  return {
    async searchTurns(query) {
      const params: unknown[] = [query.namespaceId, query.query];
      // A query with no searchable word (stop words, punctuation) is an empty tsquery: numnode() = 0, a
      // condition the planner folds (the query is a constant of the statement), so nothing is read.
      const where = [`numnode(websearch_to_tsquery(${CONFIG}, $2)) > 0`, "t.namespace_id = $1", `${VECTOR} @@ websearch_to_tsquery(${CONFIG}, $2)`, "s.delete_time IS NULL"];
      const add = (sql: string, value: unknown) => {
        params.push(value);
        where.push(sql.replaceAll("?", `$${params.length}`));
      };
      if (!query.includeArchived) where.push("t.seq > s.compacted_seq");
      if (query.labels) add("s.labels @> ?::jsonb", JSON.stringify(query.labels));
      if (query.participantId !== undefined) add("p.participant_id = ?", query.participantId);
      if (query.role !== undefined) add("t.role = ?", query.role);
      if (query.createTimeAfter) add("t.create_time >= ?", query.createTimeAfter);
      if (query.createTimeBefore) add("t.create_time < ?", query.createTimeBefore);
      const keyset: string[] = [];
      if (query.after) {
        params.push(query.after.rank, query.after.sessionUuid, query.after.seq);
        const [r, u, s] = [params.length - 2, params.length - 1, params.length];
        keyset.push(`WHERE r.rank < $${r}::real OR (r.rank = $${r}::real AND (r.session_id, r.seq) > ($${u}::uuid, $${s}::bigint))`);
      }
      params.push(query.limit);
      const text = `
        WITH c AS (
          SELECT t.session_id, t.seq, t.role, t.create_time, t.content, p.participant_id, s.external_id, t.seq <= s.compacted_seq AS archived
          FROM turns t
          JOIN sessions s ON s.namespace_id = t.namespace_id AND s.id = t.session_id
          JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
          WHERE ${where.join(" AND ")}
          LIMIT ${MAX_RANKED_HITS}
        ), r AS (
          SELECT c.*, ts_rank(to_tsvector(${CONFIG}, c.content), websearch_to_tsquery(${CONFIG}, $2), 1) AS rank FROM c
        ), page AS (
          SELECT * FROM r ${keyset.join("")} ORDER BY r.rank DESC, r.session_id, r.seq LIMIT $${params.length}
        )
        SELECT page.session_id, page.external_id, page.seq, page.participant_id, page.role, page.create_time, page.rank, page.archived,
               ts_headline(${CONFIG}, translate(page.content, '${SNIPPET_START}${SNIPPET_STOP}', ''), websearch_to_tsquery(${CONFIG}, $2), '${HEADLINE_OPTIONS}') AS snippet
        FROM page ORDER BY page.rank DESC, page.session_id, page.seq`;
      try {
        const rows = await dataSource.transaction(async (m) => {
          await m.query(`SET LOCAL statement_timeout = ${SEARCH_TIMEOUT_MS}`);
          return m.query(text, params);
        });
        return rows.map((row: any) => ({
          namespaceId: query.namespaceId,
          sessionUuid: row.session_id,
          sessionId: row.external_id,
          seq: Number(row.seq),
          participantId: row.participant_id,
          role: row.role,
          createTime: row.create_time,
          snippet: row.snippet,
          rank: row.rank,
          archived: row.archived,
        }));
      } catch (err) {
        if (sqlState(err) === QUERY_CANCELED) throw new PreconditionError(`query: the search took longer than ${SEARCH_TIMEOUT_MS / 1000} s; narrow the query or its filters`);
        throw err;
      }
    },
  };
}
