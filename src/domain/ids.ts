/**
 * Global ids: base64url (no padding) of "<Kind>:<uuid>", as in Relay/Phoenix. They are stable, opaque
 * to clients, and say what they point at, so an id of the wrong kind is caught with a clear message.
 */
import { randomBytes } from "node:crypto";
import { InvalidInputError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KIND = /^[A-Z][A-Za-z]{0,31}$/;

/** Kinds of resources that have global ids. */
export type IdKind = "Session" | "Participant" | "Trace" | "Annotation" | "Memory" | "Namespace" | "ApiKey" | "AuditEvent";

/** Encodes a global id. */
export function encodeGlobalId(kind: IdKind, uuid: string): string {
  return Buffer.from(`${kind}:${uuid}`, "utf8").toString("base64url");
}

/**
 * Decodes a global id of the expected kind into its uuid.
 * @throws InvalidInputError naming `field` when the id is malformed or of another kind.
 */
export function decodeGlobalId(kind: IdKind, id: string, field = "id"): string {
  if (id.length > 128 || !BASE64URL.test(id)) throw new InvalidInputError(field, `not a valid ${kind} id`);
  const text = Buffer.from(id, "base64url").toString("utf8");
  const colon = text.indexOf(":");
  const found = colon > 0 ? text.slice(0, colon) : "";
  const uuid = colon > 0 ? text.slice(colon + 1) : "";
  if (!KIND.test(found) || !UUID.test(uuid)) throw new InvalidInputError(field, `not a valid ${kind} id`);
  if (found !== kind) throw new InvalidInputError(field, `is a ${found} id, expected a ${kind} id`);
  return uuid;
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
