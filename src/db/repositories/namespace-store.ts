/**
 * Storage of namespaces themselves (AdminService). Their sessions are deleted with the bulk-delete
 * machinery first; deleting the row then takes the rest by foreign-key cascade.
 */
import type { EntityManager } from "typeorm";
import { AlreadyExistsError, databaseErrorCode } from "../../domain/errors.js";
import type { Cursor } from "../../domain/page-token.js";

/** A namespace row. */
export interface NamespaceRow {
  uuid: string;
  name: string;
  createTime: Date;
}

/** What went with a deleted namespace (besides its sessions). */
export interface NamespaceDeletion {
  namespace: NamespaceRow;
  memories: number;
  traces: number;
  apiKeys: number;
}

/** Storage of namespaces. */
export interface NamespaceStore {
  /** @throws AlreadyExistsError */
  insert(name: string): Promise<NamespaceRow>;
  find(name: string): Promise<NamespaceRow | undefined>;
  /** Up to `limit` namespaces, oldest first, after the cursor. */
  list(after: Cursor | undefined, limit: number): Promise<NamespaceRow[]>;
  /** Deletes the namespace row (and by cascade all it still holds). Undefined when already gone. */
  delete(uuid: string): Promise<NamespaceDeletion | undefined>;
}

const UNIQUE_VIOLATION = "23505";

const toRow = (r: any): NamespaceRow => ({ uuid: r.id, name: r.name, createTime: r.create_time });

/** The store over `db`. */
export function createNamespaceStore(db: EntityManager): NamespaceStore {
  const q = (sql: string, params: unknown[]) => db.query(sql, params) as Promise<any[]>;
  return {
    async insert(name) {
      try {
        return toRow((await q("INSERT INTO namespaces (name) VALUES ($1) RETURNING id, name, create_time", [name]))[0]);
      } catch (err) {
        if (databaseErrorCode(err) === UNIQUE_VIOLATION) throw new AlreadyExistsError(`namespace "${name}" already exists`);
        throw err;
      }
    },

    async find(name) {
      const rows = await q("SELECT id, name, create_time FROM namespaces WHERE name = $1", [name]);
      return rows.length ? toRow(rows[0]) : undefined;
    },

    async list(after, limit) {
      const rows = after
        ? await q("SELECT id, name, create_time FROM namespaces WHERE (create_time, id) > ($1, $2) ORDER BY create_time, id LIMIT $3", [after.createTime, after.uuid, limit])
        : await q("SELECT id, name, create_time FROM namespaces ORDER BY create_time, id LIMIT $1", [limit]);
      return rows.map(toRow);
    },

    async delete(uuid) {
      const rows = await q(
        `WITH m AS (SELECT count(*)::int AS n FROM memories WHERE namespace_id = $1),
              t AS (SELECT count(*)::int AS n FROM traces WHERE namespace_id = $1),
              k AS (SELECT count(*)::int AS n FROM api_keys WHERE namespace_id = $1),
              d AS (DELETE FROM namespaces WHERE id = $1 RETURNING id, name, create_time)
         SELECT d.*, m.n AS memories, t.n AS traces, k.n AS api_keys FROM d, m, t, k`,
        [uuid],
      );
      const r = rows[0];
      return r ? { namespace: toRow(r), memories: r.memories, traces: r.traces, apiKeys: r.api_keys } : undefined;
    },
  };
}
