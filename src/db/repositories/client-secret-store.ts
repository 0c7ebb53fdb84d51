/**
 * What a request made with a session's client secret needs from the database: the secret's hash and
 * the session's state (read fresh on every request, so that a cancel or a refresh takes effect at
 * once on every server process), and a slot in the session's shared per-minute window.
 */
import type { EntityManager } from "typeorm";

/** A session as its client secret sees it. */
export interface ClientSecretRow {
  sessionUuid: string;
  externalId: string;
  namespaceId: string;
  namespace: string;
  /** SHA-256 of the current secret; null once revoked. */
  secretHash: Buffer | null;
  /** Active, not soft-deleted and not past expire_time, by the database's clock. */
  usable: boolean;
  maxRequestsPerMinute: number;
}

/** Storage behind client secrets. */
export interface ClientSecretStore {
  /** The session `uuid`, or undefined when there is none. */
  find(uuid: string): Promise<ClientSecretRow | undefined>;
  /**
   * Admits one request if fewer than `limit` were admitted in the last 60 seconds, across all server
   * processes. Returns 0 when admitted, else the ms until a slot frees up.
   */
  admit(uuid: string, limit: number): Promise<number>;
}

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

    async admit(uuid, limit) {
      const rows = await q("SELECT sessiond_admit_client_request($1, $2) AS wait_ms", [uuid, limit]);
      return rows[0].wait_ms;
    },
  };
}
