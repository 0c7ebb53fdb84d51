/**
 * Opaque keyset page tokens. A token carries the position of the last row served ((create_time, uuid)
 * for sessions, traces, annotations, memories, namespaces, API keys and audit events, the sequence number
 * for turns), a fingerprint of the request it belongs to, and a checksum. (create_time, uuid) is a total
 * order that follows creation, also within one millisecond of create_time: ids are time-ordered UUIDv7
 * (sessiond_uuid_v7() in the database, newUuid() in ids.ts), so a row made later has a greater id. A token that does not decode or whose checksum fails is rejected as malformed;
 * one used with different request parameters is rejected as stale. Tokens are not secrets: the namespace scope of the query
 * is enforced independently of them.
 */
import { createHash } from "node:crypto";
import { InvalidInputError } from "./errors.js";
import { isUuid } from "./ids.js";
import type { SearchCursor } from "./search-store.js";

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

/** Seals a position: base64url JSON plus a checksum. */
function seal(position: Record<string, unknown>, fp: string): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, ...position, q: fp })).toString("base64url");
  return `${payload}.${digest(payload, 12)}`;
}

const MALFORMED = "malformed or altered; pass next_page_token back unchanged";

/** Opens a sealed position issued for the request with fingerprint `fp`; `stale` says what must not change. */
function unseal(token: string, fp: string, stale: string): Record<string, unknown> {
  const [payload, check, extra] = token.split(".");
  if (extra !== undefined || !payload || !check || token.length > 512 || digest(payload, 12) !== check) throw new InvalidInputError(FIELD, MALFORMED);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new InvalidInputError(FIELD, MALFORMED);
  }
  if (!parsed || parsed.v !== 1) throw new InvalidInputError(FIELD, MALFORMED);
  if (parsed.q !== fp) throw new InvalidInputError(FIELD, `was issued for a different request; keep ${stale} unchanged while paging`);
  return parsed;
}

/** Encodes a (create_time, uuid) cursor for the request with fingerprint `fp`. */
export function encodePageToken(cursor: Cursor, fp: string): string {
  return seal({ t: cursor.createTime.getTime(), u: cursor.uuid }, fp);
}

/** Decodes a (create_time, uuid) token for the request with fingerprint `fp`. @throws InvalidInputError naming page_token */
export function decodePageToken(token: string, fp: string, stale = "namespace, filter, order and show_deleted"): Cursor {
  const parsed = unseal(token, fp, stale);
  // Times a stored row can have (Postgres timestamptz and JS Date): anything else was not issued by us.
  if (typeof parsed.t !== "number" || !Number.isSafeInteger(parsed.t) || Math.abs(parsed.t) > 8.64e15 || typeof parsed.u !== "string" || !isUuid(parsed.u)) {
    throw new InvalidInputError(FIELD, MALFORMED);
  }
  return { createTime: new Date(parsed.t), uuid: parsed.u };
}

/**
 * Cuts one page from `rows`, fetched with limit + 1: the first `limit` rows, and a token for the next
 * page (made from the last row kept) when there was one more row.
 */
export function pageOf<T>(rows: T[], limit: number, tokenFor: (last: T) => string): { items: T[]; nextPageToken: string } {
  const items = rows.slice(0, limit);
  return { items, nextPageToken: rows.length > limit ? tokenFor(items[items.length - 1]) : "" };
}

/** Encodes a sequence-number cursor (ListTurns). */
export function encodeSeqToken(seq: number, fp: string): string {
  return seal({ s: seq }, fp);
}

/** Decodes a sequence-number cursor. @throws InvalidInputError naming page_token */
export function decodeSeqToken(token: string, fp: string, stale: string): number {
  const parsed = unseal(token, fp, stale);
  if (typeof parsed.s !== "number" || !Number.isSafeInteger(parsed.s) || parsed.s < 0) throw new InvalidInputError(FIELD, MALFORMED);
  return parsed.s;
}

/** Encodes a search cursor (SearchTurns): the last hit's rank, session and seq. */
export function encodeSearchToken(cursor: SearchCursor, fp: string): string {
  return seal({ r: cursor.rank, u: cursor.sessionUuid, s: cursor.seq }, fp);
}

/** Decodes a search cursor. @throws InvalidInputError naming page_token */
export function decodeSearchToken(token: string, fp: string): SearchCursor {
  const parsed = unseal(token, fp, "namespace, query, labels, participant_id, role, create_time_after, create_time_before and include_archived");
  if (typeof parsed.r !== "number" || !Number.isFinite(parsed.r) || typeof parsed.u !== "string" || !isUuid(parsed.u) || typeof parsed.s !== "number" || !Number.isSafeInteger(parsed.s) || parsed.s < 0) {
    throw new InvalidInputError(FIELD, MALFORMED);
  }
  return { rank: parsed.r, sessionUuid: parsed.u, seq: parsed.s };
}
