import { describe, expect, it } from "vitest";
import type { NewTurn } from "../../src/domain/conversation-model.js";
import { AlreadyExistsError, NotFoundError, PreconditionError } from "../../src/domain/errors.js";
import { byId, byKey, newSession, useDatabase } from "../setup/context.js";

const ctx = useDatabase();

const turn = (participantId: string, content: string, over: Partial<NewTurn> = {}): NewTurn => ({ participantId, role: "", content, toolCalls: [], metadata: {}, ...over });

/** A session with a user "u" and an agent "a" bound. */
async function conversation(sessionId: string, namespace = "conv") {
  const s = await ctx.sessions.create(newSession({ namespace, sessionId, user: "alice" }));
  await ctx.services.conversations.bind({ address: byId(s.id), participantId: "u", kind: "user", displayName: "Alice", metadata: {} });
  await ctx.services.conversations.bind({ address: byId(s.id), participantId: "a", kind: "agent", displayName: "Helper", metadata: { model: "x" } });
  return s;
}

describe("BindParticipant", () => {
  it("is idempotent on (session, participant_id), counts each participant once and brings back one that left", async () => {
    const s = await ctx.sessions.create(newSession({ sessionId: "bind-1" }));
    const c = ctx.services.conversations;
    const first = await c.bind({ address: byId(s.id), participantId: "p1", kind: "agent", displayName: "A", metadata: { v: 1 } });
    expect(first.created).toBe(true);
    expect(first.participant).toMatchObject({ participantId: "p1", kind: "agent", displayName: "A", metadata: { v: 1 }, insights: [], lastIntegratedSeq: 0, leaveTime: null });
    const again = await c.bind({ address: byId(s.id), participantId: "p1", kind: "agent", displayName: "B", metadata: {} });
    expect(again).toMatchObject({ created: false, participant: { displayName: "B", metadata: {} } });
    expect((await ctx.sessions.get(byId(s.id), false)).stats.participantCount).toBe(1);

    const left = await c.unbind(byId(s.id), "p1");
    expect(left.leaveTime).toBeInstanceOf(Date);
    expect((await c.unbind(byId(s.id), "p1")).leaveTime).toEqual(left.leaveTime);
    const back = await c.bind({ address: byId(s.id), participantId: "p1", kind: "agent", displayName: "B", metadata: {} });
    expect(back).toMatchObject({ created: false, participant: { leaveTime: null } });
    expect((await ctx.sessions.get(byId(s.id), false)).stats.participantCount).toBe(1);
  });

  it("refuses another kind for a bound participant, an unset kind, and bad fields", async () => {
    const s = await ctx.sessions.create(newSession({ sessionId: "bind-2" }));
    const c = ctx.services.conversations;
    await c.bind({ address: byId(s.id), participantId: "p", kind: "user", displayName: "", metadata: {} });
    await expect(c.bind({ address: byId(s.id), participantId: "p", kind: "agent", displayName: "", metadata: {} })).rejects.toThrow(AlreadyExistsError);
    await expect(c.bind({ address: byId(s.id), participantId: "q", kind: undefined, displayName: "", metadata: {} })).rejects.toMatchObject({ field: "kind" });
    await expect(c.bind({ address: byId(s.id), participantId: "", kind: "user", displayName: "", metadata: {} })).rejects.toMatchObject({ field: "participant_id" });
    await expect(c.bind({ address: byId(s.id), participantId: "a\nb", kind: "user", displayName: "", metadata: {} })).rejects.toMatchObject({ field: "participant_id" });
    await expect(c.bind({ address: byId(s.id), participantId: "q", kind: "user", displayName: "x".repeat(257), metadata: {} })).rejects.toMatchObject({ field: "display_name" });
    await expect(c.bind({ address: byId(s.id), participantId: "q", kind: "user", displayName: "", metadata: { big: "x".repeat(17_000) } })).rejects.toMatchObject({ field: "metadata" });
  });

  it("refuses cancelled and soft-deleted sessions with failed_precondition, and unknown ones with not_found", async () => {
    const c = ctx.services.conversations;
    const cancelled = await ctx.sessions.create(newSession({ sessionId: "bind-c" }));
    await ctx.sessions.cancel(byId(cancelled.id));
    await expect(c.bind({ address: byId(cancelled.id), participantId: "p", kind: "user", displayName: "", metadata: {} })).rejects.toThrow(PreconditionError);
    const gone = await ctx.sessions.create(newSession({ sessionId: "bind-d" }));
    await ctx.sessions.softDelete(byId(gone.id));
    await expect(c.bind({ address: byId(gone.id), participantId: "p", kind: "user", displayName: "", metadata: {} })).rejects.toThrow(PreconditionError);
    await expect(c.bind({ address: byKey("nope"), participantId: "p", kind: "user", displayName: "", metadata: {} })).rejects.toThrow(NotFoundError);
    await expect(c.unbind(byId(gone.id), "p")).rejects.toThrow(NotFoundError);
  });
});

