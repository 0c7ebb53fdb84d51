import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashSecret, newSecret, parseSecret, roleAllows, secretMatches, secretPrefix, type Role } from "../../src/domain/access.js";
import { newUuid } from "../../src/domain/ids.js";

const ROLES: Role[] = ["reader", "writer", "admin"];

describe("roles", () => {
  it.each([
    ["reader", ["reader"]],
    ["writer", ["reader", "writer"]],
    ["admin", ["reader", "writer", "admin"]],
  ] as [Role, Role[]][])("%s allows exactly %j", (held, allowed) => {
    expect(ROLES.filter((needed) => roleAllows(held, needed))).toEqual(allowed);
  });
});

describe("secrets", () => {
  it("name what they unlock and carry 256 random bits", () => {
    const uuid = crypto.randomUUID();
    const a = newSecret("sk", uuid);
    expect(a).toMatch(/^sk_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$/);
    expect(parseSecret(a)).toEqual({ kind: "sk", uuid });
    expect(parseSecret(newSecret("cs", uuid))).toEqual({ kind: "cs", uuid });
    expect(newSecret("sk", uuid)).not.toBe(a);
    expect(parseSecret("a-bootstrap-secret-of-forty-characters!!")).toEqual({ kind: "other" });
    expect(parseSecret(`${a}x`)).toEqual({ kind: "other" });
  });

  it("give back the uuid of a time-ordered id, and never parse a secret of another shape", () => {
    const uuid = newUuid();
    const secret = newSecret("cs", uuid);
    expect(parseSecret(secret)).toEqual({ kind: "cs", uuid });
    for (const other of ["", secret.replace(/^cs_/, "xx_"), secret.replace(/^cs_/, "CS_"), secret.slice(0, -1), secret.replace(/_/g, "-"), ` ${secret}`, `Bearer ${secret}`]) {
      expect(parseSecret(other), other).toEqual({ kind: "other" });
    }
  });

  it("show an 11-character prefix in lists: the kind and the start of the id, none of the random part", () => {
    for (const kind of Array.from({ length: 100 }, (_, i) => (i % 2 ? "sk" : "cs") as "sk" | "cs")) {
      const secret = newSecret(kind, newUuid());
      // kind _ 22 characters of id _ 43 random characters (base64url: the parts may hold "_" themselves)
      const id = secret.slice(3, 25);
      expect(secretPrefix(secret)).toBe(`${kind}_${id.slice(0, 8)}`);
    }
  });

  it("are stored as their SHA-256 digests", () => {
    const secret = newSecret("sk", newUuid());
    expect(hashSecret(secret)).toEqual(createHash("sha256").update(secret).digest());
    expect(hashSecret("é")).toEqual(createHash("sha256").update(Buffer.from("é", "utf8")).digest());
    expect(hashSecret(secret)).toHaveLength(32);
  });

  it("are compared by their SHA-256 digests, so a near miss is as wrong as a far one and any length is safe", () => {
    const secret = newSecret("sk", crypto.randomUUID());
    const stored = hashSecret(secret);
    expect(secretMatches(secret, stored)).toBe(true);
    const lastCharOff = secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A");
    const firstCharOff = (secret.startsWith("t") ? "u" : "t") + secret.slice(1);
    for (const wrong of [lastCharOff, firstCharOff, secret.slice(0, 10), `${secret}${secret}`, "", "x".repeat(10_000)]) {
      expect(secretMatches(wrong, stored)).toBe(false);
    }
    // Nothing stored (revoked client secret, unknown key): rejected, through the same comparison.
    expect(secretMatches(secret, null)).toBe(false);
    expect(secretMatches(secret, undefined)).toBe(false);
    expect(secretMatches(secret, Buffer.alloc(5))).toBe(false);
    // A stored digest of zeros is never matched by "no digest".
    expect(secretMatches(secret, Buffer.alloc(32))).toBe(false);
  });
});
