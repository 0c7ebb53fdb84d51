/**
 * Storage of sessions (the domain's SessionStore): every SQL statement about the sessions table lives
 * here. Rows are converted to domain StoredSessions at this boundary. Every statement is scoped by
 * namespace_id, except `find` by a uuid alone (a global id of the old form, which carries no namespace,
 * in a call that names none): that lookup is what finds the namespace.
 */
import type { EntityManager } from "typeorm";
import { AlreadyExistsError, ConflictError, NamespaceGoneError, NotFoundError } from "../../domain/errors.js";
import type { SessionStats, StoredSession } from "../../domain/session-model.js";
import type { SessionStore } from "../../domain/session-store.js";
import { isForeignKeyViolation, isUniqueViolation, translated } from "../errors.js";
import { deleteBatch } from "./bulk-delete-store.js";
import { filterSql } from "./session-filter.js";
import { retainedSql, toPolicy } from "./retention-store.js";
import type { RetentionPolicies } from "../../domain/retention.js";
import { sqlOf } from "../sql.js";
import { BUMP_CHANGE, recordChange, type StoredChangeKind } from "./session-changes.js";

/** Namespace ids by name, each until a time (ms since the epoch). */
export type NamespaceCache = Map<string, { id: string; until: number }>;

/** Namespace names by id kept at most (then forgotten all at once, and learnt again). */
const MAX_NAMESPACE_NAMES = 10_000;

/** How long a process trusts a cached namespace id. */
export const NAMESPACE_CACHE_MS = 5000;

/** A session row as toSession reads it (over `sessions s JOIN namespaces n`). */
export const COLUMNS = `s.id, s.namespace_id, s.external_id, s.user_id, s.workflow_id, s.workflow_version, s.data, s.labels, s.state,
  s.version, s.create_time, s.update_time, s.last_activity_time, s.delete_time, s.expire_time, s.max_requests_per_minute, s.participant_count,
  s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count, s.compaction_count, s.archived_turn_count, s.compacted_seq,
  n.name AS namespace_name`;

/** A session's counters, from the columns of its row (or of a function returning them under these names). */
export function statsOf(row: any): SessionStats {
  return {
    participantCount: row.participant_count,
    turnCount: row.turn_count,
    traceCount: row.trace_count,
    spanCount: row.span_count,
    memoriesExtracted: row.memories_extracted,
    integrationCount: row.integration_count,
    ...(row.compaction_count !== undefined && {
      compactionCount: row.compaction_count,
      archivedTurnCount: row.archived_turn_count,
      compactedSeq: Number(row.compacted_seq),
    }),
  };
}

export function toSession(row: any): StoredSession {
  return {
    uuid: row.id,
    sessionId: row.external_id,
    namespace: row.namespace_name,
    namespaceId: row.namespace_id,
    user: row.user_id,
    workflow: { id: row.workflow_id, version: row.workflow_version },
    data: row.data,
    labels: row.labels,
    state: row.delete_time ? "soft_deleted" : row.state,
    createTime: row.create_time,
    updateTime: row.update_time,
    lastActivityTime: row.last_activity_time,
    deleteTime: row.delete_time,
    expireTime: row.expire_time,
    version: row.version,
    stats: statsOf(row),
    maxRequestsPerMinute: row.max_requests_per_minute,
  };
}

/**
 * The store bound to `db` (a DataSource's manager or a transaction's). Namespace ids are cached in
 * `namespaceCache`, one per process (see stores.ts), for NAMESPACE_CACHE_MS: a namespace deleted by
 * another process is forgotten by then. A namespace deleted
 * meanwhile is detected by the foreign key on insert and its cache entry dropped.
 */
