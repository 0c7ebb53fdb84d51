/**
 * The SessionStore contract (src/domain/session-store.ts): what every implementation promises, tested
 * through the interface only.
 */
import { describe, expect, it } from "vitest";
import { AlreadyExistsError, ConflictError, NamespaceGoneError, NotFoundError } from "../../../src/domain/errors.js";
import { newUuid } from "../../../src/domain/ids.js";
import type { StoredSession } from "../../../src/domain/session-model.js";
import type { SessionListQuery } from "../../../src/domain/session-store.js";
import { fillSession, insertSession, insertSessions, newNamespace, sessionValues, unique, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeSessionStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`SessionStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const sessions = () => ctx.stores.sessions;
    const list = (q: Partial<SessionListQuery> & { namespaceId: string }) => sessions().list({ filter: {}, showDeleted: false, ascending: true, limit: 100, ...q });

    describe("namespaceId", () => {
      it("returns undefined for a name never created, without creating it", async () => {
        const name = unique("absent");
        expect(await sessions().namespaceId(name, false)).toBeUndefined();
        expect(await ctx.stores.namespaces.find(name)).toBeUndefined();
      });

      it("creates a namespace once and returns the same id on every later call", async () => {
        const name = unique("created");
        const id = await sessions().namespaceId(name, true);
        expect(id).toBeTypeOf("string");
        expect(await sessions().namespaceId(name, true)).toBe(id);
        expect(await sessions().namespaceId(name, false)).toBe(id);
        expect((await ctx.stores.namespaces.find(name))?.uuid).toBe(id);
      });
    });

    describe("insert", () => {
      it("returns the session as stored: the values given, active, counters at zero", async () => {
        const ns = await newNamespace(ctx.stores);
        const v = sessionValues(ns.id, {
          user: "u1",
          workflowId: "wf",
          workflowVersion: "3",
          data: { a: 1, nested: { b: [true, null, "x"] } },
          labels: { env: "prod", team: "x" },
          expiresAfterMs: 90_000,
          maxRequestsPerMinute: 42,
        });
        const s = await sessions().insert(v);
        expect(s).toMatchObject({
          uuid: v.uuid,
          sessionId: v.externalId,
          namespace: ns.name,
          namespaceId: ns.id,
          user: "u1",
          workflow: { id: "wf", version: "3" },
          data: v.data,
          labels: v.labels,
          state: "active",
          deleteTime: null,
          maxRequestsPerMinute: 42,
          stats: { participantCount: 0, turnCount: 0, traceCount: 0, spanCount: 0, memoriesExtracted: 0, integrationCount: 0 },
        });
        expect(s.version).toBeTypeOf("number");
        expect(s.createTime).toBeInstanceOf(Date);
        expect(s.updateTime.getTime()).toBe(s.createTime.getTime());
        expect(s.expireTime.getTime() - s.createTime.getTime()).toBe(90_000);
        expect(await sessions().find({ uuid: v.uuid })).toEqual(s);
      });

      it("refuses a second session with a taken external id in the namespace (AlreadyExistsError), writing nothing", async () => {
        const ns = await newNamespace(ctx.stores);
        const first = await insertSession(ctx.stores, ns.id, { externalId: "same" });
        const second = sessionValues(ns.id, { externalId: "same" });
        await expect(sessions().insert(second)).rejects.toBeInstanceOf(AlreadyExistsError);
        expect(await sessions().find({ uuid: second.uuid })).toBeUndefined();
        expect(await sessions().find({ namespaceId: ns.id, externalId: "same" })).toMatchObject({ uuid: first.uuid });
      });

      it("takes the same external id in another namespace", async () => {
        const a = await newNamespace(ctx.stores);
        const b = await newNamespace(ctx.stores);
        const sa = await insertSession(ctx.stores, a.id, { externalId: "shared" });
        const sb = await insertSession(ctx.stores, b.id, { externalId: "shared" });
        expect(sb.uuid).not.toBe(sa.uuid);
        expect((await sessions().find({ namespaceId: b.id, externalId: "shared" }))?.uuid).toBe(sb.uuid);
      });

      it("throws NamespaceGoneError when the namespace was deleted meanwhile; resolving the name again gives one that takes sessions", async () => {
        const ns = await newNamespace(ctx.stores);
        expect(await ctx.stores.namespaces.delete(ns.id)).toBeDefined();
        await expect(insertSession(ctx.stores, ns.id)).rejects.toBeInstanceOf(NamespaceGoneError);
        const again = await sessions().namespaceId(ns.name, true);
        expect(again).toBeDefined();
        expect(again).not.toBe(ns.id);
        const s = await insertSession(ctx.stores, again!);
        expect(s.namespace).toBe(ns.name);
      });
    });

    describe("find", () => {
      it("finds a session by uuid, by uuid in its namespace, and by external id in its namespace", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        expect(await sessions().find({ uuid: s.uuid })).toEqual(s);
        expect(await sessions().find({ uuid: s.uuid, namespaceId: ns.id })).toEqual(s);
        expect(await sessions().find({ namespaceId: ns.id, externalId: s.sessionId })).toEqual(s);
      });

      it("never finds a session through another namespace", async () => {
        const ns = await newNamespace(ctx.stores);
        const other = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        expect(await sessions().find({ uuid: s.uuid, namespaceId: other.id })).toBeUndefined();
        expect(await sessions().find({ namespaceId: other.id, externalId: s.sessionId })).toBeUndefined();
      });

      it("returns undefined for keys that never existed", async () => {
        const ns = await newNamespace(ctx.stores);
        expect(await sessions().find({ uuid: newUuid() })).toBeUndefined();
        expect(await sessions().find({ namespaceId: ns.id, externalId: "never" })).toBeUndefined();
      });

      it("finds soft-deleted sessions, as soft_deleted", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        await sessions().update(s, { deleteTime: "now" });
        const found = await sessions().find({ uuid: s.uuid });
        expect(found?.state).toBe("soft_deleted");
        expect(found?.deleteTime).toBeInstanceOf(Date);
      });

      it("serializes read-modify-write under the row lock: every one of concurrent increments counts", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { data: { n: 0 } });
        const N = 6;
        await Promise.all(
          Array.from({ length: N }, () =>
            sessions().transaction(async (tx) => {
              const locked = await tx.find({ uuid: s.uuid }, true);
              await tx.update(s, { data: { n: (locked!.data.n as number) + 1 } });
            }),
          ),
        );
        const after = await sessions().find({ uuid: s.uuid });
        expect(after?.data).toEqual({ n: N });
        expect(after!.version - s.version).toBe(N);
      });
    });

    describe("list", () => {
      it("pages a namespace's sessions in creation order, ascending and descending, with no gap or repeat at page boundaries", async () => {
        const ns = await newNamespace(ctx.stores);
        const made = uuids(await insertSessions(ctx.stores, ns.id, 7));
        for (const ascending of [true, false]) {
          const expected = ascending ? made : [...made].reverse();
          const pages: string[][] = [];
          let after: StoredSession | undefined;
          for (;;) {
            const page = await list({ namespaceId: ns.id, ascending, limit: 3, after: after && { createTime: after.createTime, uuid: after.uuid } });
            pages.push(uuids(page));
            if (page.length < 3) break;
            after = page[page.length - 1];
          }
          expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
          expect(pages.flat()).toEqual(expected);
        }
      });

      it("returns an empty page after the last session, and exactly `limit` sessions when more exist", async () => {
        const ns = await newNamespace(ctx.stores);
        const made = await insertSessions(ctx.stores, ns.id, 4);
        expect(uuids(await list({ namespaceId: ns.id, limit: 4 }))).toEqual(uuids(made));
        const last = made[3];
        expect(await list({ namespaceId: ns.id, after: { createTime: last.createTime, uuid: last.uuid } })).toEqual([]);
        expect(await list({ namespaceId: ns.id, limit: 2 })).toHaveLength(2);
      });

      it("never returns another namespace's sessions", async () => {
        const a = await newNamespace(ctx.stores);
        const b = await newNamespace(ctx.stores);
        const inA = await insertSessions(ctx.stores, a.id, 2, { user: "same" });
        await insertSessions(ctx.stores, b.id, 3, { user: "same" });
        expect(uuids(await list({ namespaceId: a.id, filter: { user: "same" }, showDeleted: true }))).toEqual(uuids(inA));
        expect(await list({ namespaceId: (await newNamespace(ctx.stores)).id })).toEqual([]);
      });

      it("filters by user, workflow id and labels (every label given must match)", async () => {
        const ns = await newNamespace(ctx.stores);
        const s1 = await insertSession(ctx.stores, ns.id, { user: "ann", workflowId: "wf1", labels: { env: "prod", team: "a" } });
        const s2 = await insertSession(ctx.stores, ns.id, { user: "bob", workflowId: "wf1", labels: { env: "prod" } });
        const s3 = await insertSession(ctx.stores, ns.id, { user: "ann", workflowId: "wf2", labels: { env: "dev", team: "a" } });
        const q = (filter: SessionListQuery["filter"]) => list({ namespaceId: ns.id, filter }).then(uuids);
        expect(await q({ user: "ann" })).toEqual([s1.uuid, s3.uuid]);
        expect(await q({ workflowId: "wf1" })).toEqual([s1.uuid, s2.uuid]);
        expect(await q({ labels: { env: "prod" } })).toEqual([s1.uuid, s2.uuid]);
        expect(await q({ labels: { env: "prod", team: "a" } })).toEqual([s1.uuid]);
        expect(await q({ user: "ann", workflowId: "wf2" })).toEqual([s3.uuid]);
        expect(await q({ user: "nobody" })).toEqual([]);
      });

      it("filters by state, and shows soft-deleted sessions only when asked to or when filtering on soft_deleted", async () => {
        const ns = await newNamespace(ctx.stores);
        const [active, cancelled, deleted] = await insertSessions(ctx.stores, ns.id, 3);
        await sessions().update(cancelled, { state: "cancelled" });
        await sessions().update(deleted, { deleteTime: "now" });
        const q = (filter: SessionListQuery["filter"], showDeleted = false) => list({ namespaceId: ns.id, filter, showDeleted }).then(uuids);
        expect(await q({})).toEqual([active.uuid, cancelled.uuid]);
        expect(await q({}, true)).toEqual([active.uuid, cancelled.uuid, deleted.uuid]);
        expect(await q({ state: "active" })).toEqual([active.uuid]);
        expect(await q({ state: "cancelled" })).toEqual([cancelled.uuid]);
        expect(await q({ state: "soft_deleted" })).toEqual([deleted.uuid]);
        expect(await q({ state: "soft_deleted" }, true)).toEqual([deleted.uuid]);
      });

      it("filters by create time: at or after createTimeAfter, strictly before createTimeBefore", async () => {
        const ns = await newNamespace(ctx.stores);
        const earlier = await insertSessions(ctx.stores, ns.id, 2);
        // A session with a later create time than all before it (waits for the clock, not a fixed time).
        let later = await insertSession(ctx.stores, ns.id);
        const others = [...earlier];
        while (later.createTime.getTime() <= earlier[1].createTime.getTime()) {
          others.push(later);
          later = await insertSession(ctx.stores, ns.id);
        }
        const cut = later.createTime;
        const q = (filter: SessionListQuery["filter"]) => list({ namespaceId: ns.id, filter }).then(uuids);
        expect(await q({ createTimeAfter: cut })).toEqual([later.uuid]);
        expect(await q({ createTimeBefore: cut })).toEqual(uuids(others));
        expect(await q({ createTimeAfter: earlier[0].createTime, createTimeBefore: cut })).toEqual(uuids(others));
      });
    });

    describe("update", () => {
      it("applies each change, bumps the version and returns the new state", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { data: { a: 1 }, labels: { x: "1" } });
        const u = await sessions().update(s, { data: { b: 2 }, labels: { y: "2" }, user: "new-user", workflowId: "wf9", workflowVersion: "v9" });
        expect(u).toMatchObject({ uuid: s.uuid, data: { b: 2 }, labels: { y: "2" }, user: "new-user", workflow: { id: "wf9", version: "v9" }, state: "active" });
        expect(u.version).toBeGreaterThan(s.version);
        expect(u.updateTime.getTime()).toBeGreaterThanOrEqual(s.updateTime.getTime());
        expect(u.createTime).toEqual(s.createTime);
        expect(await sessions().find({ uuid: s.uuid })).toEqual(u);
      });

      it("gives every change a new, greater version (the etag), and leaves fields not named unchanged", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { user: "keep", labels: { k: "v" } });
        const versions = [s.version];
        for (let i = 0; i < 3; i++) versions.push((await sessions().update(s, { data: { i } })).version);
        for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1]);
        const after = await sessions().find({ uuid: s.uuid });
        expect(after).toMatchObject({ user: "keep", labels: { k: "v" }, data: { i: 2 }, version: versions[3] });
        // Reading does not change the version.
        expect((await sessions().find({ uuid: s.uuid }))?.version).toBe(versions[3]);
      });

      it("cancels, soft-deletes (deleteTime now) and restores (deleteTime null)", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        expect((await sessions().update(s, { state: "cancelled" })).state).toBe("cancelled");
        const deleted = await sessions().update(s, { deleteTime: "now" });
        expect(deleted.state).toBe("soft_deleted");
        expect(deleted.deleteTime).toBeInstanceOf(Date);
        const restored = await sessions().update(s, { deleteTime: null });
        expect(restored.deleteTime).toBeNull();
        expect(restored.state).toBe("cancelled");
      });

      it("moves the expire time to now plus expiresAfterMs", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { expiresAfterMs: 1000 });
        const u = await sessions().update(s, { expiresAfterMs: 3_600_000 });
        expect(u.expireTime.getTime() - u.updateTime.getTime()).toBe(3_600_000);
      });
    });

    describe("truncate", () => {
      it("clears data and turns, resets insights and marks, keeps participants, and returns the turns deleted", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { data: { keep: false } });
        const filled = await fillSession(ctx.stores, s, { participants: 2, turnsPerParticipant: 3, traces: 0, spansPerTrace: 0, memories: 1 });
        const before = await sessions().find({ uuid: s.uuid });
        const { session, turnsDeleted } = await sessions().transaction(async (tx) => {
          await tx.find({ uuid: s.uuid }, true);
          return tx.truncate(s);
        });
        expect(turnsDeleted).toBe(filled.turns);
        expect(session.data).toEqual({});
        expect(session.stats.turnCount).toBe(0);
        expect(session.stats.participantCount).toBe(2);
        expect(session.version).toBeGreaterThan(before!.version);
        expect(await ctx.stores.conversations.turns({ session: s, afterSeq: 0, limit: 100 })).toEqual([]);
        const participants = await ctx.stores.conversations.participants(s);
        expect(participants.map((p) => [p.participantId, p.insights, p.lastIntegratedSeq]).sort()).toEqual([
          ["p1", [], 0],
          ["p2", [], 0],
        ]);
      });
    });

    describe("delete", () => {
      it("hard-deletes a locked session with everything it holds and returns exact counts", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        const other = await insertSession(ctx.stores, ns.id);
        const filled = await fillSession(ctx.stores, s, { participants: 2, turnsPerParticipant: 2, traces: 2, spansPerTrace: 3, memories: 0 });
        await fillSession(ctx.stores, other, { participants: 1, turnsPerParticipant: 1, traces: 1, spansPerTrace: 1, memories: 0 });
        const counts = await sessions().transaction(async (tx) => {
          await tx.find({ uuid: s.uuid }, true);
          return tx.delete(s.uuid, ns.id);
        });
        expect(counts).toEqual({ participants: 2, turns: filled.turns, traces: 2, spans: 6, annotations: 2, archivedTurns: 0, compactions: 0 });
        expect(await sessions().find({ uuid: s.uuid })).toBeUndefined();
        expect(await ctx.stores.conversations.participants(s)).toEqual([]);
        expect(await ctx.stores.conversations.turns({ session: s, afterSeq: 0, limit: 10 })).toEqual([]);
        for (const t of filled.traceIds) expect(await ctx.stores.traces.get(ns.id, t)).toBeUndefined();
        // The other session keeps what it holds.
        expect((await sessions().find({ uuid: other.uuid }))?.stats).toMatchObject({ participantCount: 1, turnCount: 1, traceCount: 1, spanCount: 1 });
      });

      it("hard-deletes without a transaction; with a version, only while the session has it (ConflictError, NotFoundError)", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        const stored = (await sessions().find({ uuid: s.uuid }))!;
        await sessions().update(s, { labels: { changed: "yes" } });
        await expect(sessions().delete(s.uuid, ns.id, stored.version)).rejects.toBeInstanceOf(ConflictError);
        expect(await sessions().find({ uuid: s.uuid })).toBeDefined();
        expect(await sessions().delete(s.uuid, ns.id, stored.version + 1)).toEqual({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, archivedTurns: 0, compactions: 0 });
        await expect(sessions().delete(s.uuid, ns.id)).rejects.toBeInstanceOf(NotFoundError);
      });
    });

    describe("transaction", () => {
      it("commits what the work wrote when it returns, and returns its value", async () => {
        const ns = await newNamespace(ctx.stores);
        const v = sessionValues(ns.id);
        const result = await sessions().transaction(async (tx) => {
          await tx.insert(v);
          return "done";
        });
        expect(result).toBe("done");
        expect(await sessions().find({ uuid: v.uuid })).toBeDefined();
      });

      it("rolls everything back when the work throws, and rethrows its error", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id, { data: { v: 1 } });
        const v = sessionValues(ns.id);
        const boom = new Error("boom");
        await expect(
          sessions().transaction(async (tx) => {
            await tx.insert(v);
            await tx.update(s, { data: { v: 2 } });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await sessions().find({ uuid: v.uuid })).toBeUndefined();
        expect(await sessions().find({ uuid: s.uuid })).toEqual(s);
      });

      it("runs a nested transaction in the outer one: rolled back with it", async () => {
        const ns = await newNamespace(ctx.stores);
        const v = sessionValues(ns.id);
        await expect(
          sessions().transaction(async (tx) => {
            await tx.transaction((inner) => inner.insert(v));
            expect(await tx.find({ uuid: v.uuid })).toBeDefined();
            throw new Error("outer fails");
          }),
        ).rejects.toThrow("outer fails");
        expect(await sessions().find({ uuid: v.uuid })).toBeUndefined();
      });

      it("translates errors inside the transaction into domain errors too", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        await expect(sessions().transaction((tx) => tx.insert(sessionValues(ns.id, { externalId: s.sessionId })))).rejects.toBeInstanceOf(AlreadyExistsError);
      });
    });
  });
}
