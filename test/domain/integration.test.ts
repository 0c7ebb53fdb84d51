import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { NewTurn } from "../../src/domain/conversation-model.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import { byId, newSession, useDatabase } from "../setup/context.js";
import { useRemoteIntegrator } from "../setup/integrator.js";

const ctx = useDatabase();
const never = new AbortController().signal;

const turn = (participantId: string, content: string): NewTurn => ({ participantId, role: "", content, toolCalls: [], metadata: {} });

async function conversation(namespace: string, sessionId: string) {
  const s = await ctx.sessions.create(newSession({ namespace, sessionId, user: "alice" }));
  const c = ctx.services.conversations;
  await c.bind({ address: byId(s.id), participantId: "alice", kind: "user", displayName: "Alice", metadata: {} });
  await c.bind({ address: byId(s.id), participantId: "bot", kind: "agent", displayName: "Bot", metadata: {} });
  return s;
}

/** A real Connect IntegratorService on a free port; `behave` decides each answer. */
const remote = useRemoteIntegrator();

describe("IntegrateSession with the built-in rules integrator", () => {
  it("stores memories and insights, advances marks, counts them, and integrates nothing new the second time", async () => {
    const s = await conversation("rules", "r1");
    await ctx.services.conversations.append(byId(s.id), [turn("alice", "Hi! My name is Alice. I prefer green tea."), turn("bot", "Nice to meet you, Alice."), turn("alice", "Remember that my birthday is in May.")], "");
    const first = await ctx.services.integration.integrate(byId(s.id), never);
    const byParticipant = Object.fromEntries(first.results.map((r) => [r.participantId, r]));
    expect(byParticipant.bot).toMatchObject({ outcome: "integrated", turnsIntegrated: 3, lastIntegratedSeq: 3, error: "" });
    expect(byParticipant.bot.memoriesCreated).toBeGreaterThanOrEqual(3);
    expect(byParticipant.alice).toMatchObject({ outcome: "integrated", turnsIntegrated: 3, memoriesCreated: 0 });
    expect(first.stats).toMatchObject({ memoriesExtracted: byParticipant.bot.memoriesCreated, integrationCount: 1 });

    const { memories } = await ctx.services.memories.list({ namespace: "rules", subjectParticipantId: "", subjectUser: "alice", sourceSession: "", sourceSessionId: "", pageSize: 0, pageToken: "" });
    const contents = memories.map((m) => m.content);
    expect(contents).toEqual(expect.arrayContaining(["name: Alice", "prefers: green tea", "my birthday is in May"]));
    for (const m of memories) expect(m).toMatchObject({ sourceSession: s.id, subjectParticipantId: "alice", subjectUser: "alice", integratedBy: "bot" });
    const [bot] = (await ctx.services.conversations.participants(byId(s.id))).filter((p) => p.participantId === "bot");
    expect(bot.lastIntegratedSeq).toBe(3);
    expect(bot.insights.length).toBe(byParticipant.bot.insightsAdded);

    const second = await ctx.services.integration.integrate(byId(s.id), never);
    expect(second.results.map((r) => r.outcome)).toEqual(["nothing_new", "nothing_new"]);
    expect(second.stats.integrationCount).toBe(1);
  });

  it("skips participants that left, and feeds only turns after the mark", async () => {
    const s = await conversation("rules", "r2");
    const c = ctx.services.conversations;
    await c.append(byId(s.id), [turn("alice", "I like jazz.")], "");
    await ctx.services.integration.integrate(byId(s.id), never);
    await c.append(byId(s.id), [turn("alice", "I live in Lisbon.")], "");
    await c.unbind(byId(s.id), "alice");
    const { results } = await ctx.services.integration.integrate(byId(s.id), never);
    expect(results).toEqual([expect.objectContaining({ participantId: "bot", outcome: "integrated", turnsIntegrated: 1, lastIntegratedSeq: 2 })]);
    const { memories } = await ctx.services.memories.list({ namespace: "rules", subjectParticipantId: "", subjectUser: "", sourceSession: s.id, sourceSessionId: "", pageSize: 0, pageToken: "" });
    expect(memories.map((m) => m.content).sort()).toEqual(["lives in Lisbon", "prefers: jazz"]);
  });
});

