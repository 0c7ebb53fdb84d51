import { describe, expect, it } from "vitest";
import { hashSecret } from "../../src/domain/access.js";
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

describe("SESSIOND_BOOTSTRAP_ADMIN_KEY", () => {
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

  it("are read once when many calls find the entry stale at the same time", async () => {
    const { key, secret } = await ctx.services.apiKeys.create({ displayName: "busy", role: "writer", namespace: "", expiresAfterMs: undefined, createdBy: "test" });
    const stores = createStores(ctx.db.dataSource);
    let reads = 0;
    const keys = { ...stores.keys, find: (uuid: string) => (reads++, stores.keys.find(uuid)) };
    let clock = Date.now();
    const credentials = createCredentials({ keys, clientSecrets: stores.clientSecrets, now: () => clock });
    const many = () => Promise.all(Array.from({ length: 64 }, () => credentials.authenticate(secret)));
    expect((await many()).every((p) => p.kind === "key" && p.keyUuid === key.uuid)).toBe(true);
    expect(reads).toBe(1);
    clock += KEY_CACHE_MS + 1;
    await many();
    expect(reads).toBe(2);
  });

  it("are not cached from a read that a forget() (a revocation here) overtook", async () => {
    const { secret } = await ctx.services.apiKeys.create({ displayName: "racing", role: "reader", namespace: "", expiresAfterMs: undefined, createdBy: "test" });
    const stores = createStores(ctx.db.dataSource);
    let reads = 0;
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const keys = { ...stores.keys, find: async (uuid: string) => (reads++, reads === 1 && (await gate), stores.keys.find(uuid)) };
    const credentials = createCredentials({ keys, clientSecrets: stores.clientSecrets });
    const first = credentials.authenticate(secret);
    credentials.forget();
    release();
    await first;
    await credentials.authenticate(secret);
    expect(reads).toBe(2);
  });
});
