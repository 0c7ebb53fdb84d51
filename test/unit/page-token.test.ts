import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newUuid } from "../../src/domain/ids.js";
import { decodePageToken, decodeSeqToken, encodePageToken, encodeSeqToken, fingerprint, pageOf, type Cursor } from "../../src/domain/page-token.js";
import { T0, invalidInput } from "./support/factories.js";

const LIST = fingerprint({ namespace: "default", filter: { user: "alice" }, order: "asc", showDeleted: false });
const cursor = (over: Partial<Cursor> = {}): Cursor => ({ createTime: T0, uuid: newUuid(), ...over });

/** Splits a token into its payload (parsed) and checksum. */
function open(token: string): { payload: Record<string, unknown>; check: string } {
  const [payload, check] = token.split(".");
  return { payload: JSON.parse(Buffer.from(payload, "base64url").toString("utf8")), check };
}

/** A token with a chosen payload and a correct checksum, as anyone who read page-token.ts could make. */
function forge(payload: unknown): string {
  const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${body}.${createHash("sha256").update(body).digest("base64url").slice(0, 12)}`;
}

describe("fingerprint", () => {
  it("is 16 base64url characters and the same for equal parameters", () => {
    const a = fingerprint({ namespace: "a", filter: { labels: { x: "1" } } });
    expect(a).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(fingerprint({ namespace: "a", filter: { labels: { x: "1" } } })).toBe(a);
  });

  it("differs when any parameter differs", () => {
    const base = { namespace: "a", filter: { user: "u" }, order: "desc", showDeleted: false };
    const variants = [
      { ...base, namespace: "b" },
      { ...base, filter: { user: "v" } },
      { ...base, filter: {} },
      { ...base, order: "asc" },
      { ...base, showDeleted: true },
    ];
    const prints = new Set([base, ...variants].map(fingerprint));
    expect(prints.size).toBe(variants.length + 1);
  });
});

describe("page tokens for (create_time, uuid) cursors", () => {
  it("give back the cursor they were made from", () => {
    const c = cursor();
    const token = encodePageToken(c, LIST);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{12}$/);
    expect(decodePageToken(token, LIST)).toEqual(c);
  });

  it("keep times before 1970 and at the limits of Date exactly", () => {
    for (const createTime of [new Date(-1), new Date(0), new Date("0001-01-01T00:00:00.000Z"), new Date(8.64e15), new Date(-8.64e15)]) {
      const c = cursor({ createTime });
      expect(decodePageToken(encodePageToken(c, LIST), LIST)).toEqual(c);
    }
  });

  it("carry the request's fingerprint, so they are not interchangeable between requests", () => {
    const c = cursor();
    expect(open(encodePageToken(c, LIST)).payload).toEqual({ v: 1, t: T0.getTime(), u: c.uuid, q: LIST });
  });

  it("rejects a page token made for another filter, naming page_token and what must not change", () => {
    const token = encodePageToken(cursor(), LIST);
    const other = fingerprint({ namespace: "default", filter: { user: "bob" }, order: "asc", showDeleted: false });
    const err = invalidInput(() => decodePageToken(token, other));
    expect(err.field).toBe("page_token");
    expect(err.reason).toBe("was issued for a different request; keep namespace, filter, order and show_deleted unchanged while paging");
    expect(err.message).toBe(`page_token: ${err.reason}`);
  });

  it("names the parameters the caller passes as what must stay unchanged", () => {
    const token = encodePageToken(cursor(), LIST);
    expect(invalidInput(() => decodePageToken(token, fingerprint({}), "target and page_size")).reason).toBe("was issued for a different request; keep target and page_size unchanged while paging");
  });

  it.each([
    ["an empty token", ""],
    ["a token without a checksum", "eyJ2IjoxfQ"],
    ["a token with three parts", "a.b.c"],
    ["a payload that is not base64url JSON", "%%%.abcdefghijkl"],
    ["a token longer than 512 characters", `${"a".repeat(520)}.abcdefghijkl`],
  ])("rejects %s as malformed, naming page_token", (_name, token) => {
    const err = invalidInput(() => decodePageToken(token, LIST));
    expect(err.field).toBe("page_token");
    expect(err.reason).toBe("malformed or altered; pass next_page_token back unchanged");
  });

  it("rejects a token whose payload was altered (checksum mismatch)", () => {
    const token = encodePageToken(cursor(), LIST);
    const [payload, check] = token.split(".");
    const changed = Buffer.from(JSON.stringify({ ...open(token).payload, t: 0 })).toString("base64url");
    expect(invalidInput(() => decodePageToken(`${changed}.${check}`, LIST)).reason).toMatch(/^malformed or altered/);
    const flipped = (payload.startsWith("A") ? "B" : "A") + payload.slice(1);
    expect(invalidInput(() => decodePageToken(`${flipped}.${check}`, LIST)).field).toBe("page_token");
  });

  it("rejects a token whose checksum was altered", () => {
    const token = encodePageToken(cursor(), LIST);
    const last = token.at(-1) === "A" ? "B" : "A";
    expect(invalidInput(() => decodePageToken(token.slice(0, -1) + last, LIST)).field).toBe("page_token");
  });

  it.each([
    ["another version", { v: 2, t: 0, u: "0190a5d2-7c3e-7abc-8def-0123456789ab", q: LIST }],
    ["a time that is not a number", { v: 1, t: "0", u: "0190a5d2-7c3e-7abc-8def-0123456789ab", q: LIST }],
    ["a fractional time", { v: 1, t: 1.5, u: "0190a5d2-7c3e-7abc-8def-0123456789ab", q: LIST }],
    ["a time beyond what Date holds", { v: 1, t: 8.64e15 + 1, u: "0190a5d2-7c3e-7abc-8def-0123456789ab", q: LIST }],
    ["an uppercase uuid", { v: 1, t: 0, u: "0190A5D2-7C3E-7ABC-8DEF-0123456789AB", q: LIST }],
    ["a uuid that is not one", { v: 1, t: 0, u: "' OR 1=1 --", q: LIST }],
    ["no uuid", { v: 1, t: 0, q: LIST }],
    ["JSON null", null],
  ])("rejects a correctly sealed token with %s as malformed", (_name, payload) => {
    const err = invalidInput(() => decodePageToken(forge(payload), LIST));
    expect(err.field).toBe("page_token");
    expect(err.reason).toMatch(/^malformed or altered/);
  });

  it("accepts a forged-but-valid token: tokens are positions, not secrets", () => {
    const uuid = "0190a5d2-7c3e-7abc-8def-0123456789ab";
    expect(decodePageToken(forge({ v: 1, t: 42, u: uuid, q: LIST }), LIST)).toEqual({ createTime: new Date(42), uuid });
  });
});

describe("sequence-number tokens (ListTurns)", () => {
  const TURNS = fingerprint({ session: "s1", participant: "", afterSeq: 0 });

  it("give back the sequence number, 0 included", () => {
    for (const seq of [0, 1, 41, Number.MAX_SAFE_INTEGER]) expect(decodeSeqToken(encodeSeqToken(seq, TURNS), TURNS, "session")).toBe(seq);
  });

  it("rejects a token made for another listing, naming page_token and what must not change", () => {
    const err = invalidInput(() => decodeSeqToken(encodeSeqToken(3, TURNS), fingerprint({ session: "s2" }), "session, participant_id and after_seq"));
    expect(err.field).toBe("page_token");
    expect(err.reason).toBe("was issued for a different request; keep session, participant_id and after_seq unchanged while paging");
  });

  it("rejects a (create_time, uuid) token as malformed, and a seq token where a cursor is expected", () => {
    expect(invalidInput(() => decodeSeqToken(encodePageToken(cursor(), TURNS), TURNS, "session")).reason).toMatch(/^malformed/);
    expect(invalidInput(() => decodePageToken(encodeSeqToken(5, TURNS), TURNS)).reason).toMatch(/^malformed/);
  });

  it.each([
    ["a negative", -1],
    ["a fractional", 2.5],
    ["an unsafe", Number.MAX_SAFE_INTEGER + 2],
    ["a string", "7"],
  ])("rejects %s sequence number as malformed", (_name, s) => {
    expect(invalidInput(() => decodeSeqToken(forge({ v: 1, s, q: TURNS }), TURNS, "session")).field).toBe("page_token");
  });
});

describe("pageOf", () => {
  const tokenFor = (n: number) => `after-${n}`;

  it("keeps `limit` rows and makes a token from the last one kept when one more row was fetched", () => {
    expect(pageOf([1, 2, 3, 4], 3, tokenFor)).toEqual({ items: [1, 2, 3], nextPageToken: "after-3" });
  });

  it("gives no token on the last page, whether full or short", () => {
    expect(pageOf([1, 2, 3], 3, tokenFor)).toEqual({ items: [1, 2, 3], nextPageToken: "" });
    expect(pageOf([1], 3, tokenFor)).toEqual({ items: [1], nextPageToken: "" });
    expect(pageOf([], 3, tokenFor)).toEqual({ items: [], nextPageToken: "" });
  });
});