describe("AppendTurns", () => {
  it("numbers turns 1, 2, 3 ... per session, defaults roles from the speaker's kind and counts them", async () => {
    const s = await conversation("append-1");
    const c = ctx.services.conversations;
    const first = await c.append(byId(s.id), [turn("u", "hello"), turn("a", "hi there", { toolCalls: [{ id: "c1", name: "search", arguments: { q: "tea" } }] })], "");
    expect(first.replayed).toBe(false);
    expect(first.turns.map((t) => [t.seq, t.role])).toEqual([
      [1, "user"],
      [2, "assistant"],
    ]);
    const second = await c.append(byKey("append-1", "conv"), [turn("u", "thanks", { role: "customer", metadata: { lang: "en" } })], "");
    expect(second.turns[0]).toMatchObject({ seq: 3, role: "customer" });
    // Every appended turn has the stored create time, and the call returns the session's counters.
    const third = await c.append(byId(s.id), Array.from({ length: 12 }, (_, k) => turn(k % 2 ? "a" : "u", `t${k}`)), "");
    expect(third).toMatchObject({ lastSeq: 15, stats: { turnCount: 15, participantCount: 2 } });
    expect(third.turns.map((t) => t.seq)).toEqual(Array.from({ length: 12 }, (_, k) => 4 + k));
    const [{ time }] = await ctx.db.sql("SELECT DISTINCT create_time AS time FROM turns WHERE session_id = $1 AND seq >= 4", [s.uuid]);
    for (const t of third.turns) expect(t.createTime).toEqual(time);
    const listed = await c.listTurns({ address: byId(s.id), participantId: "", afterSeq: 0, pageSize: 0, pageToken: "" });
    expect(listed.turns.slice(0, 3).map((t) => [t.participantId, t.role, t.content])).toEqual([
      ["u", "user", "hello"],
      ["a", "assistant", "hi there"],
      ["u", "customer", "thanks"],
    ]);
    expect(listed.turns[2].metadata).toEqual({ lang: "en" });
    expect(listed.turns[1].toolCalls).toEqual([{ id: "c1", name: "search", arguments: { q: "tea" } }]);
    expect((await ctx.sessions.get(byId(s.id), false)).stats.turnCount).toBe(15);
  });

  it("keeps numbering gap-free and ordered under concurrent appends", async () => {
    const s = await conversation("append-concurrent");
    const c = ctx.services.conversations;
    const calls = await Promise.all(Array.from({ length: 12 }, (_, i) => c.append(byId(s.id), [turn("u", `${i}-a`), turn("a", `${i}-b`), turn("u", `${i}-c`)], "")));
    const seqs = calls.flatMap((r) => r.turns.map((t) => t.seq)).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 36 }, (_, i) => i + 1));
    for (const r of calls) expect(r.turns.map((t) => t.seq)).toEqual([r.turns[0].seq, r.turns[0].seq + 1, r.turns[0].seq + 2]);
    const rows = await ctx.db.sql("SELECT count(*)::int AS n, max(seq)::int AS m FROM turns WHERE session_id = $1", [s.uuid]);
    expect(rows[0]).toEqual({ n: 36, m: 36 });
    expect((await ctx.sessions.get(byId(s.id), false)).stats.turnCount).toBe(36);
  });

  it("replays a retried request_id, refuses it for other turns, and appends once under concurrent retries", async () => {
    const s = await conversation("append-idem");
    const c = ctx.services.conversations;
    const turns = [turn("u", "one", { metadata: { a: 1, b: 2 } }), turn("a", "two")];
    const first = await c.append(byId(s.id), turns, "req-1");
    const retry = await c.append(byId(s.id), [turn("u", "one", { metadata: { b: 2, a: 1 } }), turn("a", "two")], "req-1");
    expect(retry.replayed).toBe(true);
    expect(retry.turns).toEqual(first.turns);
    const stored = await c.listTurns({ address: byId(s.id), participantId: "", afterSeq: 0, pageSize: 0, pageToken: "" });
    expect(stored.turns.map((t) => [t.seq, t.content, t.requestId])).toEqual([
      [1, "one", "req-1"],
      [2, "two", "req-1"],
    ]);
    await expect(c.append(byId(s.id), [turn("u", "something else")], "req-1")).rejects.toThrow(AlreadyExistsError);

    const racing = await Promise.all(Array.from({ length: 6 }, () => c.append(byId(s.id), [turn("u", "race")], "req-2")));
    expect(racing.filter((r) => !r.replayed)).toHaveLength(1);
    expect(new Set(racing.map((r) => r.turns[0].seq)).size).toBe(1);
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM turns WHERE session_id = $1", [s.uuid]);
    expect(n).toBe(3);
  });

  it.each<[string, NewTurn[], string]>([
    ["no turns", [], "turns"],
    ["more than 100 turns", Array.from({ length: 101 }, () => turn("u", "x")), "turns"],
    ["empty content", [turn("u", "ok"), turn("u", "")], "turns[1].content"],
    ["content over 64 KiB", [turn("u", "é".repeat(32 * 1024 + 1))], "turns[0].content"],
    ["a NUL character", [turn("u", "a\u0000b")], "turns[0].content"],
    ["a bad role", [turn("u", "x", { role: "User!" })], "turns[0].role"],
    ["a tool call without a name", [turn("u", "x", { toolCalls: [{ id: "1", name: "", arguments: {} }] })], "turns[0].tool_calls[0].name"],
    ["oversized metadata", [turn("u", "x", { metadata: { m: "x".repeat(17_000) } })], "turns[0].metadata"],
    ["an empty participant_id", [turn("", "x")], "turns[0].participant_id"],
    ["a control character in participant_id", [turn("u", "ok"), turn("u\n", "x")], "turns[1].participant_id"],
    ["a participant_id over 256 characters", [turn("p".repeat(257), "x")], "turns[0].participant_id"],
  ])("rejects %s with invalid_argument naming the field, appending nothing", async (name, turns, field) => {
    const s = await conversation(`append-bad-${name}`);
    await expect(ctx.services.conversations.append(byId(s.id), turns, "")).rejects.toMatchObject({ name: "InvalidInputError", field });
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM turns WHERE session_id = $1", [s.uuid]);
    expect(n).toBe(0);
  });

  it("replays a request_id retried after the session was cancelled, and refuses new turns", async () => {
    const s = await conversation("append-retry-cancelled");
    const c = ctx.services.conversations;
    const first = await c.append(byId(s.id), [turn("u", "before the cancel")], "r-late");
    await ctx.sessions.cancel(byId(s.id));
    expect(await c.append(byId(s.id), [turn("u", "before the cancel")], "r-late")).toEqual({ ...first, replayed: true });
    await expect(c.append(byId(s.id), [turn("u", "after the cancel")], "r-new")).rejects.toThrow(PreconditionError);
  });

  it("returns the session's counters and last seq as GetSession then reports them, also on a replay", async () => {
    const s = await conversation("append-state");
    const c = ctx.services.conversations;
    // The counters an append reports: all but the compaction ones, which its statement does not read.
    const counters = async () => {
      const { compactionCount: _c, archivedTurnCount: _a, compactedSeq: _s, ...counts } = (await ctx.sessions.get(byId(s.id), false)).stats;
      return counts;
    };
    const first = await c.append(byId(s.id), [turn("u", "one"), turn("a", "two")], "r-1");
    expect(first).toMatchObject({ replayed: false, lastSeq: 2, stats: { participantCount: 2, turnCount: 2 } });
    expect(first.stats).toEqual(await counters());
    const second = await c.append(byKey("append-state", "conv"), [turn("u", "three")], "");
    expect(second).toMatchObject({ lastSeq: 3, stats: { turnCount: 3 } });
    expect(second.stats).toEqual(await counters());
    // A replay returns the first call's turns, and where the session stands now.
    const replay = await c.append(byId(s.id), [turn("u", "one"), turn("a", "two")], "r-1");
    expect(replay).toEqual({ turns: first.turns, replayed: true, lastSeq: 3, stats: await counters() });
    // After a truncate the count starts again; the sequence goes on.
    await ctx.sessions.truncate(byId(s.id));
    const after = await c.append(byId(s.id), [turn("a", "four")], "");
    expect(after).toMatchObject({ lastSeq: 4, stats: { turnCount: 1 }, turns: [{ seq: 4 }] });
    expect(after.stats).toEqual(await counters());
  });

  it("rejects lone surrogates and after_seq beyond the safe integer range, naming the field", async () => {
    const s = await conversation("append-unicode");
    const c = ctx.services.conversations;
    await expect(c.append(byId(s.id), [turn("u", "ok", { metadata: { k: "\ud800" } })], "")).rejects.toMatchObject({ name: "InvalidInputError", field: "turns[0].metadata" });
    await expect(c.append(byId(s.id), [turn("u", "bad \udc00 text")], "")).rejects.toMatchObject({ name: "InvalidInputError", field: "turns[0].content" });
    await expect(c.listTurns({ address: byId(s.id), participantId: "", afterSeq: Infinity, pageSize: 0, pageToken: "" })).rejects.toMatchObject({ field: "after_seq" });
  });

  it("refuses an unknown or departed participant, and cancelled or soft-deleted sessions, appending nothing", async () => {
    const s = await conversation("append-pre");
    const c = ctx.services.conversations;
    await expect(c.append(byId(s.id), [turn("u", "fine"), turn("ghost", "boo")], "")).rejects.toThrow('turns[1].participant_id: participant "ghost" is not bound to the session');
    await c.unbind(byId(s.id), "a");
    await expect(c.append(byId(s.id), [turn("a", "bye")], "")).rejects.toThrow('turns[0].participant_id: participant "a" has left the session');
    await ctx.sessions.cancel(byId(s.id));
    await expect(c.append(byId(s.id), [turn("u", "x")], "")).rejects.toThrow(PreconditionError);
    const d = await conversation("append-deleted");
    await ctx.sessions.softDelete(byId(d.id));
    await expect(c.append(byId(d.id), [turn("u", "x")], "")).rejects.toThrow(PreconditionError);
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM turns WHERE session_id = ANY($1)", [[s.uuid, d.uuid]]);
    expect(n).toBe(0);
    expect((await ctx.sessions.get(byId(s.id), false)).stats.turnCount).toBe(0);
  });
});

