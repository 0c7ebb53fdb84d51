/**
 * Who is calling: roles, API keys and client secrets as the domain sees them, the secrets' formats,
 * and how a presented secret is checked (hash, then a constant-time comparison of the hashes).
 */
import { hash, randomBytes, timingSafeEqual } from "node:crypto";

/** What an API key may do; each role includes the ones before it. */
export type Role = "reader" | "writer" | "admin";

const RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };

/** Whether `held` is at least `needed`. */
export function roleAllows(held: Role, needed: Role): boolean {
  return RANK[held] >= RANK[needed];
}

/** An API key, without its secret. */
export interface ApiKey {
  uuid: string;
  /** The one namespace it may reach (id and name); null for all. */
  namespaceId: string | null;
  namespace: string | null;
  displayName: string;
  role: Role;
  secretPrefix: string;
  createdBy: string;
  createTime: Date;
  expireTime: Date | null;
  revokeTime: Date | null;
}

/** The caller of a request, once its credential was checked. */
export type Principal =
  | { kind: "key"; keyUuid: string; role: Role; namespace: string | null }
  /** A client certificate (mutual TLS) mapped to a role and scope by configuration (certificate-identities.ts). */
  | { kind: "certificate"; identity: string; role: Role; namespace: string | null }
  | { kind: "client"; sessionUuid: string; externalId: string; namespace: string; namespaceId: string; maxRequestsPerMinute: number };

/**
 * Secrets this server issues: a kind prefix, the id of what they unlock and 32 random bytes, each part
 * base64url. An API key's id is its 16-byte uuid (22 characters); a client secret's, its session's
 * namespace uuid then the session's uuid (32 bytes, 43 characters), so that the session is found in its
 * namespace; client secrets issued before that carry the session's uuid alone (22 characters).
 */
const ISSUED = /^(?:(sk)_([A-Za-z0-9_-]{22})|(cs)_([A-Za-z0-9_-]{22}|[A-Za-z0-9_-]{43}))_([A-Za-z0-9_-]{43})$/;

/** Shortest secret accepted in SESSIOND_BOOTSTRAP_ADMIN_KEY. */
export const MIN_BOOTSTRAP_SECRET_LENGTH = 32;

const uuidBytes = (uuid: string) => Buffer.from(uuid.replaceAll("-", ""), "hex");

function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A new secret: `sk_…` for the API key `uuid`, `cs_…` for the client secret of the session `uuid` in
 * the namespace `namespaceId`.
 */
export function newSecret(kind: "sk", uuid: string): string;
export function newSecret(kind: "cs", uuid: string, namespaceId: string): string;
export function newSecret(kind: "sk" | "cs", uuid: string, namespaceId?: string): string {
  const id = kind === "cs" ? Buffer.concat([uuidBytes(namespaceId!), uuidBytes(uuid)]) : uuidBytes(uuid);
  return `${kind}_${id.toString("base64url")}_${randomBytes(32).toString("base64url")}`;
}

/** What a presented secret names. */
export type ParsedSecret =
  | { kind: "sk"; uuid: string }
  /** A client secret: its session's uuid, and its namespace's unless the secret is of the old form. */
  | { kind: "cs"; uuid: string; namespaceId?: string }
  | { kind: "other" };

/** What a presented secret names: an issued key or client secret (with its uuids), or anything else. */
export function parseSecret(secret: string): ParsedSecret {
  const m = ISSUED.exec(secret);
  if (!m) return { kind: "other" };
  if (m[1]) return { kind: "sk", uuid: uuidOf(Buffer.from(m[2], "base64url")) };
  const id = Buffer.from(m[4], "base64url");
  return id.length === 32 ? { kind: "cs", uuid: uuidOf(id.subarray(16)), namespaceId: uuidOf(id.subarray(0, 16)) } : { kind: "cs", uuid: uuidOf(id) };
}

/** SHA-256 of a secret: what is stored. Secrets are long random strings, so a fast hash suffices. */
export function hashSecret(secret: string): Buffer {
  // One-shot: no Hash object per call (this runs on every call with a credential).
  return hash("sha256", secret, "buffer");
}

/** What lists show of a secret: enough to tell keys apart, far too little to use. */
export function secretPrefix(secret: string): string {
  return secret.slice(0, 11);
}

/**
 * Whether `secret` hashes to `storedHash`, in time that does not depend on where they differ: both
 * sides are 32-byte digests compared with crypto.timingSafeEqual, whatever the secret's length.
 */
export function secretMatches(secret: string, storedHash: Buffer | null | undefined): boolean {
  const presented = hashSecret(secret);
  // Compare against a digest of the same length even when there is nothing stored, so that the
  // absence of a secret costs the same as a mismatch.
  const expected = storedHash && storedHash.length === presented.length ? storedHash : Buffer.alloc(presented.length);
  return timingSafeEqual(presented, expected) && expected === storedHash;
}
