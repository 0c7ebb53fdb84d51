/**
 * Global ids: base64url (no padding) of "<Kind>:<uuid>", as in Relay/Phoenix. They are stable, opaque
 * to clients, and say what they point at, so an id of the wrong kind is caught with a clear message.
 * A session's id also carries its namespace's uuid, so that a call naming a session by id alone is
 * routed to the namespace's shard when the tables are distributed by namespace_id: base64url of
 * "Session:", a version byte and the two uuids' 32 bytes (namespace first), 55 characters, shorter
 * than the 59 of the text form. Session ids handed out before that, "Session:<uuid>", are still read.
 */
import { randomBytes } from "node:crypto";
import { InvalidInputError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KIND = /^[A-Z][A-Za-z]{0,31}$/;
/** Longest global id accepted (the longest kind's text form is 68 characters). */
const MAX_ID_LENGTH = 128;

/** Kinds of resources that have global ids. */
export type IdKind = "Session" | "Participant" | "Trace" | "Annotation" | "Memory" | "Namespace" | "ApiKey" | "AuditEvent" | "Operation";

/** Kinds whose global id is "<Kind>:<uuid>" (a session's names its namespace too: see encodeSessionId). */
export type PlainIdKind = Exclude<IdKind, "Session">;

/** What a session's global id names. */
export interface SessionGlobalId {
  /** The session's database uuid. */
  uuid: string;
  /** Its namespace's database uuid; undefined for an id of the old form, which does not carry it. */
  namespaceId?: string;
}

/** Encodes a global id. */
export function encodeGlobalId(kind: PlainIdKind, uuid: string): string {
  return Buffer.from(`${kind}:${uuid}`, "utf8").toString("base64url");
}

/**
 * The bytes a session id of the current form starts with: "Session:" and a version byte, 1, which no
 * id of the text form holds there (so "Session:" and 32 hex digits is not mistaken for one).
 */
const SESSION_PREFIX = Buffer.from("Session:\x01", "latin1");
/** Its length in bytes: the prefix and two uuids. */
const SESSION_ID_BYTES = SESSION_PREFIX.length + 32;

/** Encodes a session's global id: base64url of "Session:", a version byte, its namespace's uuid and its own, as bytes. */
export function encodeSessionId(namespaceId: string, uuid: string): string {
  return Buffer.concat([SESSION_PREFIX, Buffer.from(namespaceId.replaceAll("-", ""), "hex"), Buffer.from(uuid.replaceAll("-", ""), "hex")]).toString("base64url");
}

/** The canonical text of 16 bytes of a uuid. */
function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The kind and uuids of a well-formed global id: "<Kind>:<uuid>", or a session's of the current form
 * (its namespace's uuid, then its own). Only the canonical encoding is accepted, so one session has one id.
 * @throws InvalidInputError naming `field` when it is malformed, or of another kind than `expected`
 */
function parse(expected: IdKind, id: string, field: string): string[] {
  const invalid = () => new InvalidInputError(field, `not a valid ${expected} id`);
  if (id.length > MAX_ID_LENGTH || !BASE64URL.test(id)) throw invalid();
  const raw = Buffer.from(id, "base64url");
  let found: string;
  let uuids: string[];
  if (raw.length === SESSION_ID_BYTES && raw.subarray(0, SESSION_PREFIX.length).equals(SESSION_PREFIX)) {
    found = "Session";
    const at = SESSION_PREFIX.length;
    uuids = [uuidOf(raw.subarray(at, at + 16)), uuidOf(raw.subarray(at + 16, at + 32))];
    if (raw.toString("base64url") !== id) throw invalid();
  } else {
    [found, ...uuids] = raw.toString("utf8").split(":");
    if (!KIND.test(found) || uuids.length !== 1 || !UUID.test(uuids[0])) throw invalid();
  }
  if (found !== expected) throw new InvalidInputError(field, `is a ${found} id, expected a ${expected} id`);
  return uuids;
}

/**
 * Decodes a global id of the expected kind into its uuid.
 * @throws InvalidInputError naming `field` when the id is malformed or of another kind.
 */
export function decodeGlobalId(kind: PlainIdKind, id: string, field = "id"): string {
  return parse(kind, id, field)[0];
}

/**
 * Decodes a session's global id: its uuid, and its namespace's uuid unless the id is of the old form
 * ("Session:<uuid>"). @throws InvalidInputError naming `field` when the id is malformed or of another kind
 */
export function decodeSessionId(id: string, field = "id"): SessionGlobalId {
  const known = decodedSessionIds.get(id);
  if (known) return known;
  const uuids = parse("Session", id, field);
  const decoded: SessionGlobalId = Object.freeze(uuids.length === 2 ? { namespaceId: uuids[0], uuid: uuids[1] } : { uuid: uuids[0] });
  if (decodedSessionIds.size >= MAX_DECODED_SESSION_IDS) decodedSessionIds.clear();
  decodedSessionIds.set(id, decoded);
  return decoded;
}

/**
 * Session ids decoded lately (frozen): a call's id is decoded by the service and again by the audit
 * log, and a chat's calls name the same session over and over; decoding (base64, two uuids, the
 * canonical-form check) cost a few microseconds each time. Only valid ids are kept.
 */
const decodedSessionIds = new Map<string, SessionGlobalId>();
const MAX_DECODED_SESSION_IDS = 4096;

/**
 * Whether a decoded session id can name a session of the namespace `namespaceId`: an id of the old
 * form can name one of any namespace; an id of the current form, only one of its own.
 */
export function sessionIdIn(id: SessionGlobalId, namespaceId: string): boolean {
  return id.namespaceId === undefined || id.namespaceId === namespaceId;
}

/** Whether `value` is a canonical lowercase uuid. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** Time of the last id newUuid made: ms since the epoch and a fraction in 1/4096 ms. */
let last = { ms: 0, fraction: 0 };

/**
 * A new time-ordered uuid (UUIDv7, RFC 9562), laid out as the database's sessiond_uuid_v7() and
 * PostgreSQL 18's uuidv7(): 48 bits of Unix time in ms, the version, a 12-bit sub-millisecond fraction,
 * the variant and 62 random bits. For ids chosen before the insert (a client secret names its session
 * or key): lists order by (create_time, id), so ids made later must sort later. Monotonic within the
 * process (when the clock has not moved on, or went back, the fraction steps on from the last id);
 * across processes the order is the clock's.
 */
export function newUuid(): string {
  let ms = Date.now();
  // The sub-millisecond part comes from the monotonic clock, trusted only while it agrees with the
  // wall clock to the millisecond (they drift apart when the wall clock is stepped).
  const fine = performance.timeOrigin + performance.now();
  let fraction = Math.floor(fine) === ms ? Math.min(4095, Math.floor((fine - ms) * 4096)) : 0;
  if (ms < last.ms || (ms === last.ms && fraction <= last.fraction)) {
    ({ ms, fraction } = last.fraction === 4095 ? { ms: last.ms + 1, fraction: 0 } : { ms: last.ms, fraction: last.fraction + 1 });
  }
  last = { ms, fraction };
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (fraction >> 8);
  bytes[7] = fraction & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
