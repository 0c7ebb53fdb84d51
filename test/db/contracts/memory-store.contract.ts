/**
 * The MemoryStore contract (src/domain/memory-store.ts): memories, what an integration writes, and a
 * namespace's integrator.
 */
import { describe, expect, it } from "vitest";
import type { MemorySelector, StoredMemory } from "../../../src/domain/memory-store.js";
import type { StoredSession } from "../../../src/domain/session-model.js";
import { allPages, appendTurns, bind, insertSession, integrate, memory, newNamespace, turn, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeMemoryStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`MemoryStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const mem = () => ctx.stores.memories;
    const all = (ns: string, sel: MemorySelector = {}) => mem().list(ns, sel, undefined, 1000);

    /** A session with two bound participants, p1 (user) and p2 (agent). */
    async function session(namespaceId?: string): Promise<StoredSession> {
      const s = await insertSession(ctx.stores, namespaceId ?? (await newNamespace(ctx.stores)).id, { user: "carol" });
      await bind(ctx.stores, s, "p1", "user");
      await bind(ctx.stores, s, "p2", "agent");
      return s;
    }

    describe("writeIntegration", () => {
      it("advances the mark, appends the insights, stores the memories and counts them on the session", async () => {
        const s = await session();
        const [, last] = await appendTurns(ctx.stores, s, [turn("p1"), turn("p2")]);
        const ok = await ctx.stores.transaction((tx) =>
          tx.memories.writeIntegration({
            namespaceId: s.namespaceId,
            sessionUuid: s.uuid,
            participantId: "p2",
            fromSeq: 0,
            toSeq: last,
            insights: ["likes tea", "in Paris"],
            memories: [memory({ content: "tea", subjectParticipantId: "p1", subjectUser: "carol", metadata: { k: 1 } })],
          }),
        );
        expect(await ctx.stores.conversations.participant(s, "p2")).toMatchObject({ lastIntegratedSeq: last, insights: ["likes tea", "in Paris"] });
        expect(await ctx.stores.conversations.participant(s, "p1")).toMatchObject({ lastIntegratedSeq: 0, insights: [] });
        const [m] = await all(s.namespaceId);
        // The ids of the memories stored.
        expect(ok).toEqual([m.uuid]);
        expect(m).toMatchObject({ sourceSessionUuid: s.uuid, subjectParticipantId: "p1", subjectUser: "carol", content: "tea", metadata: { k: 1 }, integratedBy: "p2" });
        expect(m.createTime).toBeInstanceOf(Date);
        expect((await ctx.stores.sessions.find({ uuid: s.uuid }))?.stats.memoriesExtracted).toBe(1);
        // Insights accumulate over integrations.
        await integrate(ctx.stores, s, "p2", [], ["third"]);
        expect((await ctx.stores.conversations.participant(s, "p2"))?.insights).toEqual(["likes tea", "in Paris", "third"]);
      });

      it("writes nothing and returns false when the mark moved meanwhile", async () => {
        const s = await session();
        expect(await integrate(ctx.stores, s, "p1", [memory()], ["first"])).toHaveLength(1);
        const p = await ctx.stores.conversations.participant(s, "p1");
        const [seq] = await appendTurns(ctx.stores, s, [turn("p1")]);
        const stale = await ctx.stores.transaction((tx) =>
          tx.memories.writeIntegration({ namespaceId: s.namespaceId, sessionUuid: s.uuid, participantId: "p1", fromSeq: 0, toSeq: seq, insights: ["stale"], memories: [memory()] }),
        );
        expect(stale).toBe(false);
        expect(await ctx.stores.conversations.participant(s, "p1")).toEqual(p);
        expect(await all(s.namespaceId)).toHaveLength(1);
        expect((await ctx.stores.sessions.find({ uuid: s.uuid }))?.stats.memoriesExtracted).toBe(1);
      });

      it("writes nothing and returns false when the last integrated turn no longer exists (truncated)", async () => {
        const s = await session();
        const [seq] = await appendTurns(ctx.stores, s, [turn("p1")]);
        await ctx.stores.transaction(async (tx) => {
          await tx.sessions.find({ uuid: s.uuid }, true);
          await tx.sessions.truncate(s);
        });
        const ok = await ctx.stores.transaction((tx) =>
          tx.memories.writeIntegration({ namespaceId: s.namespaceId, sessionUuid: s.uuid, participantId: "p1", fromSeq: 0, toSeq: seq, insights: ["x"], memories: [memory()] }),
        );
        expect(ok).toBe(false);
        expect(await ctx.stores.conversations.participant(s, "p1")).toMatchObject({ lastIntegratedSeq: 0, insights: [] });
        expect(await all(s.namespaceId)).toEqual([]);
      });

      it("counts integration runs on the session", async () => {
        const s = await session();
        await mem().countIntegration(s);
        await mem().countIntegration(s);
        expect((await ctx.stores.sessions.find({ uuid: s.uuid }))?.stats.integrationCount).toBe(2);
      });
    });

    describe("list and delete", () => {
      it("lists newest first and pages with no gap or repeat", async () => {
        const s = await session();
        const batches: StoredMemory[][] = [];
        for (let i = 0; i < 3; i++) {
          await integrate(ctx.stores, s, "p1", [memory(), memory()]);
          batches.push(await all(s.namespaceId));
        }
        const everything = await all(s.namespaceId);
        expect(everything).toHaveLength(6);
        // Each integration's memories come before the earlier ones'.
        expect(uuids(everything.slice(2))).toEqual(uuids(batches[1]));
        expect(uuids(everything.slice(4))).toEqual(uuids(batches[0]));
        for (let i = 1; i < everything.length; i++) expect(everything[i].createTime.getTime()).toBeLessThanOrEqual(everything[i - 1].createTime.getTime());
        const pages = await allPages<StoredMemory>(4, (after) => mem().list(s.namespaceId, {}, after && { createTime: after.createTime, uuid: after.uuid }, 4));
        expect(pages.map((p) => p.length)).toEqual([4, 2]);
        expect(uuids(pages.flat())).toEqual(uuids(everything));
      });

      it("selects by ids, source session, subject participant and subject user, all set fields together", async () => {
        const ns = await newNamespace(ctx.stores);
        const [s1, s2] = [await session(ns.id), await session(ns.id)];
        await integrate(ctx.stores, s1, "p1", [memory({ content: "a", subjectParticipantId: "p1", subjectUser: "carol" }), memory({ content: "b", subjectParticipantId: "p2", subjectUser: "" })]);
        await integrate(ctx.stores, s2, "p2", [memory({ content: "c", subjectParticipantId: "p1", subjectUser: "dave" })]);
        const contents = async (sel: MemorySelector) => (await all(ns.id, sel)).map((m) => m.content).sort();
        const byContent = new Map((await all(ns.id)).map((m) => [m.content, m.uuid]));
        expect(await contents({})).toEqual(["a", "b", "c"]);
        expect(await contents({ sourceSessionUuid: s1.uuid })).toEqual(["a", "b"]);
        expect(await contents({ subjectParticipantId: "p1" })).toEqual(["a", "c"]);
        expect(await contents({ subjectUser: "dave" })).toEqual(["c"]);
        expect(await contents({ ids: [byContent.get("a")!, byContent.get("c")!] })).toEqual(["a", "c"]);
        expect(await contents({ ids: [byContent.get("a")!, byContent.get("c")!], sourceSessionUuid: s2.uuid })).toEqual(["c"]);
        expect(await contents({ subjectParticipantId: "p1", subjectUser: "carol", sourceSessionUuid: s1.uuid })).toEqual(["a"]);
        expect(await contents({ subjectParticipantId: "p2", subjectUser: "dave" })).toEqual([]);
      });

      it("deletes the selected memories only and returns how many", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await session(ns.id);
        await integrate(ctx.stores, s, "p1", [memory({ subjectUser: "x" }), memory({ subjectUser: "x" }), memory({ subjectUser: "y" })]);
        expect(await mem().delete(ns.id, { subjectUser: "x" })).toBe(2);
        expect(await mem().delete(ns.id, { subjectUser: "x" })).toBe(0);
        expect((await all(ns.id)).map((m) => m.subjectUser)).toEqual(["y"]);
        expect(await mem().delete(ns.id, {})).toBe(1);
        expect(await all(ns.id)).toEqual([]);
      });

      it("never lists or deletes another namespace's memories", async () => {
        const a = await newNamespace(ctx.stores);
        const b = await newNamespace(ctx.stores);
        const s = await session(a.id);
        await integrate(ctx.stores, s, "p1", [memory(), memory()]);
        const ids = uuids(await all(a.id));
        expect(await all(b.id)).toEqual([]);
        expect(await all(b.id, { ids })).toEqual([]);
        expect(await all(b.id, { sourceSessionUuid: s.uuid })).toEqual([]);
        expect(await mem().delete(b.id, { ids })).toBe(0);
        expect(await mem().delete(b.id, {})).toBe(0);
        expect(uuids(await all(a.id, { ids }))).toEqual(expect.arrayContaining(ids));
      });
    });

    describe("integrator config", () => {
      it("stores a namespace's integrator and reads it back, leaving other namespaces' as they were", async () => {
        const a = await newNamespace(ctx.stores);
        const b = await newNamespace(ctx.stores);
        const bBefore = await mem().integratorConfig(b.id);
        const config = { kind: "remote" as const, url: "https://integrator.example/v1", timeoutMs: 2500 };
        expect(await mem().setIntegratorConfig(a.id, config)).toEqual(config);
        expect(await mem().integratorConfig(a.id)).toEqual(config);
        expect(await mem().integratorConfig(b.id)).toEqual(bBefore);
        const back = { kind: "rules" as const, url: "", timeoutMs: 1000 };
        expect(await mem().setIntegratorConfig(a.id, back)).toEqual(back);
        expect(await mem().integratorConfig(a.id)).toEqual(back);
      });
    });
  });
}
