import { describe, expect, it } from "vitest";
import { decodeGlobalId, encodeGlobalId, isUuid, newUuid, type IdKind } from "../../src/domain/ids.js";
import { invalidInput } from "./support/factories.js";

const KINDS: IdKind[] = ["Session", "Participant", "Trace", "Annotation", "Memory", "Namespace", "ApiKey", "AuditEvent"];
const UUID = "0190a5d2-7c3e-7abc-8def-0123456789ab";
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64url");

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
    const err = invalidInput(() => decodeGlobalId("Session", encodeGlobalId("Trace", UUID), "session"));
    expect(err.field).toBe("session");
    expect(err.reason).toBe("is a Trace id, expected a Session id");
  });

  it("name the field `id` unless told otherwise", () => {
    expect(invalidInput(() => decodeGlobalId("Session", "not an id")).field).toBe("id");
  });

  it.each([
    ["an empty string", ""],
    ["characters outside base64url", "U2Vzc2lvbjo+/w=="],
    ["padding", `${b64(`Session:${UUID}`)}==`],
    ["more than 128 characters", "A".repeat(129)],
    ["no kind", b64(`:${UUID}`)],
    ["no colon", b64(`Session${UUID}`)],
    ["a lowercase kind", b64(`session:${UUID}`)],
    ["a kind with digits", b64(`Session2:${UUID}`)],
    ["an uppercase uuid", b64(`Session:${UUID.toUpperCase()}`)],
    ["a uuid without dashes", b64(`Session:${UUID.replaceAll("-", "")}`)],
    ["a uuid with a tail", b64(`Session:${UUID}:x`)],
    ["a caller's session_id", b64("Session:chat-1")],
    ["bytes that are not UTF-8", Buffer.from([0xff, 0xfe, 0x3a, 0x00]).toString("base64url")],
  ])("reject %s as not a valid id of the expected kind", (_name, id) => {
    const err = invalidInput(() => decodeGlobalId("Session", id, "ids[3]"));
    expect(err.field).toBe("ids[3]");
    expect(err.reason).toBe("not a valid Session id");
  });

  it("are stable: the same uuid always gives the same id", () => {
    expect(encodeGlobalId("Session", UUID)).toBe(encodeGlobalId("Session", UUID));
    expect(encodeGlobalId("Session", UUID)).not.toBe(encodeGlobalId("Trace", UUID));
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
