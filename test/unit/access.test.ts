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
    const [uuid, namespaceId] = [crypto.randomUUID(), crypto.randomUUID()];
    const a = newSecret("sk", uuid);
    expect(a).toMatch(/^sk_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$/);
    expect(parseSecret(a)).toEqual({ kind: "sk", uuid });
    expect(parseSecret(newSecret("cs", uuid, namespaceId))).toEqual({ kind: "cs", uuid, namespaceId });
    expect(newSecret("sk", uuid)).not.toBe(a);
    expect(newSecret("cs", uuid, namespaceId)).not.toBe(newSecret("cs", uuid, namespaceId));
    expect(parseSecret("a-bootstrap-secret-of-forty-characters!!")).toEqual({ kind: "other" });
    expect(parseSecret(`${a}x`)).toEqual({ kind: "other" });
  });

  it("make a client secret of the namespace uuid then the session uuid (32 bytes), and give both back", () => {
    const [uuid, namespaceId] = [newUuid(), newUuid()];
    const secret = newSecret("cs", uuid, namespaceId);
    expect(secret).toMatch(/^cs_[A-Za-z0-9_-]{43}_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret.slice(3, 46), "base64url").toString("hex")).toBe(`${namespaceId}${uuid}`.replaceAll("-", ""));
    expect(parseSecret(secret)).toEqual({ kind: "cs", uuid, namespaceId });
    for (const other of ["", secret.replace(/^cs_/, "xx_"), secret.replace(/^cs_/, "CS_"), secret.replace(/^cs_/, "sk_"), secret.slice(0, -1), secret.replace(/_/g, "-"), ` ${secret}`, `Bearer ${secret}`]) {
      expect(parseSecret(other), other).toEqual({ kind: "other" });
    }
  });

  it("still read a client secret of the old form (the session uuid alone, 16 bytes), without a namespace", () => {
    const uuid = newUuid();
    const old = `cs_${Buffer.from(uuid.replaceAll("-", ""), "hex").toString("base64url")}_${"R".repeat(43)}`;
    const parsed = parseSecret(old);
    expect(parsed).toEqual({ kind: "cs", uuid });
    expect(parsed.kind === "cs" && parsed.namespaceId).toBeUndefined();
    for (const other of [old.slice(0, -1), old.replace(/^cs_/, "xx_"), `cs_${"A".repeat(23)}_${"R".repeat(43)}`, `cs_${"A".repeat(42)}_${"R".repeat(43)}`, `sk_${"A".repeat(43)}_${"R".repeat(43)}`]) {
      expect(parseSecret(other), other).toEqual({ kind: "other" });
    }
  });

  it("show an 11-character prefix in lists: the kind and the start of the id, none of the random part", () => {
    for (let i = 0; i < 100; i++) {
      const [kind, secret] = i % 2 ? ["sk", newSecret("sk", newUuid())] : ["cs", newSecret("cs", newUuid(), newUuid())];
      // kind _ 22 (sk) or 43 (cs) characters of id _ 43 random characters (base64url: the parts may hold "_" themselves)
      const id = secret.slice(3, kind === "sk" ? 25 : 46);
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