export function createSessionStore(db: EntityManager, namespaceCache: NamespaceCache, namespaceNames: Map<string, string> = new Map(), retention?: RetentionPolicies): SessionStore {
  /** Notes a namespace's name by id (a namespace is never renamed; a deleted one's id never returns). */
  const noteName = (id: string, name: string) => {
    if (namespaceNames.get(id) === name) return;
    if (namespaceNames.size >= MAX_NAMESPACE_NAMES) namespaceNames.clear();
    namespaceNames.set(id, name);
  };
  const q = sqlOf(db);

  const store: SessionStore = {
    retention,

    async retentionPolicy(namespaceId) {
      const [r] = await q("SELECT * FROM retention_policies WHERE namespace_id = $1", [namespaceId]);
      return r ? { policy: toPolicy(r), updateTime: r.update_time } : undefined;
    },
    async namespaceId(name, create) {
      const cached = namespaceCache.get(name);
      if (cached && cached.until > Date.now()) return cached.id;
      let rows = await q("SELECT id FROM namespaces WHERE name = $1", [name]);
      if (!rows.length && create) {
        await q("INSERT INTO namespaces (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);
        rows = await q("SELECT id FROM namespaces WHERE name = $1", [name]);
      }
      if (!rows.length) return undefined;
      namespaceCache.set(name, { id: rows[0].id, until: Date.now() + NAMESPACE_CACHE_MS });
      noteName(rows[0].id, name);
      return rows[0].id as string;
    },

    async insert(v) {
      try {
        const rows = await q(
          `WITH s AS (
             INSERT INTO sessions (id, namespace_id, external_id, user_id, workflow_id, workflow_version, data, labels,
                                   expire_time, max_requests_per_minute, client_secret_hash, participant_count, change_seq)
             VALUES ($11, $1, $2, $3, $4, $5, $6, $7, now() + $8 * interval '1 millisecond', $9, $10, $12, 1)
             RETURNING *),
           ${recordChange("created")}
           SELECT ${COLUMNS} FROM s JOIN namespaces n ON n.id = s.namespace_id`,
          [v.namespaceId, v.externalId, v.user, v.workflowId, v.workflowVersion, v.data, v.labels, v.expiresAfterMs, v.maxRequestsPerMinute, v.clientSecretHash, v.uuid, v.participantCount ?? 0],
        );
        return toSession(rows[0]);
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError(`session_id "${v.externalId}" already exists in this namespace`);
        if (isForeignKeyViolation(err)) {
          for (const [k, c] of namespaceCache) if (c.id === v.namespaceId) namespaceCache.delete(k);
          throw new NamespaceGoneError("the namespace was deleted meanwhile");
        }
        throw err;
      }
    },

    async find(key, lock = false) {
      const params: unknown[] = [];
      let where: string;
      if ("uuid" in key) {
        if (key.namespaceId) {
          params.push(key.namespaceId, key.uuid);
          where = "s.namespace_id = $1 AND s.id = $2";
        } else {
          // A global id of the old form: every shard is asked. Under Citus a row lock must name the
          // shard, so a locking lookup first learns the namespace, then locks through it.
          if (lock) {
            const [row] = await q("SELECT namespace_id FROM sessions WHERE id = $1", [key.uuid]);
            return row ? store.find({ uuid: key.uuid, namespaceId: row.namespace_id }, true) : undefined;
          }
          params.push(key.uuid);
          where = "s.id = $1";
        }
      } else {
        params.push(key.namespaceId, key.externalId);
        where = "s.namespace_id = $1 AND s.external_id = $2";
      }
      // Prepared (outside transactions): GetSession and every call by session id start here; a few texts in all.
      const rows = await q(`SELECT ${COLUMNS} FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE ${where}${lock ? " FOR UPDATE OF s" : ""}`, params, { prepare: true });
      if (!rows.length) return undefined;
      noteName(rows[0].namespace_id, rows[0].namespace_name);
      return toSession(rows[0]);
    },

    async list(query) {
      const { where: base, params } = filterSql(query.namespaceId, query.filter, query.showDeleted);
      const where = [base];
      if (query.retained) {
        const r = retainedSql(query.retained, params.length + 1);
        params.push(...r.params);
        where.push(r.sql);
      }
      const dir = query.ascending ? "ASC" : "DESC";
      if (query.after) {
        params.push(query.after.createTime, query.after.uuid);
        where.push(`(s.create_time, s.id) ${query.ascending ? ">" : "<"} ($${params.length - 1}, $${params.length})`);
      }
      params.push(query.limit);
      // The page first, then its namespace's name: on a table never analyzed the planner may find a page
      // by sorting the whole namespace (a top-N has no unique key to go by; ANALYZE settles it), and a
      // join before the LIMIT would look up the namespace row for every session it sorts.
      const rows = await q(
        `SELECT ${COLUMNS} FROM (SELECT * FROM sessions s WHERE ${where.join(" AND ")} ORDER BY s.create_time ${dir}, s.id ${dir} LIMIT $${params.length}) s
         JOIN namespaces n ON n.id = s.namespace_id ORDER BY s.create_time ${dir}, s.id ${dir}`,
        params,
      );
      return rows.map(toSession);
    },

    async update(session, c) {
      const sets = ["version = s.version + 1", "update_time = now()", BUMP_CHANGE];
      const params: unknown[] = [session.namespaceId, session.uuid];
      const set = (column: string, value: unknown) => {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      };
      if (c.data !== undefined) set("data", c.data);
      if (c.labels !== undefined) set("labels", c.labels);
      if (c.user !== undefined) set("user_id", c.user);
      if (c.workflowId !== undefined) set("workflow_id", c.workflowId);
      if (c.workflowVersion !== undefined) set("workflow_version", c.workflowVersion);
      // What the session holds changed (not its state, lifetime or secret): activity.
      if (c.data !== undefined || c.labels !== undefined || c.user !== undefined || c.workflowId !== undefined || c.workflowVersion !== undefined) sets.push("last_activity_time = now()");
      if (c.state !== undefined) set("state", c.state);
      if (c.deleteTime === "now") sets.push("delete_time = now()");
      else if (c.deleteTime !== undefined) set("delete_time", c.deleteTime);
      if (c.clientSecretHash !== undefined) set("client_secret_hash", c.clientSecretHash);
      if (c.expiresAfterMs !== undefined) {
        params.push(c.expiresAfterMs);
        sets.push(`expire_time = now() + $${params.length} * interval '1 millisecond'`);
      }
      const kind: StoredChangeKind =
        c.state === "cancelled" ? "cancelled" : c.deleteTime === "now" ? "soft_deleted" : c.deleteTime === null ? "undeleted" : "updated";
      // Wrapped in a CTE so that the rows come back as from a SELECT; the change is recorded by the same statement.
      const rows = await q(
        `WITH s AS (UPDATE sessions s SET ${sets.join(", ")} WHERE s.namespace_id = $1 AND s.id = $2 RETURNING s.*), ${recordChange(kind)}
         SELECT ${COLUMNS} FROM s JOIN namespaces n ON n.id = s.namespace_id`,
        params,
      );
      return toSession(rows[0]);
    },

    async truncate(session) {
      const key = [session.namespaceId, session.uuid];
      const deleted = await q("WITH d AS (DELETE FROM turns WHERE namespace_id = $1 AND session_id = $2 RETURNING 1) SELECT count(*)::int AS n FROM d", key);
      await q("DELETE FROM turn_requests WHERE namespace_id = $1 AND session_id = $2", key);
      const compactions = await q("WITH d AS (DELETE FROM session_compactions WHERE namespace_id = $1 AND session_id = $2 RETURNING 1) SELECT count(*)::int AS n FROM d", key);
      await q("UPDATE participants SET insights = '[]'::jsonb, last_integrated_seq = 0 WHERE namespace_id = $1 AND session_id = $2", key);
      // The archived turns that went: the row's counter before this statement (compacted_seq stays, as last_turn_seq does).
      const rows = await q(
        `WITH before AS (SELECT archived_turn_count FROM sessions WHERE namespace_id = $1 AND id = $2),
         s AS (UPDATE sessions s SET data = '{}'::jsonb, turn_count = 0, archived_turn_count = 0, compaction_count = 0, version = s.version + 1,
                      update_time = now(), last_activity_time = now(), ${BUMP_CHANGE}
                    WHERE s.namespace_id = $1 AND s.id = $2 RETURNING s.*),
         ${recordChange("truncated", "jsonb_build_object('turns_deleted', $3::integer, 'archived_turns_deleted', (SELECT archived_turn_count FROM before), 'compactions_deleted', $4::integer)")}
         SELECT ${COLUMNS}, (SELECT archived_turn_count FROM before) AS archived_turns_deleted FROM s JOIN namespaces n ON n.id = s.namespace_id`,
        [...key, deleted[0].n, compactions[0].n],
      );
      return { session: toSession(rows[0]), turnsDeleted: deleted[0].n, archivedTurnsDeleted: rows[0].archived_turns_deleted, compactionsDeleted: compactions[0].n };
    },

    async delete(uuid, namespaceId, version) {
      // A batch of one: the same statement as BulkDeleteSessions' (one round trip, no transaction needed).
      const [gone] = await deleteBatch(db, namespaceId, { kind: "uuid", values: [uuid] }, { dryRun: false, purgeMemories: false }, version);
      // Deleted by a concurrent call since the caller found it.
      if (!gone) throw new NotFoundError(`session ${uuid} not found`);
      if (gone.stale) throw new ConflictError(`etag: the session changed since it was read (version ${version}); read it again and retry`);
      return gone.counts;
    },

    async deleteByKey(key, version) {
      const keys = "uuid" in key ? { kind: "uuid" as const, values: [key.uuid] } : { kind: "external" as const, values: [key.externalId] };
      const [gone] = await deleteBatch(db, key.namespaceId, keys, { dryRun: false, purgeMemories: false }, version);
      return gone && { uuid: gone.uuid, externalId: gone.externalId, counts: gone.counts, stale: gone.stale };
    },

    knownNamespaceName: (namespaceId) => namespaceNames.get(namespaceId),

    transaction(work) {
      // The store handed to `work` translates its errors like every store (see stores.ts).
      if (db.queryRunner?.isTransactionActive) return work(translated(store));
      return db.transaction((tx) => work(translated(createSessionStore(tx, namespaceCache, namespaceNames, retention))));
    },
  };
  return store;
}
