/**
 * Storage of namespaces themselves (the domain's NamespaceStore, for AdminService). Their sessions are deleted with the bulk-delete
 * machinery first; deleting the row then takes the rest by foreign-key cascade.
 */
import type { EntityManager } from "typeorm";
import { AlreadyExistsError } from "../../domain/errors.js";
import type { Namespace, NamespaceStore } from "../../domain/namespace-store.js";
import { isUniqueViolation } from "../errors.js";
import { sqlOf } from "../sql.js";

const toNamespace = (r: any): Namespace => ({ uuid: r.id, name: r.name, createTime: r.create_time });

/** The store over `db`. */
export function createNamespaceStore(db: EntityManager): NamespaceStore {
  const q = sqlOf(db);
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
      // Lock the namespace row, count, then delete: every write into the namespace's tables holds a key
      // share lock on that row (their foreign keys), so nothing is added between the count and the
      // delete. Separate statements, not one with CTEs: Citus runs each CTE on its own, and counts
      // taken after the delete's cascade would be 0.
      const work = async (tx: EntityManager) => {
        const [found] = await tx.query("SELECT id, name, create_time FROM namespaces WHERE id = $1 FOR UPDATE", [uuid]);
        if (!found) return undefined;
        const [{ memories }] = await tx.query("SELECT count(*)::int AS memories FROM memories WHERE namespace_id = $1", [uuid]);
        const [{ traces }] = await tx.query("SELECT count(*)::int AS traces FROM traces WHERE namespace_id = $1", [uuid]);
        const [{ keys }] = await tx.query("SELECT count(*)::int AS keys FROM api_keys WHERE namespace_id = $1", [uuid]);
        await tx.query("DELETE FROM namespaces WHERE id = $1", [uuid]);
        return { namespace: toNamespace(found), memories, traces, apiKeys: keys };
      };
      return db.queryRunner?.isTransactionActive ? work(db) : db.transaction(work);
    },
  };
}
