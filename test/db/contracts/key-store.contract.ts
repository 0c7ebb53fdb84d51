/**
 * The KeyStore contract (src/domain/key-store.ts): API keys, stored with the hash of their secret.
 */
import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { newUuid } from "../../../src/domain/ids.js";
import type { HashedApiKey } from "../../../src/domain/key-store.js";
import { allPages, keyValues, newNamespace, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeKeyStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`KeyStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const keys = () => ctx.stores.keys;
    let anyBeforeFirstKey: boolean;
    let bootstrapBeforeFirst: HashedApiKey | undefined;
    beforeAll(async () => {
      anyBeforeFirstKey = await keys().any();
      bootstrapBeforeFirst = await keys().findBootstrap();
    });

    it("says whether any key was ever made: not on empty storage, yes after the first", async () => {
      expect(anyBeforeFirstKey).toBe(false);
      await keys().insert(keyValues(null));
      expect(await keys().any()).toBe(true);
    });

    it("inserts a key and finds it by id, with its namespace, role, secret hash and prefix", async () => {
      const ns = await newNamespace(ctx.stores);
      const v = keyValues(ns.id, { role: "reader", expiresAfterMs: 60_000 });
      const k = await keys().insert(v);
      expect(k).toMatchObject({ uuid: v.uuid, namespaceId: ns.id, namespace: ns.name, displayName: v.displayName, role: "reader", secretPrefix: v.secretPrefix, createdBy: "contract-test", revokeTime: null });
      expect(Buffer.compare(k.secretHash, v.secretHash)).toBe(0);
      expect(k.expireTime!.getTime() - k.createTime.getTime()).toBe(60_000);
      expect(await keys().find(v.uuid)).toEqual(k);
    });

    it("makes a key for all namespaces without expiry when asked", async () => {
      const k = await keys().insert(keyValues(null, { role: "admin" }));
      expect(k).toMatchObject({ namespaceId: null, namespace: null, role: "admin", expireTime: null });
    });

    it("returns undefined for an id never issued", async () => {
      expect(await keys().find(newUuid())).toBeUndefined();
    });

    it("revokes a key once: the first revocation time stands; undefined for an unknown key", async () => {
      const ns = await newNamespace(ctx.stores);
      const k = await keys().insert(keyValues(ns.id));
      const revoked = await keys().revoke(k.uuid, undefined);
      expect(revoked?.uuid).toBe(k.uuid);
      expect(revoked?.revokeTime).toBeInstanceOf(Date);
      expect((await keys().revoke(k.uuid, ns.id))?.revokeTime).toEqual(revoked!.revokeTime);
      expect(await keys().find(k.uuid)).toEqual(revoked);
      expect(await keys().revoke(newUuid(), undefined)).toBeUndefined();
    });

    it("revokes within a namespace only the keys of that namespace", async () => {
      const a = await newNamespace(ctx.stores);
      const b = await newNamespace(ctx.stores);
      const k = await keys().insert(keyValues(a.id));
      const global = await keys().insert(keyValues(null));
      expect(await keys().revoke(k.uuid, b.id)).toBeUndefined();
      expect(await keys().revoke(global.uuid, a.id)).toBeUndefined();
      expect((await keys().find(k.uuid))?.revokeTime).toBeNull();
      expect((await keys().find(global.uuid))?.revokeTime).toBeNull();
      expect((await keys().revoke(k.uuid, a.id))?.revokeTime).toBeInstanceOf(Date);
    });

    it("lists a namespace's keys newest first, in pages, without revoked ones unless asked, never another namespace's", async () => {
      const a = await newNamespace(ctx.stores);
      const b = await newNamespace(ctx.stores);
      const made: HashedApiKey[] = [];
      for (let i = 0; i < 5; i++) made.push(await keys().insert(keyValues(a.id)));
      await keys().insert(keyValues(b.id));
      await keys().insert(keyValues(null));
      await keys().revoke(made[1].uuid, a.id);
      const newest = [...made].reverse();
      const pages = await allPages<HashedApiKey>(2, (after) => keys().list({ namespaceId: a.id, showRevoked: true, limit: 2, after: after && { createTime: after.createTime, uuid: after.uuid } }));
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      expect(uuids(pages.flat())).toEqual(uuids(newest));
      expect(uuids(await keys().list({ namespaceId: a.id, showRevoked: false, limit: 10 }))).toEqual(uuids(newest.filter((k) => k.uuid !== made[1].uuid)));
    });

    it("lists the keys of all namespaces when no namespace is given", async () => {
      const a = await newNamespace(ctx.stores);
      const b = await newNamespace(ctx.stores);
      const ka = await keys().insert(keyValues(a.id));
      const kb = await keys().insert(keyValues(b.id));
      const kg = await keys().insert(keyValues(null));
      const listed = await keys().list({ showRevoked: true, limit: 3 });
      expect(uuids(listed)).toEqual([kg.uuid, kb.uuid, ka.uuid]);
    });

    it("makes the bootstrap key on first upsert and gives it a new secret on later ones, un-revoked, for all namespaces", async () => {
      expect(bootstrapBeforeFirst).toBeUndefined();
      const h1 = randomBytes(32);
      const first = await keys().upsertBootstrap(h1, "sk_boot1");
      expect(first).toMatchObject({ namespaceId: null, role: "admin", expireTime: null, revokeTime: null, secretPrefix: "sk_boot1" });
      expect(await keys().findBootstrap()).toEqual(first);
      await keys().revoke(first.uuid, undefined);
      const h2 = randomBytes(32);
      const second = await keys().upsertBootstrap(h2, "sk_boot2");
      expect(second).toMatchObject({ uuid: first.uuid, role: "admin", revokeTime: null, secretPrefix: "sk_boot2" });
      expect(Buffer.compare(second.secretHash, h2)).toBe(0);
      expect(await keys().findBootstrap()).toEqual(second);
    });
  });
}
