/**
 * Storage of namespaces themselves (the domain's NamespaceStore, for AdminService). Their sessions are deleted with the bulk-delete
 * machinery first; deleting the row then takes the rest by foreign-key cascade.
 */
import type { EntityManager } from "typeorm";
import { AlreadyExistsError } from "../../domain/errors.js";
import type { Namespace, NamespaceStore } from "../../domain/namespace-store.js";
import { isUniqueViolation } from "../errors.js";

const toNamespace = (r: any): Namespace => ({ uuid: r.id, name: r.name, createTime: r.create_time });

/** The store over `db`. */
export function createNamespaceStore(db: EntityManager): NamespaceStore {
  const q = (sql: string, params: unknown[]) => db.query(sql, params) as Promise<any[]>;
  return {
    async insert(name) {
      try {
        return toNamespace((await q("INSERT INTO namespaces (name) VALUES ($1) RETURNING id, name, create_time", [name]))[0]);
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError(`namespace "${name}" already exists`);
        throw err;
      }
    },

    async find(name) {
      const rows = await q("SELECT id, name, create_time FROM namespaces WHERE name = $1", [name]);
      return rows.length ? toNamespace(rows[0]) : undefined;
    },

    async list(after, limit) {
      const rows = after
        ? await q("SELECT id, name, create_time FROM namespaces WHERE (create_time, id) > ($1, $2) ORDER BY create_time, id LIMIT $3", [after.createTime, after.uuid, limit])
        : await q("SELECT id, name, create_time FROM namespaces ORDER BY create_time, id LIMIT $1", [limit]);
      return rows.map(toNamespace);
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
      return r ? { namespace: toNamespace(r), memories: r.memories, traces: r.traces, apiKeys: r.api_keys } : undefined;
    },
  };
}
