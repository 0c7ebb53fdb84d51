/**
 * Global ids: base64url (no padding) of "<Kind>:<uuid>", as in Relay/Phoenix. They are stable, opaque
 * to clients, and say what they point at, so an id of the wrong kind is caught with a clear message.
 */
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
