/**
 * Storage of API keys (the domain's KeyStore). Only hashes of secrets are stored. Rows are converted
 * to domain HashedApiKeys here.
 */
import type { EntityManager } from "typeorm";
import type { HashedApiKey, KeyStore } from "../../domain/key-store.js";
import { sqlOf } from "../sql.js";

const COLUMNS = `k.id, k.namespace_id, n.name AS namespace_name, k.display_name, k.role, k.secret_hash, k.secret_prefix,
  k.bootstrap, k.created_by, k.create_time, k.expire_time, k.revoke_time`;

function toKey(r: any): HashedApiKey {
  return {
    uuid: r.id,
    namespaceId: r.namespace_id,
    namespace: r.namespace_name ?? null,
    displayName: r.display_name,
    role: r.role,
    secretHash: r.secret_hash,
    secretPrefix: r.secret_prefix,
    createdBy: r.created_by,
    createTime: r.create_time,
    expireTime: r.expire_time,
    revokeTime: r.revoke_time,
  };
}

/** The store over `db`. */
export function createKeyStore(db: EntityManager): KeyStore {
  const q = sqlOf(db);
  const one = async (where: string, params: unknown[]) => {
    const rows = await q(`SELECT ${COLUMNS} FROM api_keys k LEFT JOIN namespaces n ON n.id = k.namespace_id WHERE ${where}`, params);
    return rows.length ? toKey(rows[0]) : undefined;
  };
  const select = async (cte: string, params: unknown[]) => (await q(`WITH k AS (${cte}) SELECT ${COLUMNS} FROM k LEFT JOIN namespaces n ON n.id = k.namespace_id`, params)).map(toKey);
  return {
    async insert(v) {
      const [row] = await select(
        `INSERT INTO api_keys (id, namespace_id, display_name, role, secret_hash, secret_prefix, created_by, expire_time)
         VALUES ($8, $1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 millisecond')
         RETURNING *`,
        [v.namespaceId, v.displayName, v.role, v.secretHash, v.secretPrefix, v.createdBy, v.expiresAfterMs, v.uuid],
      );
      return row;
    },

    find: (uuid) => one("k.id = $1", [uuid]),

    findBootstrap: () => one("k.bootstrap", []),

    async upsertBootstrap(secretHash, secretPrefix) {
      const [row] = await select(
        `INSERT INTO api_keys (namespace_id, display_name, role, secret_hash, secret_prefix, created_by, bootstrap)
         VALUES (NULL, 'bootstrap admin (SESSIOND_BOOTSTRAP_ADMIN_KEY)', 'admin', $1, $2, 'bootstrap', true)
         ON CONFLICT (bootstrap) WHERE bootstrap DO UPDATE
           SET secret_hash = EXCLUDED.secret_hash, secret_prefix = EXCLUDED.secret_prefix, role = 'admin',
               namespace_id = NULL, expire_time = NULL, revoke_time = NULL
         RETURNING *`,
        [secretHash, secretPrefix],
      );
      return row;
    },

    async any() {
      return (await q("SELECT EXISTS (SELECT 1 FROM api_keys) AS any"))[0].any;
    },

    async list(query) {
      const params: unknown[] = [];
      const where: string[] = [];
      if (query.namespaceId) {
        params.push(query.namespaceId);
        where.push(`k.namespace_id = $${params.length}`);
      }
      if (!query.showRevoked) where.push("k.revoke_time IS NULL");
      if (query.after) {
        params.push(query.after.createTime, query.after.uuid);
        where.push(`(k.create_time, k.id) < ($${params.length - 1}, $${params.length})`);
      }
      params.push(query.limit);
      const rows = await q(
        `SELECT ${COLUMNS} FROM api_keys k LEFT JOIN namespaces n ON n.id = k.namespace_id
         ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY k.create_time DESC, k.id DESC LIMIT $${params.length}`,
        params,
      );
      return rows.map(toKey);
    },

    async revoke(uuid, namespaceId) {
      const rows = await select(
        // least(): the first revoke time stays (see conversation-store's unbind).
        `UPDATE api_keys SET revoke_time = least(revoke_time, now())
         WHERE id = $1 AND ($2::uuid IS NULL OR namespace_id = $2::uuid) RETURNING *`,
        [uuid, namespaceId ?? null],
      );
      return rows[0];
    },
  };
}
