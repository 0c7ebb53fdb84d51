import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { newUuid } from "../../src/domain/ids.js";
import { decodeSearchToken, encodeSearchToken, fingerprint } from "../../src/domain/page-token.js";
import { checkQuery, MAX_QUERY_BYTES } from "../../src/domain/turn-search.js";
import { InvalidInputError } from "../../src/domain/errors.js";

const FP = fingerprint({ namespace: "default", query: "deploy" });

/** A token with a chosen payload and a correct checksum. */
function forge(payload: unknown): string {
  const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${body}.${createHash("sha256").update(body).digest("base64url").slice(0, 12)}`;
}

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidInputError) return err.message.split(":")[0];
    throw err;
  }
  throw new Error("expected InvalidInputError");
}

describe("search page tokens", () => {
  it("carry the last hit's rank (a float4 as Postgres sends it), session and seq, exactly", () => {
    const cursor = { rank: 0.0607927, sessionUuid: newUuid(), seq: 42 };
    expect(decodeSearchToken(encodeSearchToken(cursor, FP), FP)).toEqual(cursor);
  });

  it("are refused for another query, and when forged with a bad position, naming page_token", () => {
    const token = encodeSearchToken({ rank: 0.5, sessionUuid: newUuid(), seq: 1 }, FP);
    expect(() => decodeSearchToken(token, fingerprint({ namespace: "default", query: "release" }))).toThrow(/^page_token: was issued for a different request/);
    for (const bad of [{ r: "x", u: newUuid(), s: 1 }, { r: 1, u: "nope", s: 1 }, { r: 1, u: newUuid(), s: -1 }, { r: null, u: newUuid(), s: 1 }]) {
      expect(() => decodeSearchToken(forge({ v: 1, ...bad, q: FP }), FP)).toThrow(/^page_token: malformed/);
    }
  });
});

describe("checkQuery", () => {
  it("trims, and refuses empty, blank, oversized or NUL-carrying queries naming query", () => {
    expect(checkQuery("  deploy  ")).toBe("deploy");
    expect(checkQuery("x".repeat(MAX_QUERY_BYTES))).toHaveLength(MAX_QUERY_BYTES);
    for (const q of ["", " \t ", "x".repeat(MAX_QUERY_BYTES + 1), "é".repeat(MAX_QUERY_BYTES / 2 + 1), "a\u0000b"]) expect(fieldOf(() => checkQuery(q))).toBe("query");
  });
});