describe("ListTurns", () => {
  it("by global id reads the turns in one statement, and still answers NOT_FOUND for a session that is gone or soft-deleted", async () => {
    const c = ctx.services.conversations;
    const list = (id: string) => c.listTurns({ address: byId(id), participantId: "", afterSeq: 0, pageSize: 0, pageToken: "", newestFirst: true });
    const s = await conversation("list-visible");
    await c.append(byId(s.id), [turn("u", "one"), turn("a", "two")], "");
    expect((await list(s.id)).turns.map((t) => t.content)).toEqual(["two", "one"]);
    // With the namespace named beside the id (as a key of one namespace or a client secret sends it).
    const inNamespace = (namespace: string) => c.listTurns({ address: { id: s.id, namespace, sessionId: "" }, participantId: "", afterSeq: 0, pageSize: 0, pageToken: "", newestFirst: true });
    expect((await inNamespace("conv")).turns.map((t) => t.content)).toEqual(["two", "one"]);
    await ctx.sessions.create(newSession({ namespace: "conv-other", sessionId: "x" }));
    await expect(inNamespace("conv-other")).rejects.toThrow(NotFoundError);
    const empty = await conversation("list-empty");
    expect((await list(empty.id)).turns).toEqual([]);
    await ctx.sessions.softDelete(byId(s.id));
    await expect(list(s.id)).rejects.toThrow(NotFoundError);
    await expect(inNamespace("conv")).rejects.toThrow(NotFoundError);
    await ctx.sessions.undelete(byId(s.id));
    expect((await list(s.id)).turns).toHaveLength(2);
    await ctx.sessions.delete(byId(s.id), "");
    await expect(list(s.id)).rejects.toThrow(NotFoundError);
  });

  it("pages by sequence number, filters by participant and after_seq, and refuses stale tokens", async () => {
    const s = await conversation("list-turns");
    const c = ctx.services.conversations;
    await c.append(byId(s.id), Array.from({ length: 10 }, (_, i) => turn(i % 2 ? "a" : "u", `t${i + 1}`)), "");
    const p1 = await c.listTurns({ address: byId(s.id), participantId: "u", afterSeq: 2, pageSize: 2, pageToken: "" });
    expect(p1.turns.map((t) => t.seq)).toEqual([3, 5]);
    const p2 = await c.listTurns({ address: byId(s.id), participantId: "u", afterSeq: 2, pageSize: 2, pageToken: p1.nextPageToken });
    expect(p2.turns.map((t) => t.seq)).toEqual([7, 9]);
    expect(p2.nextPageToken).toBe("");
    await expect(c.listTurns({ address: byId(s.id), participantId: "a", afterSeq: 2, pageSize: 2, pageToken: p1.nextPageToken })).rejects.toMatchObject({ field: "page_token" });
    await expect(c.listTurns({ address: byId(s.id), participantId: "", afterSeq: -1, pageSize: 0, pageToken: "" })).rejects.toMatchObject({ field: "after_seq" });
    await expect(c.listTurns({ address: byId(s.id), participantId: "", afterSeq: 0, pageSize: 1001, pageToken: "" })).rejects.toMatchObject({ field: "page_size" });
    expect((await c.listTurns({ address: byId(s.id), participantId: "nobody", afterSeq: 0, pageSize: 0, pageToken: "" })).turns).toEqual([]);
  });

  describe("newest first", () => {
    const list = (id: string, over: { participantId?: string; afterSeq?: number; pageSize?: number; pageToken?: string; newestFirst?: boolean } = {}) =>
      ctx.services.conversations.listTurns({ address: byId(id), participantId: "", afterSeq: 0, pageSize: 0, pageToken: "", newestFirst: true, ...over });
    const seqs = (page: { turns: { seq: number }[] }) => page.turns.map((t) => t.seq);

    it("reads the last N turns, then pages on to older ones down to the first", async () => {
      const s = await conversation("newest-1");
      await ctx.services.conversations.append(byId(s.id), Array.from({ length: 7 }, (_, i) => turn(i % 2 ? "a" : "u", `t${i + 1}`)), "");
      const p1 = await list(s.id, { pageSize: 3 });
      expect(seqs(p1)).toEqual([7, 6, 5]);
      expect(p1.turns[0].content).toBe("t7");
      const p2 = await list(s.id, { pageSize: 3, pageToken: p1.nextPageToken });
      expect(seqs(p2)).toEqual([4, 3, 2]);
      const p3 = await list(s.id, { pageSize: 3, pageToken: p2.nextPageToken });
      expect(seqs(p3)).toEqual([1]);
      expect(p3.nextPageToken).toBe("");
      // Exactly N left: the page holds them all and there is no next one.
      expect(await list(s.id, { pageSize: 7 })).toMatchObject({ nextPageToken: "" });
    });

    it("returns every turn when N is larger than the count, and nothing for a session without turns", async () => {
      const s = await conversation("newest-2");
      expect(await list(s.id, { pageSize: 5 })).toEqual({ turns: [], nextPageToken: "" });
      await ctx.services.conversations.append(byId(s.id), [turn("u", "a"), turn("a", "b")], "");
      expect(await list(s.id, { pageSize: 1000 }).then(seqs)).toEqual([2, 1]);
      expect((await list(s.id, { pageSize: 1000 })).nextPageToken).toBe("");
    });

    it("with after_seq reads the newest turns after it, and stops there; with a participant, only theirs", async () => {
      const s = await conversation("newest-3");
      await ctx.services.conversations.append(byId(s.id), Array.from({ length: 10 }, (_, i) => turn(i % 2 ? "a" : "u", `t${i + 1}`)), "");
      const p1 = await list(s.id, { afterSeq: 6, pageSize: 3 });
      expect(seqs(p1)).toEqual([10, 9, 8]);
      const p2 = await list(s.id, { afterSeq: 6, pageSize: 3, pageToken: p1.nextPageToken });
      expect(seqs(p2)).toEqual([7]);
      expect(p2.nextPageToken).toBe("");
      expect(await list(s.id, { afterSeq: 10 }).then(seqs)).toEqual([]);
      const a1 = await list(s.id, { participantId: "a", pageSize: 2 });
      expect(seqs(a1)).toEqual([10, 8]);
      expect(await list(s.id, { participantId: "a", pageSize: 2, pageToken: a1.nextPageToken }).then(seqs)).toEqual([6, 4]);
      expect(await list(s.id, { participantId: "u", afterSeq: 5, pageSize: 10 }).then(seqs)).toEqual([9, 7]);
    });

    it("refuses a page token of the other order", async () => {
      const s = await conversation("newest-4");
      await ctx.services.conversations.append(byId(s.id), [turn("u", "1"), turn("a", "2"), turn("u", "3")], "");
      const newest = await list(s.id, { pageSize: 1 });
      const oldest = await list(s.id, { pageSize: 1, newestFirst: false });
      expect([seqs(newest), seqs(oldest)]).toEqual([[3], [1]]);
      await expect(list(s.id, { pageSize: 1, pageToken: newest.nextPageToken, newestFirst: false })).rejects.toMatchObject({ field: "page_token", message: expect.stringContaining("newest_first") });
      await expect(list(s.id, { pageSize: 1, pageToken: oldest.nextPageToken })).rejects.toMatchObject({ field: "page_token" });
      expect(await list(s.id, { pageSize: 1, pageToken: oldest.nextPageToken, newestFirst: false }).then(seqs)).toEqual([2]);
    });
  });
});

