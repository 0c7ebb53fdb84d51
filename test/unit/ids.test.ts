import { describe, expect, it } from "vitest";
import { decodeGlobalId, decodeSessionId, encodeGlobalId, encodeSessionId, isUuid, newUuid, sessionIdIn, type PlainIdKind } from "../../src/domain/ids.js";
import { invalidInput } from "./support/factories.js";

const KINDS: PlainIdKind[] = ["Participant", "Trace", "Annotation", "Memory", "Namespace", "ApiKey", "AuditEvent"];
const UUID = "0190a5d2-7c3e-7abc-8def-0123456789ab";
const NAMESPACE = "0190a5d2-0000-7000-8000-00000000000a";
const OTHER_NAMESPACE = "0190a5d2-0000-7000-8000-00000000000b";
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64url");
/** The bytes of a uuid. */
const bytes = (uuid: string) => Buffer.from(uuid.replaceAll("-", ""), "hex");
/** A session id of the current form from its parts: "Session:", version 1, then 32 bytes (namespace, session). */
const sessionId = (...parts: Buffer[]) => Buffer.concat([Buffer.from("Session:\x01", "latin1"), ...parts]).toString("base64url");

/** The 48-bit Unix time in ms of a UUIDv7. */
const msOf = (uuid: string) => parseInt(uuid.replaceAll("-", "").slice(0, 12), 16);

describe("global ids", () => {
  it.each(KINDS)("encode a %s uuid as unpadded base64url of <Kind>:<uuid> and decode it back", (kind) => {
    const uuid = newUuid();
    const id = encodeGlobalId(kind, uuid);
    expect(id).toBe(b64(`${kind}:${uuid}`));
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeGlobalId(kind, id)).toBe(uuid);
  });

  it("say what they point at: an id of another kind names both kinds and the field", () => {
    const err = invalidInput(() => decodeSessionId(encodeGlobalId("Trace", UUID), "session"));
    expect(err.field).toBe("session");
    expect(err.reason).toBe("is a Trace id, expected a Session id");
    const fromSession = invalidInput(() => decodeGlobalId("Trace", encodeSessionId(NAMESPACE, UUID), "trace"));
    expect(fromSession.field).toBe("trace");
    expect(fromSession.reason).toBe("is a Session id, expected a Trace id");
    expect(invalidInput(() => decodeGlobalId("Memory", b64(`Session:${UUID}`), "ids[0]")).reason).toBe("is a Session id, expected a Memory id");
  });

  it("name the field `id` unless told otherwise", () => {
    expect(invalidInput(() => decodeSessionId("not an id")).field).toBe("id");
    expect(invalidInput(() => decodeGlobalId("Trace", "not an id")).field).toBe("id");
  });

  it.each([
    ["an empty string", ""],
    ["characters outside base64url", "U2Vzc2lvbjo+/w=="],
    ["padding", `${b64(`Session:${UUID}`)}==`],
    ["padding on the current form", `${sessionId(bytes(NAMESPACE), bytes(UUID))}==`],
    ["the current form one byte short", sessionId(bytes(NAMESPACE), bytes(UUID).subarray(1))],
    ["the current form one byte long", sessionId(bytes(NAMESPACE), bytes(UUID), Buffer.from([0]))],
    ["the current form encoded with trailing bits set (not canonical)", sessionId(bytes(NAMESPACE), bytes(UUID)).slice(0, -1) + "B"],
    ["the text of two uuids", b64(`Session:${NAMESPACE}:${UUID}`)],
    ["another version byte", Buffer.concat([Buffer.from("Session:\x02", "latin1"), bytes(NAMESPACE), bytes(UUID)]).toString("base64url")],
    ["more than 128 characters", "A".repeat(129)],
    ["no kind", b64(`:${UUID}`)],
    ["no colon", b64(`Session${UUID}`)],
    ["a lowercase kind", b64(`session:${UUID}`)],
    ["a kind with digits", b64(`Session2:${UUID}`)],
    ["an uppercase uuid", b64(`Session:${UUID.toUpperCase()}`)],
    ["a uuid without dashes", b64(`Session:${UUID.replaceAll("-", "")}`)],
    ["a uuid with a tail", b64(`Session:${UUID}:x`)],
    ["a namespace uuid with a tail", b64(`Session:${NAMESPACE}x:${UUID}`)],
    ["an empty namespace", b64(`Session::${UUID}`)],
    ["an empty session uuid", b64(`Session:${NAMESPACE}:`)],
    ["an uppercase namespace uuid", b64(`Session:${NAMESPACE.toUpperCase()}:${UUID}`)],
    ["three uuids", b64(`Session:${NAMESPACE}:${UUID}:${UUID}`)],
    ["a namespace name instead of its uuid", b64(`Session:default:${UUID}`)],
    ["a caller's session_id", b64("Session:chat-1")],
    ["bytes that are not UTF-8", Buffer.from([0xff, 0xfe, 0x3a, 0x00]).toString("base64url")],
  ])("reject %s as not a valid id of the expected kind", (_name, id) => {
    const err = invalidInput(() => decodeSessionId(id, "ids[3]"));
    expect(err.field).toBe("ids[3]");
    expect(err.reason).toBe("not a valid Session id");
  });

  it("give other kinds no namespace part: two uuids are not a valid id of theirs", () => {
    const err = invalidInput(() => decodeGlobalId("Trace", b64(`Trace:${NAMESPACE}:${UUID}`), "trace"));
    expect(err.field).toBe("trace");
    expect(err.reason).toBe("not a valid Trace id");
  });

  it("are stable: the same uuid always gives the same id", () => {
    expect(encodeSessionId(NAMESPACE, UUID)).toBe(encodeSessionId(NAMESPACE, UUID));
    expect(encodeGlobalId("Trace", UUID)).toBe(encodeGlobalId("Trace", UUID));
    expect(encodeGlobalId("Memory", UUID)).not.toBe(encodeGlobalId("Trace", UUID));
  });
});

