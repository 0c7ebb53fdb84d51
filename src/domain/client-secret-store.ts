/**
 * The storage a session's client secret needs (credentials.ts), declared by the domain and implemented
 * in db/: the secret's hash and the session's state, read fresh on every request (so that a cancel or
 * a refresh takes effect at once on every server process), and a slot in the session's shared
 * per-minute window.
 */

import type { SessionRow } from "./session-store.js";

/** A session as its client secret sees it. */
export interface ClientSecretSession {
  sessionUuid: string;
  externalId: string;
  namespaceId: string;
  namespace: string;
  /** SHA-256 of the current secret; null once revoked. */
  secretHash: Buffer | null;
  /** Active, not soft-deleted and not past its expire time, by the store's clock. */
  usable: boolean;
  maxRequestsPerMinute: number;
}

/** Storage behind client secrets. */
export interface ClientSecretStore {
  /**
   * The session a client secret names, or undefined when there is none: by its namespace and uuid, or
   * (secrets issued before they carried the namespace) by uuid alone.
   */
  find(key: { uuid: string; namespaceId?: string }): Promise<ClientSecretSession | undefined>;
  /**
   * Admits one request if fewer than `limit` were admitted in the last 60 seconds, across all server
   * processes. Returns 0 when admitted, else the ms until a slot frees up.
   */
  admit(session: SessionRow, limit: number): Promise<number>;
}