describe("IntegrateSession with a remote IntegratorService", () => {
  it("sends the participant, everyone and the new turns, and stores what comes back", async () => {
    await ctx.services.memories.updateIntegratorConfig("remote-ok", { kind: "remote", url: remote.url, timeoutMs: 60_000 });
    const s = await conversation("remote-ok", "s");
    await ctx.services.conversations.append(byId(s.id), [turn("alice", "I want a refund"), turn("bot", "Let me check")], "");
    remote.calls = [];
    remote.behave = async (req) => ({
      insights: [`${req.participant!.participantId} saw ${req.turns.length} turns`],
      memories: req.participant!.participantId === "bot" ? [{ content: "asked for a refund", subjectParticipantId: "alice", subjectUser: req.user, metadata: { score: 0.9 } }] : [],
    });
    const { results, stats } = await ctx.services.integration.integrate(byId(s.id), never);
    expect(results.map((r) => [r.participantId, r.outcome, r.turnsIntegrated, r.insightsAdded, r.memoriesCreated])).toEqual([
      ["alice", "integrated", 2, 1, 0],
      ["bot", "integrated", 2, 1, 1],
    ]);
    expect(stats.memoriesExtracted).toBe(1);
    const call = remote.calls.find((c) => c.participant?.participantId === "bot")!;
    expect(call).toMatchObject({ namespace: "remote-ok", session: s.id, sessionId: "s", user: "alice" });
    expect(call.turns.map((t) => [Number(t.seq), t.participantId, t.content])).toEqual([
      [1, "alice", "I want a refund"],
      [2, "bot", "Let me check"],
    ]);
    expect(call.participants.map((p) => p.participantId)).toEqual(["alice", "bot"]);
    const { memories } = await ctx.services.memories.list({ namespace: "remote-ok", subjectParticipantId: "alice", subjectUser: "", sourceSession: "", sourceSessionId: "s", pageSize: 0, pageToken: "" });
    expect(memories).toEqual([expect.objectContaining({ content: "asked for a refund", metadata: { score: 0.9 }, integratedBy: "bot" })]);
  });

  it("gives FAILED for an error, a timeout, an unreachable URL or an oversized answer, loses no turns, and succeeds on retry", async () => {
    const s = await conversation("remote-bad", "s");
    await ctx.services.conversations.append(byId(s.id), [turn("alice", "hello")], "");
    const integrate = () => ctx.services.integration.integrate(byId(s.id), never);
    const marks = async () => (await ctx.services.conversations.participants(byId(s.id))).map((p) => p.lastIntegratedSeq);

    // An integrator that answers gets a generous timeout, so that a busy machine cannot turn its answer
    // into a timeout; only the one that never answers gets a short one.
    const answers = { kind: "remote" as const, url: remote.url, timeoutMs: 60_000 };
    await ctx.services.memories.updateIntegratorConfig("remote-bad", answers);
    remote.behave = async () => {
      throw new ConnectError("model overloaded", Code.ResourceExhausted);
    };
    let { results } = await integrate();
    expect(results.map((r) => r.outcome)).toEqual(["failed", "failed"]);
    expect(results[0].error).toContain("model overloaded");

    await ctx.services.memories.updateIntegratorConfig("remote-bad", { ...answers, timeoutMs: 300 });
    remote.behave = (_req, context) => new Promise((_resolve, reject) => context.signal.addEventListener("abort", () => reject(context.signal.reason)));
    ({ results } = await integrate());
    expect(results.map((r) => r.outcome)).toEqual(["failed", "failed"]);
    expect(results[0].error).toBe("the integrator did not answer within 300 ms");

    await ctx.services.memories.updateIntegratorConfig("remote-bad", answers);
    remote.behave = async () => ({ insights: [], memories: Array.from({ length: 1001 }, () => ({ content: "x", subjectParticipantId: "", subjectUser: "", metadata: {} })) });
    ({ results } = await integrate());
    expect(results[0]).toMatchObject({ outcome: "failed", error: "the integrator's response was refused: memories: at most 1000, got 1001" });

    await ctx.services.memories.updateIntegratorConfig("remote-bad", { ...answers, url: "http://127.0.0.1:1" });
    ({ results } = await integrate());
    expect(results.map((r) => r.outcome)).toEqual(["failed", "failed"]);
    expect(await marks()).toEqual([0, 0]);
    expect((await ctx.sessions.get(byId(s.id), false)).stats).toMatchObject({ memoriesExtracted: 0, integrationCount: 0 });

    await ctx.services.memories.updateIntegratorConfig("remote-bad", answers);
    remote.behave = async () => ({ insights: ["ok"], memories: [] });
    ({ results } = await integrate());
    expect(results.map((r) => [r.outcome, r.turnsIntegrated])).toEqual([
      ["integrated", 1],
      ["integrated", 1],
    ]);
    expect(await marks()).toEqual([1, 1]);
  });

  it("stores nothing from turns truncated while the integrator was working", async () => {
    await ctx.services.memories.updateIntegratorConfig("remote-trunc", { kind: "remote", url: remote.url, timeoutMs: 60_000 });
    const s = await conversation("remote-trunc", "s");
    await ctx.services.conversations.unbind(byId(s.id), "alice");
    await ctx.services.conversations.append(byId(s.id), [turn("bot", "my secret is 42")], "");
    remote.behave = async () => {
      await ctx.sessions.truncate(byId(s.id));
      return { insights: ["secret: 42"], memories: [{ content: "secret is 42", subjectParticipantId: "bot", subjectUser: "", metadata: {} }] };
    };
    const { results, stats } = await ctx.services.integration.integrate(byId(s.id), never);
    expect(results).toEqual([expect.objectContaining({ participantId: "bot", outcome: "nothing_new", memoriesCreated: 0, lastIntegratedSeq: 0 })]);
    expect(stats.memoriesExtracted).toBe(0);
    const [bot] = await ctx.services.conversations.participants(byId(s.id)).then((ps) => ps.filter((p) => p.participantId === "bot"));
    expect([bot.insights, bot.lastIntegratedSeq]).toEqual([[], 0]);
  });

  it("feeds a long backlog in chunks of 200 turns, advancing the mark after each", async () => {
    await ctx.services.memories.updateIntegratorConfig("remote-long", { kind: "remote", url: remote.url, timeoutMs: 60_000 });
    const s = await conversation("remote-long", "s");
    for (let i = 0; i < 5; i++) await ctx.services.conversations.append(byId(s.id), Array.from({ length: 100 }, (_, j) => turn("alice", `turn ${i * 100 + j + 1}`)), "");
    await ctx.services.conversations.unbind(byId(s.id), "alice");
    remote.calls = [];
    remote.behave = async () => ({ insights: [], memories: [] });
    const { results } = await ctx.services.integration.integrate(byId(s.id), never);
    expect(results).toEqual([expect.objectContaining({ participantId: "bot", outcome: "integrated", turnsIntegrated: 500, lastIntegratedSeq: 500 })]);
    expect(remote.calls.map((c) => [Number(c.turns[0].seq), c.turns.length])).toEqual([
      [1, 200],
      [201, 200],
      [401, 100],
    ]);
  });
});