describe("session global ids", () => {
  it("encode the namespace uuid and the session uuid as unpadded base64url of Session:, a version byte and their 32 bytes, and decode them back", () => {
    const [namespaceId, uuid] = [newUuid(), newUuid()];
    const id = encodeSessionId(namespaceId, uuid);
    expect(id).toBe(sessionId(bytes(namespaceId), bytes(uuid)));
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeSessionId(id)).toEqual({ namespaceId, uuid });
  });

  it("are 55 characters, shorter than the 59 of the old form", () => {
    const id = encodeSessionId("ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff-ffff-ffff-ffff-ffffffffffff");
    expect(id).toHaveLength(55);
    expect(b64(`Session:${UUID}`)).toHaveLength(59);
    expect(decodeSessionId(id).uuid).toBe("ffffffff-ffff-ffff-ffff-ffffffffffff");
  });

  it("still read the old form, Session:<uuid>, without a namespace", () => {
    const decoded = decodeSessionId(b64(`Session:${UUID}`));
    expect(decoded).toEqual({ uuid: UUID });
    expect(decoded.namespaceId).toBeUndefined();
  });

  it("differ by namespace: the same session uuid in two namespaces gives two ids", () => {
    expect(encodeSessionId(NAMESPACE, UUID)).not.toBe(encodeSessionId(OTHER_NAMESPACE, UUID));
    expect(encodeSessionId(NAMESPACE, UUID)).not.toBe(encodeSessionId(UUID, NAMESPACE));
    expect(decodeSessionId(encodeSessionId(UUID, NAMESPACE))).toEqual({ namespaceId: UUID, uuid: NAMESPACE });
  });

  it("name a session of their own namespace only; the old form may name one of any", () => {
    const current = decodeSessionId(encodeSessionId(NAMESPACE, UUID));
    expect(sessionIdIn(current, NAMESPACE)).toBe(true);
    expect(sessionIdIn(current, OTHER_NAMESPACE)).toBe(false);
    const old = decodeSessionId(b64(`Session:${UUID}`));
    expect(sessionIdIn(old, NAMESPACE)).toBe(true);
    expect(sessionIdIn(old, OTHER_NAMESPACE)).toBe(true);
  });
});

describe("isUuid", () => {
  it("accepts canonical lowercase uuids only", () => {
    expect(isUuid(UUID)).toBe(true);
    expect(isUuid(crypto.randomUUID())).toBe(true);
    for (const bad of ["", UUID.toUpperCase(), UUID.replaceAll("-", ""), `{${UUID}}`, `${UUID} `, UUID.slice(0, -1), UUID.replace("a", "g")]) expect(isUuid(bad), bad).toBe(false);
  });
});

describe("newUuid()", () => {
  it("makes canonical uuids with version 7 and the RFC 9562 variant", () => {
    for (const id of Array.from({ length: 1_000 }, () => newUuid())) {
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe("7");
      expect("89ab").toContain(id[19]);
    }
  });

  it("is strictly increasing across 20,000 calls made within a few milliseconds", () => {
    const ids = Array.from({ length: 20_000 }, () => newUuid());
    for (let i = 1; i < ids.length; i++) {
      if (!(ids[i - 1] < ids[i])) expect.fail(`id ${i} (${ids[i]}) does not sort after id ${i - 1} (${ids[i - 1]})`);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("carries the wall clock's time in its first 48 bits", () => {
    const before = Date.now();
    const id = newUuid();
    const after = Date.now();
    // Monotonic: an id may run ahead of the clock by the ids made just before it, never behind.
    expect(msOf(id)).toBeGreaterThanOrEqual(before);
    expect(msOf(id)).toBeLessThanOrEqual(after + 1);
  });

  it("keeps 62 random bits: ids made in a row differ beyond their time and counter", () => {
    const tails = new Set(Array.from({ length: 1_000 }, () => newUuid().slice(19)));
    expect(tails.size).toBe(1_000);
  });
});
