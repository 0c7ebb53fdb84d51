/**
 * The BulkDeleteStore contract (src/domain/bulk-delete-store.ts): deletion batches, each a transaction
 * of its own, and the snapshot of the sessions a filter matched when a call began.
 */
import { describe, expect, it } from "vitest";
import { newUuid } from "../../../src/domain/ids.js";
import type { BatchOptions, SnapshotKey } from "../../../src/domain/bulk-delete-store.js";
import type { SessionFilter, StoredSession } from "../../../src/domain/session-model.js";
import { fillSession, insertSession, insertSessions, newNamespace, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

const DELETE: BatchOptions = { dryRun: false, purgeMemories: false };
const SHAPE = { participants: 2, turnsPerParticipant: 2, traces: 1, spansPerTrace: 2, memories: 2 };

export function describeBulkDeleteStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`BulkDeleteStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const bulk = () => ctx.stores.bulkDeletes;
    const exists = async (s: StoredSession) => (await ctx.stores.sessions.find({ uuid: s.uuid })) !== undefined;
    const memoriesOf = (ns: string) => ctx.stores.memories.list(ns, {}, undefined, 1000);
    /** Every page of a snapshot, `limit` at a time. */
    /**
     * A snapshot as a bulk delete reads it: marked once, then paged from a position that is persisted as
     * JSON between pages (so any process could go on with it).
     */
    async function openSnapshot(namespaceId: string, filter: SessionFilter, includeDeleted: boolean) {
      const { total, mark } = await bulk().markSnapshot(namespaceId, filter, includeDeleted);
      let after: SnapshotKey | undefined;
      return {
        total,
        async next(limit: number): Promise<string[]> {
          if (!mark) return [];
          const page = await bulk().snapshotPage(namespaceId, filter, includeDeleted, JSON.parse(JSON.stringify(mark)), after && JSON.parse(JSON.stringify(after)), limit);
          if (page.last) after = page.last;
          return page.uuids;
        },
        async close() {},
      };
    }

    async function drain(snapshot: { next(limit: number): Promise<string[]> }, limit: number): Promise<string[][]> {
      const pages: string[][] = [];
      for (let page = await snapshot.next(limit); page.length; page = await snapshot.next(limit)) pages.push(page);
      return pages;
    }

    it("resolves namespace names as the session store does", async () => {
      const ns = await newNamespace(ctx.stores);
      expect(await bulk().namespaceId(ns.name, false)).toBe(ns.id);
    });

    describe("deleteBatch", () => {
      it("deletes the sessions of a batch that exist and reports what went with each; absent ones are left out", async () => {
        const ns = await newNamespace(ctx.stores);
        const [a, b, kept] = await insertSessions(ctx.stores, ns.id, 3);
        const filled = await fillSession(ctx.stores, a, SHAPE);
        const result = await bulk().deleteBatch(ns.id, { kind: "uuid", values: [a.uuid, newUuid(), b.uuid] }, DELETE);
        expect([...result].sort((x, y) => (x.uuid < y.uuid ? -1 : 1))).toEqual([
          { uuid: a.uuid, externalId: a.sessionId, counts: { participants: 2, turns: filled.turns, traces: 1, spans: 2, annotations: 1, archivedTurns: 0, compactions: 0 }, memories: 2 },
          { uuid: b.uuid, externalId: b.sessionId, counts: { participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, archivedTurns: 0, compactions: 0 }, memories: 0 },
        ]);
        expect(await exists(a)).toBe(false);
        expect(await exists(b)).toBe(false);
        expect(await exists(kept)).toBe(true);
        // A second batch finds them gone.
        expect(await bulk().deleteBatch(ns.id, { kind: "uuid", values: [a.uuid, b.uuid] }, DELETE)).toEqual([]);
      });

      it("deletes by caller ids in the namespace", async () => {
        const ns = await newNamespace(ctx.stores);
        const [a, b] = await insertSessions(ctx.stores, ns.id, 2);
        const result = await bulk().deleteBatch(ns.id, { kind: "external", values: [a.sessionId, "never-made"] }, DELETE);
        expect(result.map((r) => [r.uuid, r.externalId])).toEqual([[a.uuid, a.sessionId]]);
        expect(await exists(a)).toBe(false);
        expect(await exists(b)).toBe(true);
      });

      it("never deletes another namespace's sessions", async () => {
        const [a, b] = [await newNamespace(ctx.stores), await newNamespace(ctx.stores)];
        const s = await insertSession(ctx.stores, a.id);
        expect(await bulk().deleteBatch(b.id, { kind: "uuid", values: [s.uuid] }, DELETE)).toEqual([]);
        expect(await bulk().deleteBatch(b.id, { kind: "external", values: [s.sessionId] }, DELETE)).toEqual([]);
        expect(await exists(s)).toBe(true);
      });

      it("in a dry run reports what a deletion would, and deletes nothing", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        await fillSession(ctx.stores, s, SHAPE);
        const dry = await bulk().deleteBatch(ns.id, { kind: "uuid", values: [s.uuid] }, { dryRun: true, purgeMemories: true });
        expect(await exists(s)).toBe(true);
        expect(await memoriesOf(ns.id)).toHaveLength(2);
        const real = await bulk().deleteBatch(ns.id, { kind: "uuid", values: [s.uuid] }, { dryRun: false, purgeMemories: true });
        expect(dry).toEqual(real);
      });

      it("purges the sessions' memories when asked, else keeps them detached from the session", async () => {
        const ns = await newNamespace(ctx.stores);
        const [purged, detached] = await insertSessions(ctx.stores, ns.id, 2);
        await fillSession(ctx.stores, purged, SHAPE);
        await fillSession(ctx.stores, detached, SHAPE);
        const [p] = await bulk().deleteBatch(ns.id, { kind: "uuid", values: [purged.uuid] }, { dryRun: false, purgeMemories: true });
        expect(p.memories).toBe(2);
        expect(await ctx.stores.memories.list(ns.id, { sourceSessionUuid: purged.uuid }, undefined, 10)).toEqual([]);
        const kept = await ctx.stores.memories.list(ns.id, { sourceSessionUuid: detached.uuid }, undefined, 10);
        const [d] = await bulk().deleteBatch(ns.id, { kind: "uuid", values: [detached.uuid] }, DELETE);
        expect(d.memories).toBe(2);
        const after = await memoriesOf(ns.id);
        expect(uuids(after)).toEqual(uuids(kept));
        expect(after.map((m) => m.sourceSessionUuid)).toEqual([null, null]);
      });

      it("returns nothing for an empty batch", async () => {
        const ns = await newNamespace(ctx.stores);
        expect(await bulk().deleteBatch(ns.id, { kind: "uuid", values: [] }, DELETE)).toEqual([]);
        expect(await bulk().deleteBatch(ns.id, { kind: "external", values: [] }, DELETE)).toEqual([]);
      });
    });

    describe("markSnapshot and snapshotPage", () => {
      it("counts the matching sessions up front and serves them in creation order, `limit` at a time", async () => {
        const ns = await newNamespace(ctx.stores);
        const made = uuids(await insertSessions(ctx.stores, ns.id, 7));
        const snapshot = await openSnapshot(ns.id, {}, false);
        expect(snapshot.total).toBe(7);
        const pages = await drain(snapshot, 3);
        expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
        expect(pages.flat()).toEqual(made);
        expect(await snapshot.next(3)).toEqual([]);
        await snapshot.close();
      });

      it("never serves sessions created after it was opened, nor those deleted since", async () => {
        const ns = await newNamespace(ctx.stores);
        const made = await insertSessions(ctx.stores, ns.id, 4);
        const snapshot = await openSnapshot(ns.id, {}, false);
        expect(snapshot.total).toBe(4);
        const first = await snapshot.next(2);
        expect(first).toEqual(uuids(made.slice(0, 2)));
        await insertSessions(ctx.stores, ns.id, 3);
        await bulk().deleteBatch(ns.id, { kind: "uuid", values: [made[3].uuid] }, DELETE);
        expect(await drain(snapshot, 2)).toEqual([[made[2].uuid]]);
        await snapshot.close();
      });

      it("serves only the sessions matching its filter, soft-deleted ones only when included, of its namespace only", async () => {
        const ns = await newNamespace(ctx.stores);
        const other = await newNamespace(ctx.stores);
        const [x1, , x3] = [await insertSession(ctx.stores, ns.id, { user: "x" }), await insertSession(ctx.stores, ns.id, { user: "y" }), await insertSession(ctx.stores, ns.id, { user: "x" })];
        await insertSession(ctx.stores, other.id, { user: "x" });
        await ctx.stores.sessions.update(x3, { deleteTime: "now" });
        const live = await openSnapshot(ns.id, { user: "x" }, false);
        expect(live.total).toBe(1);
        expect(await drain(live, 10)).toEqual([[x1.uuid]]);
        const all = await openSnapshot(ns.id, { user: "x" }, true);
        expect(all.total).toBe(2);
        expect(await drain(all, 10)).toEqual([[x1.uuid, x3.uuid]]);
      });

      it("is empty when nothing matches", async () => {
        const ns = await newNamespace(ctx.stores);
        const snapshot = await openSnapshot(ns.id, {}, true);
        expect(snapshot.total).toBe(0);
        expect(await snapshot.next(10)).toEqual([]);
        await snapshot.close();
      });

      it("holds no connection between pages: many snapshots open at once all page through", async () => {
        const ns = await newNamespace(ctx.stores);
        const made = uuids(await insertSessions(ctx.stores, ns.id, 3));
        const snapshots = await Promise.all(Array.from({ length: 30 }, () => openSnapshot(ns.id, {}, false)));
        const first = await Promise.all(snapshots.map((s) => s.next(2)));
        const rest = await Promise.all(snapshots.map((s) => drain(s, 2)));
        for (let i = 0; i < snapshots.length; i++) expect([...first[i], ...rest[i].flat()]).toEqual(made);
        await Promise.all(snapshots.map((s) => s.close()));
      });
    });
  });
}
