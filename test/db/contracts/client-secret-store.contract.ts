/**
 * The ClientSecretStore contract (src/domain/client-secret-store.ts): a session as its client secret
 * sees it, read fresh, and the session's shared per-minute window.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { newUuid } from "../../../src/domain/ids.js";
import { insertSession, newNamespace, useStores, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeClientSecretStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`ClientSecretStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const secrets = () => ctx.stores.clientSecrets;
    /** How a client secret names its session: by its namespace and uuid. */
    const keyOf = (s: { namespaceId: string; uuid: string }) => ({ namespaceId: s.namespaceId, uuid: s.uuid });

    it("finds a session with its namespace, secret hash, limit, and as usable while active", async () => {
      const ns = await newNamespace(ctx.stores);
      const hash = randomBytes(32);
      const s = await insertSession(ctx.stores, ns.id, { clientSecretHash: hash, maxRequestsPerMinute: 7 });
      const found = await secrets().find(keyOf(s));
      expect(found).toEqual({ sessionUuid: s.uuid, externalId: s.sessionId, namespaceId: ns.id, namespace: ns.name, secretHash: hash, usable: true, maxRequestsPerMinute: 7 });
    });

    it("returns undefined for a session that does not exist, or is not in the namespace named", async () => {
      const [ns, other] = [await newNamespace(ctx.stores), await newNamespace(ctx.stores)];
      const s = await insertSession(ctx.stores, ns.id);
      expect(await secrets().find({ namespaceId: ns.id, uuid: newUuid() })).toBeUndefined();
      expect(await secrets().find({ namespaceId: other.id, uuid: s.uuid })).toBeUndefined();
      expect(await secrets().find({ namespaceId: newUuid(), uuid: s.uuid })).toBeUndefined();
      expect(await secrets().find({ uuid: newUuid() })).toBeUndefined();
    });

    it("finds a session by its uuid alone too (client secrets of the old form), as by its namespace and uuid", async () => {
      const ns = await newNamespace(ctx.stores);
      const hash = randomBytes(32);
      const s = await insertSession(ctx.stores, ns.id, { clientSecretHash: hash, maxRequestsPerMinute: 7 });
      const found = await secrets().find({ uuid: s.uuid });
      expect(found).toEqual({ sessionUuid: s.uuid, externalId: s.sessionId, namespaceId: ns.id, namespace: ns.name, secretHash: hash, usable: true, maxRequestsPerMinute: 7 });
      expect(await secrets().find(keyOf(s))).toEqual(found);
    });

    it("sees a new secret, and none once revoked, at once", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      expect((await secrets().find(keyOf(s)))?.secretHash).toBeNull();
      const hash = randomBytes(32);
      await ctx.stores.sessions.update(s, { clientSecretHash: hash });
      expect((await secrets().find(keyOf(s)))?.secretHash).toEqual(hash);
      await ctx.stores.sessions.update(s, { clientSecretHash: null });
      expect((await secrets().find(keyOf(s)))?.secretHash).toBeNull();
    });

    it("is not usable once cancelled or soft-deleted, and usable again when restored", async () => {
      const ns = await newNamespace(ctx.stores);
      const [cancelled, deleted] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
      await ctx.stores.sessions.update(cancelled, { state: "cancelled" });
      await ctx.stores.sessions.update(deleted, { deleteTime: "now" });
      expect((await secrets().find(keyOf(cancelled)))?.usable).toBe(false);
      expect((await secrets().find(keyOf(deleted)))?.usable).toBe(false);
      await ctx.stores.sessions.update(deleted, { deleteTime: null });
      expect((await secrets().find(keyOf(deleted)))?.usable).toBe(true);
    });

    it("is not usable past the expire time, and usable again once it is extended", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id, { expiresAfterMs: 1 });
      await vi.waitFor(async () => expect((await secrets().find(keyOf(s)))?.usable).toBe(false), { timeout: 5000, interval: 5 });
      await ctx.stores.sessions.update(s, { expiresAfterMs: 60_000 });
      expect((await secrets().find(keyOf(s)))?.usable).toBe(true);
    });

    it("admits `limit` requests a minute, then says how long until a slot frees up", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      for (let i = 0; i < 3; i++) expect(await secrets().admit(s, 3)).toBe(0);
      const wait = await secrets().admit(s, 3);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(60_000);
      // A refused request takes no slot; a higher limit admits into the same window.
      expect(await secrets().admit(s, 4)).toBe(0);
      expect(await secrets().admit(s, 4)).toBeGreaterThan(0);
    });

    it("keeps one window per session", async () => {
      const ns = await newNamespace(ctx.stores);
      const [a, b] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
      expect(await secrets().admit(a, 1)).toBe(0);
      expect(await secrets().admit(a, 1)).toBeGreaterThan(0);
      expect(await secrets().admit(b, 1)).toBe(0);
    });

    it("admits exactly `limit` of many concurrent requests", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      const waits = await Promise.all(Array.from({ length: 12 }, () => secrets().admit(s, 5)));
      expect(waits.filter((w) => w === 0)).toHaveLength(5);
      for (const w of waits.filter((w) => w !== 0)) expect(w).toBeGreaterThan(0);
    });
  });
}
