/**
 * What a request made with a session's client secret needs from the database (the domain's
 * ClientSecretStore): the secret's hash and the session's state, read fresh on every request, and a
 * slot in the session's shared per-minute window. Every statement names the session's namespace, except
 * the lookup for a client secret of the old form (it names the session's uuid alone).
 */
import type { EntityManager } from "typeorm";
import type { ClientSecretStore } from "../../domain/client-secret-store.js";
import { sqlOf } from "../sql.js";

/** The store over `db`. */
export function createClientSecretStore(db: EntityManager): ClientSecretStore {
  const q = sqlOf(db);
  return {
    async find(key) {
      // A secret of the old form names no namespace: its lookup by uuid alone reaches every shard.
      const [where, params] = key.namespaceId ? ["s.namespace_id = $1 AND s.id = $2", [key.namespaceId, key.uuid]] : ["s.id = $1", [key.uuid]];
      const rows = await q(
        `SELECT s.id, s.external_id, s.namespace_id, n.name, s.client_secret_hash, s.max_requests_per_minute,
                (s.state = 'active' AND s.delete_time IS NULL AND s.expire_time > now()) AS usable
         FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE ${where}`,
        params,
      );
      const r = rows[0];
      if (!r) return undefined;
      return {
        sessionUuid: r.id,
        externalId: r.external_id,
        namespaceId: r.namespace_id,
        namespace: r.name,
        secretHash: r.client_secret_hash,
        usable: r.usable,
        maxRequestsPerMinute: r.max_requests_per_minute,
      };
    },

    async admit(session, limit) {
      const rows = await q("SELECT sessiond_admit_client_request($1, $2, $3) AS wait_ms", [session.namespaceId, session.uuid, limit]);
      return rows[0].wait_ms;
    },
  };
}
