/**
 * The NamespaceStore contract (src/domain/namespace-store.ts): namespaces, and deleting one with all it
 * still holds.
 */
import { describe, expect, it } from "vitest";
import { AlreadyExistsError } from "../../../src/domain/errors.js";
import type { Namespace } from "../../../src/domain/namespace-store.js";
import { allPages, bind, fillSession, insertSession, integrate, keyValues, memory, record, span, traceId, unique, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeNamespaceStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`NamespaceStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const namespaces = () => ctx.stores.namespaces;

    it("inserts a namespace and finds it by name", async () => {
      const n = unique("ns");
      const made = await namespaces().insert(n);
      expect(made.name).toBe(n);
      expect(made.uuid).toBeTypeOf("string");
      expect(made.createTime).toBeInstanceOf(Date);
      expect(await namespaces().find(n)).toEqual(made);
      expect(await ctx.stores.sessions.namespaceId(n, false)).toBe(made.uuid);
    });

    it("refuses a name that exists (AlreadyExistsError)", async () => {
      const n = unique("dup");
      await namespaces().insert(n);
      await expect(namespaces().insert(n)).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("returns undefined for a name never created", async () => {
      expect(await namespaces().find(unique("never"))).toBeUndefined();
    });

    it("lists namespaces oldest first, in pages with no gap or repeat", async () => {
      const made: Namespace[] = [];
      for (let i = 0; i < 5; i++) made.push(await namespaces().insert(unique("list")));
      const pages = await allPages<Namespace>(3, (after) => namespaces().list(after && { createTime: after.createTime, uuid: after.uuid }, 3));
      const listed = uuids(pages.flat());
      expect(new Set(listed).size).toBe(listed.length);
      expect(pages.slice(0, -1).every((p) => p.length === 3)).toBe(true);
      // The ones made here come last, in the order they were made.
      expect(listed.slice(-5)).toEqual(uuids(made));
      const last = made[4];
      expect(await namespaces().list({ createTime: last.createTime, uuid: last.uuid }, 10)).toEqual([]);
    });

    it("deletes a namespace with its sessions, memories, traces and keys, and counts what went besides the sessions", async () => {
      const n = await namespaces().insert(unique("doomed"));
      const keep = await namespaces().insert(unique("kept"));
      const s = await insertSession(ctx.stores, n.uuid);
      const filled = await fillSession(ctx.stores, s, { participants: 1, turnsPerParticipant: 2, traces: 2, spansPerTrace: 2, memories: 3 });
      const loose = traceId();
      await record(ctx.stores, n.uuid, null, [span(loose)]);
      const key = await ctx.stores.keys.insert(keyValues(n.uuid));
      const keptSession = await insertSession(ctx.stores, keep.uuid);
      await bind(ctx.stores, keptSession, "p1");
      await integrate(ctx.stores, keptSession, "p1", [memory()]);
      const keptKey = await ctx.stores.keys.insert(keyValues(keep.uuid));

      const gone = await namespaces().delete(n.uuid);
      expect(gone).toEqual({ namespace: n, memories: filled.memories, traces: filled.traces + 1, apiKeys: 1 });
      expect(await namespaces().find(n.name)).toBeUndefined();
      expect(await ctx.stores.sessions.find({ uuid: s.uuid })).toBeUndefined();
      expect(await ctx.stores.conversations.participants(s)).toEqual([]);
      expect(await ctx.stores.memories.list(n.uuid, {}, undefined, 10)).toEqual([]);
      expect(await ctx.stores.traces.get(n.uuid, loose)).toBeUndefined();
      expect(await ctx.stores.keys.find(key.uuid)).toBeUndefined();
      // Another namespace keeps what it holds.
      expect(await ctx.stores.sessions.find({ uuid: keptSession.uuid })).toBeDefined();
      expect(await ctx.stores.memories.list(keep.uuid, {}, undefined, 10)).toHaveLength(1);
      expect(await ctx.stores.keys.find(keptKey.uuid)).toBeDefined();
    });

    it("returns undefined when deleting a namespace already gone", async () => {
      const n = await namespaces().insert(unique("twice"));
      expect(await namespaces().delete(n.uuid)).toBeDefined();
      expect(await namespaces().delete(n.uuid)).toBeUndefined();
    });

    it("lets a deleted namespace's name be created again, as a new namespace", async () => {
      const n = await namespaces().insert(unique("reborn"));
      await namespaces().delete(n.uuid);
      ctx.stores.forgetNamespace(n.name);
      expect(await ctx.stores.sessions.namespaceId(n.name, false)).toBeUndefined();
      const again = await namespaces().insert(n.name);
      expect(again.uuid).not.toBe(n.uuid);
      expect(await ctx.stores.sessions.namespaceId(n.name, false)).toBe(again.uuid);
    });
  });
}
