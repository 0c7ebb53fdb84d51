/**
 * The ConversationStore contract (src/domain/conversation-store.ts): participants and turns.
 */
import { describe, expect, it } from "vitest";
import { ROLE_OF_KIND } from "../../../src/domain/conversation-model.js";
import type { AppendOptions } from "../../../src/domain/conversation-store.js";
import { newUuid } from "../../../src/domain/ids.js";
import type { StoredSession } from "../../../src/domain/session-model.js";
import { appendTurns, bind, insertSession, newNamespace, sessionValues, turn, unique, useStores, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeConversationStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`ConversationStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const conv = () => ctx.stores.conversations;
    const opts = (request?: AppendOptions["request"]): AppendOptions => ({ defaultRoles: ROLE_OF_KIND, request });
    const session = async () => insertSession(ctx.stores, (await newNamespace(ctx.stores)).id);
    // The session's counters an append reports: all but the compaction ones, which its statement does not read.
    const stats = async (s: StoredSession) => {
      const { compactionCount: _c, archivedTurnCount: _a, compactedSeq: _s, ...counts } = (await ctx.stores.sessions.find({ uuid: s.uuid }))!.stats;
      return counts;
    };
    const seqs = async (s: StoredSession) => (await conv().turns({ session: s, afterSeq: 0, limit: 1000 })).map((t) => t.seq);

    describe("participants", () => {
      it("binds a new participant, counts it on the session, and finds it", async () => {
        const s = await session();
        const { participant, created } = await bind(ctx.stores, s, "alice", "user", { displayName: "Alice", metadata: { tz: "UTC" } });
        expect(created).toBe(true);
        expect(participant).toMatchObject({ participantId: "alice", kind: "user", displayName: "Alice", metadata: { tz: "UTC" }, insights: [], lastIntegratedSeq: 0, leaveTime: null });
        expect(participant.bindTime).toBeInstanceOf(Date);
        expect(await conv().participant(s, "alice")).toEqual(participant);
        expect((await stats(s)).participantCount).toBe(1);
      });

      it("re-binds an existing participant: new name and metadata, not counted again", async () => {
        const s = await session();
        const first = await bind(ctx.stores, s, "bot", "agent", { displayName: "v1" });
        const again = await bind(ctx.stores, s, "bot", "agent", { displayName: "v2", metadata: { v: 2 } });
        expect(again.created).toBe(false);
        expect(again.participant).toMatchObject({ participantId: "bot", displayName: "v2", metadata: { v: 2 }, leaveTime: null });
        expect(again.participant.bindTime).toEqual(first.participant.bindTime);
        expect((await stats(s)).participantCount).toBe(1);
      });

      it("marks a participant as left, keeps the first leave time, and re-binding brings it back", async () => {
        const s = await session();
        await bind(ctx.stores, s, "p");
        const left = await conv().unbind(s, "p");
        expect(left?.leaveTime).toBeInstanceOf(Date);
        expect((await conv().unbind(s, "p"))?.leaveTime).toEqual(left!.leaveTime);
        const back = await bind(ctx.stores, s, "p");
        expect(back.created).toBe(false);
        expect(back.participant.leaveTime).toBeNull();
        expect((await stats(s)).participantCount).toBe(1);
      });

      it("binds new participants to a session inserted in the same transaction with their count, in order", async () => {
        const ns = await newNamespace(ctx.stores);
        const { s, bound } = await ctx.stores.transaction(async (tx) => {
          const s = await tx.sessions.insert({ ...sessionValues(ns.id), participantCount: 3 });
          expect(s.stats.participantCount).toBe(3);
          const bound = await tx.conversations.bindNew(s, [
            { participantId: "zed", kind: "user", displayName: "Zed", metadata: { tz: "UTC" } },
            { participantId: "agent", kind: "agent", displayName: "", metadata: {} },
            { participantId: "tool", kind: "tool", displayName: "T", metadata: { v: [1, 2] } },
          ]);
          return { s, bound };
        });
        expect(bound.map((p) => [p.participantId, p.kind, p.displayName, p.metadata, p.insights, p.lastIntegratedSeq, p.leaveTime])).toEqual([
          ["zed", "user", "Zed", { tz: "UTC" }, [], 0, null],
          ["agent", "agent", "", {}, [], 0, null],
          ["tool", "tool", "T", { v: [1, 2] }, [], 0, null],
        ]);
        expect(bound.every((p) => p.bindTime instanceof Date)).toBe(true);
        expect(await conv().participants(s)).toEqual(bound);
        expect((await stats(s)).participantCount).toBe(3);
        expect(await conv().bindNew(s, [])).toEqual([]);
        expect((await stats(s)).participantCount).toBe(3);
        expect(await appendTurns(ctx.stores, s, [turn("zed"), turn("agent")])).toEqual([1, 2]);
      });

      it("returns undefined when unbinding or finding a participant that was never bound", async () => {
        const s = await session();
        expect(await conv().unbind(s, "ghost")).toBeUndefined();
        expect(await conv().participant(s, "ghost")).toBeUndefined();
      });

      it("lists a session's participants, only those still bound with activeOnly, never another session's", async () => {
        const s = await session();
        const other = await session();
        for (const id of ["a", "b", "c"]) await bind(ctx.stores, s, id);
        await bind(ctx.stores, other, "z");
        await conv().unbind(s, "b");
        expect((await conv().participants(s)).map((p) => p.participantId).sort()).toEqual(["a", "b", "c"]);
        expect((await conv().participants(s, { activeOnly: true })).map((p) => p.participantId).sort()).toEqual(["a", "c"]);
        expect(await conv().participant(other, "a")).toBeUndefined();
      });
    });

    describe("append", () => {
      it("numbers turns from 1, continuing after the last without gaps, and counts them on the session", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u", "user");
        expect(await appendTurns(ctx.stores, s, [turn("u"), turn("u"), turn("u")])).toEqual([1, 2, 3]);
        expect(await appendTurns(ctx.stores, s, [turn("u")])).toEqual([4]);
        expect(await appendTurns(ctx.stores, s, [turn("u"), turn("u")])).toEqual([5, 6]);
        expect(await seqs(s)).toEqual([1, 2, 3, 4, 5, 6]);
        expect((await stats(s)).turnCount).toBe(6);
      });

      it("returns the session's counters and last seq as the append left them", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        await bind(ctx.stores, s, "a", "agent");
        const target = { uuid: s.uuid, namespaceId: s.namespaceId };
        const first = await conv().append(target, [turn("u"), turn("a"), turn("u")], opts());
        expect(first.ok && first.session).toEqual({ stats: await stats(s), lastSeq: 3 });
        expect(first.ok && first.session.stats).toMatchObject({ participantCount: 2, turnCount: 3 });
        await ctx.stores.sessions.truncate(s);
        const next = await conv().append({ namespaceId: s.namespaceId, externalId: s.sessionId }, [turn("a")], opts());
        expect(next.ok && next.session).toEqual({ stats: { ...(await stats(s)), turnCount: 1 }, lastSeq: 4 });
      });

      it("numbers concurrent appends to one session without gaps or repeats", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => appendTurns(ctx.stores, s, [turn("u"), turn("u", `c${i}`)])));
        for (const r of results) expect(r[1]).toBe(r[0] + 1);
        expect(results.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
        expect(await seqs(s)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
      });

      it("gives a turn without a role its speaker's default role, keeps a given role, and stores every field", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u", "user");
        await bind(ctx.stores, s, "a", "agent");
        await bind(ctx.stores, s, "t", "tool");
        const outcome = await conv().append(
          { uuid: s.uuid, namespaceId: s.namespaceId },
          [turn("u", "hi"), turn("a", "hello", { toolCalls: [{ id: "c1", name: "search", arguments: { q: "x" } }], metadata: { m: 1 } }), turn("t", "result", { role: "custom" })],
          opts({ id: "req-1", fingerprint: "fp" }),
        );
        expect(outcome.ok && outcome.turns.map((t) => [t.seq, t.role])).toEqual([
          [1, "user"],
          [2, "assistant"],
          [3, "custom"],
        ]);
        const turns = await conv().turns({ session: s, afterSeq: 0, limit: 10 });
        expect(turns.map(({ createTime, ...t }) => t)).toEqual([
          { seq: 1, participantId: "u", role: "user", content: "hi", toolCalls: [], metadata: {}, requestId: "req-1" },
          { seq: 2, participantId: "a", role: "assistant", content: "hello", toolCalls: [{ id: "c1", name: "search", arguments: { q: "x" } }], metadata: { m: 1 }, requestId: "req-1" },
          { seq: 3, participantId: "t", role: "custom", content: "result", toolCalls: [], metadata: {}, requestId: "req-1" },
        ]);
        expect(outcome.ok && outcome.turns.map((t) => t.createTime)).toEqual(turns.map((t) => t.createTime));
      });

      it("refuses turns of a speaker never bound or gone, writing none of the call's turns and leaving no gap", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        await bind(ctx.stores, s, "gone");
        await conv().unbind(s, "gone");
        await appendTurns(ctx.stores, s, [turn("u")]);
        const target = { uuid: s.uuid, namespaceId: s.namespaceId };
        expect(await conv().append(target, [turn("u"), turn("stranger")], opts())).toEqual({ ok: false, reason: "participant" });
        expect(await conv().append(target, [turn("gone")], opts({ id: "r", fingerprint: "f" }))).toEqual({ ok: false, reason: "participant" });
        expect(await conv().previousRequest(target, "r")).toBeUndefined();
        expect((await stats(s)).turnCount).toBe(1);
        expect(await appendTurns(ctx.stores, s, [turn("u")])).toEqual([2]);
      });

      it("refuses turns for a session that is cancelled, soft-deleted, absent or in another namespace", async () => {
        const ns = await newNamespace(ctx.stores);
        const other = await newNamespace(ctx.stores);
        const [cancelled, deleted, live] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        for (const s of [cancelled, deleted, live]) await bind(ctx.stores, s, "u");
        await ctx.stores.sessions.update(cancelled, { state: "cancelled" });
        await ctx.stores.sessions.update(deleted, { deleteTime: "now" });
        const refused = { ok: false, reason: "session" };
        expect(await conv().append({ namespaceId: ns.id, uuid: cancelled.uuid }, [turn("u")], opts())).toEqual(refused);
        expect(await conv().append({ namespaceId: ns.id, uuid: deleted.uuid }, [turn("u")], opts())).toEqual(refused);
        expect(await conv().append({ namespaceId: ns.id, uuid: newUuid() }, [turn("u")], opts())).toEqual(refused);
        expect(await conv().append({ uuid: live.uuid, namespaceId: other.id }, [turn("u")], opts())).toEqual(refused);
        expect(await conv().append({ namespaceId: other.id, externalId: live.sessionId }, [turn("u")], opts())).toEqual(refused);
        expect(await seqs(cancelled)).toEqual([]);
        expect(await seqs(live)).toEqual([]);
      });

      it("appends to a session addressed by external id in its namespace", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        const outcome = await conv().append({ namespaceId: s.namespaceId, externalId: s.sessionId }, [turn("u")], opts());
        expect(outcome.ok && outcome.turns.map((t) => t.seq)).toEqual([1]);
      });

      it("recognizes a reused request id: refuses the call, writes nothing, and reports the earlier call", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        const target = { uuid: s.uuid, namespaceId: s.namespaceId };
        await appendTurns(ctx.stores, s, [turn("u")]);
        await appendTurns(ctx.stores, s, [turn("u"), turn("u")], { id: "req", fingerprint: "fp-1" });
        const previous = { namespaceId: s.namespaceId, sessionUuid: s.uuid, firstSeq: 2, count: 2, fingerprint: "fp-1", session: { stats: await stats(s), lastSeq: 3 } };
        expect(await conv().append(target, [turn("u")], opts({ id: "req", fingerprint: "fp-2" }))).toEqual({ ok: false, reason: "request", previous });
        expect(await conv().previousRequest(target, "req")).toEqual(previous);
        expect(await conv().previousRequest({ namespaceId: s.namespaceId, externalId: s.sessionId }, "req")).toEqual(previous);
        expect(await conv().previousRequest(target, "other")).toBeUndefined();
        expect(await conv().previousRequest({ namespaceId: (await newNamespace(ctx.stores)).id, uuid: s.uuid }, "req")).toBeUndefined();
        expect(await seqs(s)).toEqual([1, 2, 3]);
      });

      it("takes the same request id on another session", async () => {
        const [a, b] = [await session(), await session()];
        for (const s of [a, b]) await bind(ctx.stores, s, "u");
        await appendTurns(ctx.stores, a, [turn("u")], { id: "shared", fingerprint: "x" });
        expect(await appendTurns(ctx.stores, b, [turn("u")], { id: "shared", fingerprint: "x" })).toEqual([1]);
        expect(await conv().previousRequest({ namespaceId: b.namespaceId, uuid: b.uuid }, "shared")).toMatchObject({ sessionUuid: b.uuid, firstSeq: 1, count: 1 });
      });
    });

    describe("reading turns", () => {
      it("returns the roles and times of a range of turns (appended)", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u", "user");
        await bind(ctx.stores, s, "a", "agent");
        await appendTurns(ctx.stores, s, [turn("u"), turn("a"), turn("u"), turn("a")]);
        const got = await conv().appended(s, 2, 2);
        expect(got.map((t) => [t.seq, t.role])).toEqual([
          [2, "assistant"],
          [3, "user"],
        ]);
        expect(got.every((t) => t.createTime instanceof Date)).toBe(true);
      });

      it("pages turns in sequence order after afterSeq, up to untilSeq inclusive, by speaker when asked", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        await bind(ctx.stores, s, "a", "agent");
        await appendTurns(ctx.stores, s, [turn("u"), turn("a"), turn("u"), turn("a"), turn("u"), turn("a")]);
        const q = (over: { afterSeq?: number; untilSeq?: number; participantId?: string; limit?: number }) =>
          conv()
            .turns({ session: s, afterSeq: 0, limit: 100, ...over })
            .then((ts) => ts.map((t) => t.seq));
        expect(await q({ limit: 4 })).toEqual([1, 2, 3, 4]);
        expect(await q({ afterSeq: 4, limit: 4 })).toEqual([5, 6]);
        expect(await q({ afterSeq: 6 })).toEqual([]);
        expect(await q({ afterSeq: 1, untilSeq: 3 })).toEqual([2, 3]);
        expect(await q({ participantId: "a" })).toEqual([2, 4, 6]);
        expect(await q({ participantId: "u", afterSeq: 1, limit: 1 })).toEqual([3]);
        expect(await q({ participantId: unique("nobody") })).toEqual([]);
      });

      it("pages turns newest first, after afterSeq, up to untilSeq inclusive, by speaker when asked", async () => {
        const s = await session();
        await bind(ctx.stores, s, "u");
        await bind(ctx.stores, s, "a", "agent");
        await appendTurns(ctx.stores, s, [turn("u"), turn("a"), turn("u"), turn("a"), turn("u"), turn("a")]);
        const q = (over: { afterSeq?: number; untilSeq?: number; participantId?: string; limit?: number }) =>
          conv()
            .turns({ session: s, afterSeq: 0, limit: 100, newestFirst: true, ...over })
            .then((ts) => ts.map((t) => t.seq));
        expect(await q({ limit: 4 })).toEqual([6, 5, 4, 3]);
        expect(await q({ untilSeq: 2, limit: 4 })).toEqual([2, 1]);
        expect(await q({ afterSeq: 4 })).toEqual([6, 5]);
        expect(await q({ afterSeq: 1, untilSeq: 3 })).toEqual([3, 2]);
        expect(await q({ participantId: "a" })).toEqual([6, 4, 2]);
        expect(await q({ participantId: "u", untilSeq: 4, limit: 1 })).toEqual([3]);
        expect(await q({ afterSeq: 6 })).toEqual([]);
      });
    });
  });
}