describe("MemoryService", () => {
  async function withMemories(namespace: string) {
    const s = await conversation(namespace, "m");
    await ctx.services.conversations.append(byId(s.id), [turn("alice", "I like cats. I live in Oslo. Remember that I am allergic to nuts.")], "");
    await ctx.services.integration.integrate(byId(s.id), never);
    return s;
  }
  const list = (namespace: string, over: Partial<Parameters<typeof ctx.services.memories.list>[0]> = {}) =>
    ctx.services.memories.list({ namespace, subjectParticipantId: "", subjectUser: "", sourceSession: "", sourceSessionId: "", pageSize: 0, pageToken: "", ...over });

  it("pages newest first and keeps memories of a deleted session with an empty source", async () => {
    const s = await withMemories("mem-keep");
    const all = (await list("mem-keep")).memories;
    expect(all.length).toBe(3);
    const p1 = await list("mem-keep", { pageSize: 2 });
    const p2 = await list("mem-keep", { pageSize: 2, pageToken: p1.nextPageToken });
    expect([...p1.memories, ...p2.memories].map((m) => m.id)).toEqual(all.map((m) => m.id));
    await expect(list("mem-keep", { pageSize: 2, pageToken: p1.nextPageToken, subjectUser: "bob" })).rejects.toMatchObject({ field: "page_token" });

    await ctx.sessions.delete(byId(s.id), "");
    const after = (await list("mem-keep")).memories;
    expect(after.map((m) => m.id)).toEqual(all.map((m) => m.id));
    for (const m of after) expect(m.sourceSession).toBe("");
    expect((await list("other-namespace")).memories).toEqual([]);
  });

  it("deletes by id, by source session and by subject, only in the caller's namespace", async () => {
    const s = await withMemories("mem-del");
    await withMemories("mem-del-other");
    const all = (await list("mem-del")).memories;
    const m = ctx.services.memories;
    expect(await m.delete("mem-del-other", { kind: "ids", values: [all[0].id] })).toBe(0);
    expect(await m.delete("mem-del", { kind: "ids", values: [all[0].id] })).toBe(1);
    expect(await m.delete("mem-del", { kind: "sourceSessionId", sessionId: "m" })).toBe(2);
    await withMemories("mem-forget");
    expect(await m.delete("mem-forget", { kind: "subject", participantId: "", user: "alice" })).toBe(3);
    expect((await list("mem-forget")).memories).toEqual([]);
    expect((await list("mem-del-other")).memories.length).toBe(3);
    expect(await m.delete("mem-del", { kind: "sourceSession", id: s.id })).toBe(0);
  });

  it("reads and deletes by a source session's global id only in that session's namespace; an id of the old form still names it", async () => {
    const s = await withMemories("mem-src");
    const theirs = await withMemories("mem-src-other");
    const m = ctx.services.memories;
    const old = Buffer.from(`Session:${s.uuid}`).toString("base64url");
    expect((await list("mem-src", { sourceSession: s.id })).memories.map((x) => x.sourceSession)).toEqual([s.id, s.id, s.id]);
    expect((await list("mem-src", { sourceSession: old })).memories).toHaveLength(3);
    // Another namespace's session, by its id or by its uuid under this namespace's uuid: nothing.
    expect((await list("mem-src", { sourceSession: theirs.id })).memories).toEqual([]);
    expect((await list("mem-src", { sourceSession: encodeSessionId(s.namespaceId, theirs.uuid) })).memories).toEqual([]);
    expect((await list("mem-src-other", { sourceSession: s.id })).memories).toEqual([]);
    expect(await m.delete("mem-src", { kind: "sourceSession", id: theirs.id })).toBe(0);
    expect(await m.delete("mem-src-other", { kind: "sourceSession", id: s.id })).toBe(0);
    expect((await list("mem-src-other")).memories).toHaveLength(3);
    expect(await m.delete("mem-src", { kind: "sourceSession", id: old })).toBe(3);
    expect((await list("mem-src")).memories).toEqual([]);
  });

  it("rejects bad selectors and configurations, naming the field", async () => {
    const m = ctx.services.memories;
    await expect(m.delete("x", { kind: "none" })).rejects.toMatchObject({ field: "selector" });
    await expect(m.delete("x", { kind: "ids", values: [] })).rejects.toMatchObject({ field: "ids.values" });
    await expect(m.delete("x", { kind: "ids", values: ["nope"] })).rejects.toMatchObject({ field: "ids.values[0]" });
    await expect(m.delete("x", { kind: "subject", participantId: "", user: "" })).rejects.toMatchObject({ field: "subject" });
    await expect(list("x", { sourceSession: "garbage" })).rejects.toMatchObject({ field: "source_session" });
    await expect(m.updateIntegratorConfig("x", { kind: "remote", url: "", timeoutMs: undefined })).rejects.toMatchObject({ field: "config.url" });
    await expect(m.updateIntegratorConfig("x", { kind: "remote", url: "ftp://h/", timeoutMs: undefined })).rejects.toMatchObject({ field: "config.url" });
    await expect(m.updateIntegratorConfig("x", { kind: "rules", url: "http://h/", timeoutMs: undefined })).rejects.toMatchObject({ field: "config.url" });
    await expect(m.updateIntegratorConfig("x", { kind: "remote", url: "http://h/", timeoutMs: 200_000 })).rejects.toMatchObject({ field: "config.timeout" });
    for (const url of ["http://h/admin#", "http://h/x?y=1", "http://u:p@h/", "http://h/a\u0000b"]) {
      await expect(m.updateIntegratorConfig("x", { kind: "remote", url, timeoutMs: undefined })).rejects.toMatchObject({ field: "config.url" });
    }
    expect(await m.updateIntegratorConfig("x", { kind: "remote", url: "http://integrator:8080/base/", timeoutMs: undefined })).toEqual({ kind: "remote", url: "http://integrator:8080/base", timeoutMs: 10_000 });
    expect(await m.integratorConfig("never-configured")).toEqual({ kind: "rules", url: "", timeoutMs: 10_000 });
  });
});
