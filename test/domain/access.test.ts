import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { hashSecret, newSecret, parseSecret, secretMatches } from "../../src/domain/access.js";
import { createCredentials, KEY_CACHE_MS } from "../../src/domain/credentials.js";
import { UnauthenticatedError } from "../../src/domain/errors.js";
import { encodeGlobalId } from "../../src/domain/ids.js";
import { createStores } from "../../src/db/repositories/stores.js";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();

/** Credentials as another server process has them: its own cache, the same database. */
function credentialsOfAnotherProcess(now?: () => number) {
  const stores = createStores(ctx.db.dataSource);
  return createCredentials({ keys: stores.keys, clientSecrets: stores.clientSecrets, now });
}

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

  it("are compared by their SHA-256 digests, so a near miss is as wrong as a far one and any length is safe", () => {
    const secret = newSecret("sk", crypto.randomUUID());
    const stored = hashSecret(secret);
    expect(stored).toEqual(createHash("sha256").update(secret).digest());
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

describe("SESSIOND_BOOTSTRAP_ADMIN_KEY", () => {
  it("is refused at start when shorter than 32 characters, without echoing it", () => {
    expect(() => loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "short-secret-value" })).toThrow(/^SESSIOND_BOOTSTRAP_ADMIN_KEY: must be at least 32 characters \(got 18\)$/);
    expect(() => loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "has a space in it and is long enough!!" })).toThrow(/printable ASCII/);
    expect(loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "x".repeat(32) }).bootstrapAdminKey).toBe("x".repeat(32));
  });

  it("makes an ADMIN key for all namespaces exist, stored hashed; a new secret replaces the old one", async () => {
    const { apiKeys } = ctx.services;
    const first = "first-bootstrap-secret-0123456789abcdef";
    const second = "second-bootstrap-secret-0123456789abcdef";
    const key = await apiKeys.ensureBootstrap(first);
    expect(key).toMatchObject({ role: "admin", namespace: null, createdBy: "bootstrap", revokeTime: null, expireTime: null });
    expect((await apiKeys.ensureBootstrap(first)).uuid).toBe(key.uuid);
    const rows = await ctx.db.sql("SELECT secret_hash, secret_prefix FROM api_keys WHERE bootstrap");
    expect(rows).toHaveLength(1);
    expect(rows[0].secret_hash).toEqual(hashSecret(first));
    expect(rows[0].secret_prefix).toBe("");

    // A fresh process (no cache) sees the change at once.
    await apiKeys.ensureBootstrap(second);
    const fresh = credentialsOfAnotherProcess();
    await expect(fresh.authenticate(first)).rejects.toBeInstanceOf(UnauthenticatedError);
    await expect(fresh.authenticate(second)).resolves.toMatchObject({ kind: "key", role: "admin", namespace: null });
  });
});

describe("API key rows cached per process", () => {
  it("are trusted for KEY_CACHE_MS, so a revocation elsewhere takes effect within it", async () => {
    const { key, secret } = await ctx.services.apiKeys.create({ displayName: "cached", role: "reader", namespace: "", expiresAfterMs: undefined, createdBy: "test" });
    let clock = Date.now();
    const other = credentialsOfAnotherProcess(() => clock);
    await expect(other.authenticate(secret)).resolves.toMatchObject({ kind: "key", keyUuid: key.uuid, role: "reader" });
    await ctx.services.apiKeys.revoke(encodeGlobalId("ApiKey", key.uuid), "");
    await expect(other.authenticate(secret)).resolves.toMatchObject({ kind: "key" });
    clock += KEY_CACHE_MS + 1;
    await expect(other.authenticate(secret)).rejects.toThrow("the credential is unknown, revoked or expired");
  });
});