describe("TruncateSession and DeleteSession with participants and turns", () => {
  it("truncate clears turns, insights and marks but keeps participants; numbering continues", async () => {
    const s = await conversation("trunc");
    const c = ctx.services.conversations;
    await c.append(byId(s.id), [turn("u", "my name is Alice"), turn("a", "hi")], "r1");
    await ctx.db.sql("UPDATE participants SET insights = '[\"x\"]', last_integrated_seq = 2 WHERE session_id = $1", [s.uuid]);
    const { turnsDeleted, session } = await ctx.sessions.truncate(byId(s.id));
    expect(turnsDeleted).toBe(2);
    expect(session.stats).toMatchObject({ turnCount: 0, participantCount: 2 });
    const ps = await c.participants(byId(s.id));
    expect(ps.map((p) => [p.participantId, p.insights, p.lastIntegratedSeq])).toEqual([
      ["u", [], 0],
      ["a", [], 0],
    ]);
    const again = await c.append(byId(s.id), [turn("u", "again")], "r1");
    expect(again).toMatchObject({ replayed: false, turns: [{ seq: 3 }] });
  });

  it("delete reports the participants and turns that went with the session", async () => {
    const s = await conversation("del-conv");
    await ctx.services.conversations.append(byId(s.id), [turn("u", "1"), turn("a", "2"), turn("u", "3")], "r");
    const { deleted } = await ctx.sessions.delete(byId(s.id), "");
    expect(deleted).toMatchObject({ participants: 2, turns: 3 });
    const [{ p, t, r }] = await ctx.db.sql(
      "SELECT (SELECT count(*)::int FROM participants WHERE session_id = $1) AS p, (SELECT count(*)::int FROM turns WHERE session_id = $1) AS t, (SELECT count(*)::int FROM turn_requests WHERE session_id = $1) AS r",
      [s.uuid],
    );
    expect([p, t, r]).toEqual([0, 0, 0]);
  });
});
