/**
 * The Stores contract (src/domain/stores.ts): one transaction across every store, and what stays
 * outside it.
 */
import { describe, expect, it } from "vitest";
import { AlreadyExistsError, DomainError, GoneError } from "../../../src/domain/errors.js";
import { appendTurns, bind, insertSession, keyValues, newNamespace, record, sessionValues, span, traceId, turn, unique, useStores, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeStoresContract(name: string, makeStores: StoresFactory): void {
  describe(`Stores contract (${name})`, () => {
    const ctx = useStores(makeStores);

    it("commits the writes of every store together when the work returns, and returns its value", async () => {
      const ns = await newNamespace(ctx.stores);
      const v = sessionValues(ns.id);
      const k = keyValues(ns.id);
      const out = await ctx.stores.transaction(async (tx) => {
        const s = await tx.sessions.insert(v);
        await tx.sessions.find({ uuid: s.uuid }, true);
        await tx.conversations.bind({ namespaceId: ns.id, sessionUuid: s.uuid, participantId: "p", kind: "user", displayName: "", metadata: {} });
        await tx.keys.insert(k);
        return 42;
      });
      expect(out).toBe(42);
      expect((await ctx.stores.sessions.find({ uuid: v.uuid }))?.stats.participantCount).toBe(1);
      expect(await ctx.stores.conversations.participant(v, "p")).toBeDefined();
      expect(await ctx.stores.keys.find(k.uuid)).toBeDefined();
    });

    it("rolls back the writes of every store when the work throws, and rethrows its error as it was", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      await bind(ctx.stores, s, "u");
      const v = sessionValues(ns.id);
      const k = keyValues(ns.id);
      const boom = new Error("boom");
      await expect(
        ctx.stores.transaction(async (tx) => {
          await tx.sessions.insert(v);
          await tx.keys.insert(k);
          await tx.conversations.append({ namespaceId: s.namespaceId, uuid: s.uuid }, [turn("u")], { defaultRoles: { user: "user", agent: "assistant", system: "system", tool: "tool" } });
          await tx.namespaces.insert(unique("rolled-back"));
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ctx.stores.sessions.find({ uuid: v.uuid })).toBeUndefined();
      expect(await ctx.stores.keys.find(k.uuid)).toBeUndefined();
      expect(await ctx.stores.conversations.turns({ session: s, afterSeq: 0, limit: 10 })).toEqual([]);
      expect((await ctx.stores.sessions.find({ uuid: s.uuid }))?.stats.turnCount).toBe(0);
      // Numbering resumes where the committed turns left it: the rolled-back turn left no gap.
      expect(await appendTurns(ctx.stores, s, [turn("u")])).toEqual([1]);
    });

    it("rolls back when a store's own error ends the work, and surfaces it as a domain error", async () => {
      const ns = await newNamespace(ctx.stores);
      const taken = await insertSession(ctx.stores, ns.id);
      const v = sessionValues(ns.id);
      const err = await ctx.stores
        .transaction(async (tx) => {
          await tx.sessions.insert(v);
          await tx.sessions.insert(sessionValues(ns.id, { externalId: taken.sessionId }));
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(AlreadyExistsError);
      expect(err).toBeInstanceOf(DomainError);
      expect(await ctx.stores.sessions.find({ uuid: v.uuid })).toBeUndefined();
    });

    it("runs a nested transaction inside the outer one: its writes are seen there and rolled back with it", async () => {
      const ns = await newNamespace(ctx.stores);
      const v = sessionValues(ns.id);
      await expect(
        ctx.stores.transaction(async (tx) => {
          await tx.transaction((inner) => inner.sessions.insert(v));
          expect(await tx.sessions.find({ uuid: v.uuid })).toBeDefined();
          throw new Error("outer fails");
        }),
      ).rejects.toThrow("outer fails");
      expect(await ctx.stores.sessions.find({ uuid: v.uuid })).toBeUndefined();
    });

    it("hides uncommitted writes from the pool until commit", async () => {
      const ns = await newNamespace(ctx.stores);
      const v = sessionValues(ns.id);
      await ctx.stores.transaction(async (tx) => {
        await tx.sessions.insert(v);
        expect(await ctx.stores.sessions.find({ uuid: v.uuid })).toBeUndefined();
      });
      expect(await ctx.stores.sessions.find({ uuid: v.uuid })).toBeDefined();
    });

    it("keeps bulk deletes on the pool: a batch inside a transaction that rolls back stays done", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      await expect(
        ctx.stores.transaction(async (tx) => {
          expect(await tx.bulkDeletes.deleteBatch(ns.id, { kind: "uuid", values: [s.uuid] }, { dryRun: false, purgeMemories: false })).toHaveLength(1);
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      expect(await ctx.stores.sessions.find({ uuid: s.uuid })).toBeUndefined();
    });

    it("forgets a deleted namespace's id when told to, so the name resolves afresh", async () => {
      const ns = await newNamespace(ctx.stores);
      await ctx.stores.namespaces.delete(ns.id);
      ctx.stores.forgetNamespace(ns.name);
      expect(await ctx.stores.sessions.namespaceId(ns.name, false)).toBeUndefined();
      expect(await ctx.stores.bulkDeletes.namespaceId(ns.name, false)).toBeUndefined();
    });

    it("reports a write that links to a namespace or session deleted meanwhile as GoneError, writing nothing", async () => {
      const ns = await newNamespace(ctx.stores);
      const s = await insertSession(ctx.stores, ns.id);
      await ctx.stores.namespaces.delete(ns.id);
      await expect(record(ctx.stores, ns.id, null, [span(traceId())])).rejects.toBeInstanceOf(GoneError);
      await expect(ctx.stores.keys.insert(keyValues(ns.id))).rejects.toBeInstanceOf(GoneError);
      await expect(
        ctx.stores.transaction((tx) => tx.conversations.bind({ namespaceId: ns.id, sessionUuid: s.uuid, participantId: "p", kind: "user", displayName: "", metadata: {} })),
      ).rejects.toBeInstanceOf(GoneError);
      expect(await ctx.stores.keys.list({ namespaceId: ns.id, showRevoked: true, limit: 10 })).toEqual([]);
    });
  });
}
