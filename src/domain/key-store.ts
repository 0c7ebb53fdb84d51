/**
 * The storage API keys need (api-key-service.ts, credentials.ts), declared by the domain and implemented in
 * db/. Only hashes of secrets are stored.
 */
import type { ApiKey, Role } from "./access.js";
import type { Cursor } from "./page-token.js";

/** An API key with the hash of its secret: what authentication needs (the API never shows the hash). */
export interface HashedApiKey extends ApiKey {
  secretHash: Buffer;
}

/** Values of a new key. */
export interface NewApiKey {
  uuid: string;
  namespaceId: string | null;
  displayName: string;
  role: Role;
  secretHash: Buffer;
  secretPrefix: string;
  createdBy: string;
  expiresAfterMs: number | null;
}

/** Which keys a list shows: of one namespace, or all (`namespaceId` undefined). */
export interface KeyListQuery {
  namespaceId?: string;
  showRevoked: boolean;
  after?: Cursor;
  limit: number;
}

/** Storage of API keys. */
export interface KeyStore {
  insert(v: NewApiKey): Promise<HashedApiKey>;
  find(uuid: string): Promise<HashedApiKey | undefined>;
  /** The bootstrap key, if one was made. */
  findBootstrap(): Promise<HashedApiKey | undefined>;
  /** Makes the bootstrap key have this secret (an ADMIN key for all namespaces, not revoked, no expiry). */
  upsertBootstrap(secretHash: Buffer, secretPrefix: string): Promise<HashedApiKey>;
  /** Whether any key was ever made. */
  any(): Promise<boolean>;
  /** Newest first, after the cursor. */
  list(query: KeyListQuery): Promise<HashedApiKey[]>;
  /** Revokes the key (an earlier revocation stands); scoped to `namespaceId` when given. Undefined when no such key. */
  revoke(uuid: string, namespaceId: string | undefined): Promise<HashedApiKey | undefined>;
}
