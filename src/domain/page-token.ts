/**
 * Opaque keyset page tokens for ListSessions. A token carries the position (create_time, uuid) of the
 * last row served, a fingerprint of the request it belongs to, and a checksum. A token that does not
 * decode or whose checksum fails is rejected as malformed; one used with a different namespace, filter,
 * order or show_deleted is rejected as stale. Tokens are not secrets: the namespace scope of the query
 * is enforced independently of them.
 */
import { createHash } from "node:crypto";
import { InvalidInputError } from "./errors.js";
import { isUuid } from "./ids.js";

/** Where the next page starts. */
export interface Cursor {
  createTime: Date;
  uuid: string;
}

const FIELD = "page_token";

function digest(text: string, length: number): string {
  return createHash("sha256").update(text).digest("base64url").slice(0, length);
}

/** A short stable fingerprint of the request parameters a token is valid for. */
export function fingerprint(params: unknown): string {
  return digest(JSON.stringify(params), 16);
}

/** Encodes a cursor for the request with fingerprint `fp`. */
export function encodePageToken(cursor: Cursor, fp: string): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, t: cursor.createTime.getTime(), u: cursor.uuid, q: fp })).toString("base64url");
  return `${payload}.${digest(payload, 12)}`;
}

/** Decodes a token for the request with fingerprint `fp`. @throws InvalidInputError naming page_token */
export function decodePageToken(token: string, fp: string): Cursor {
  const [payload, check, extra] = token.split(".");
  if (extra !== undefined || !payload || !check || token.length > 512 || digest(payload, 12) !== check) {
    throw new InvalidInputError(FIELD, "malformed or altered; pass next_page_token back unchanged");
  }
  let parsed: { v?: unknown; t?: unknown; u?: unknown; q?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new InvalidInputError(FIELD, "malformed or altered; pass next_page_token back unchanged");
  }
  if (parsed.v !== 1 || typeof parsed.t !== "number" || !Number.isFinite(parsed.t) || typeof parsed.u !== "string" || !isUuid(parsed.u)) {
    throw new InvalidInputError(FIELD, "malformed or altered; pass next_page_token back unchanged");
  }
  if (parsed.q !== fp) {
    throw new InvalidInputError(FIELD, "was issued for a different request; keep namespace, filter, order and show_deleted unchanged while paging");
  }
  return { createTime: new Date(parsed.t), uuid: parsed.u };
}
