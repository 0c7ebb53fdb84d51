/**
 * What a request made with a session's client secret needs from the database (the domain's
 * ClientSecretStore): the secret's hash and the session's state, read fresh on every request, and a
 * slot in the session's shared per-minute window.
 */
import type { EntityManager } from "typeorm";
import type { ClientSecretStore } from "../../domain/client-secret-store.js";

/** The store over `db`. */
export function createClientSecretStore(db: EntityManager): ClientSecretStore {
  const q = (sql: string, params: unknown[]) => db.query(sql, params) as Promise<any[]>;
  return {
    async find(uuid) {
      const rows = await q(
        `SELECT s.id, s.external_id, s.namespace_id, n.name, s.client_secret_hash, s.max_requests_per_minute,
                (s.state = 'active' AND s.delete_time IS NULL AND s.expire_time > now()) AS usable
         FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.id = $1`,
        [uuid],
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
