import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { IntegrationOutcome, ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorKind } from "../../gen/sessiond/v1/memory_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();
const run = promisify(execFile);
const BUF = path.resolve("node_modules/.bin/buf");

describe.each(["connect/http1.1", "grpc/http2", "grpc-web/http1.1"])("participants, turns and memories over %s", (name) => {
  const ns = `conv-${name.replace(/[^a-z0-9]/g, "")}`;

  it("binds, appends, lists, integrates, and reads and forgets memories", async () => {
    const transport = transports(ctx.url)[name];
    const sessions = createClient(SessionService, transport);
    const memories = createClient(MemoryService, transport);
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "chat", user: "alice" });
    const addr = { namespace: ns, sessionId: "chat" };

    const bound = await sessions.bindParticipant({ ...addr, participantId: "alice", kind: ParticipantKind.USER, displayName: "Alice", metadata: { tier: "gold" } });
    expect(bound).toMatchObject({ created: true, participant: { participantId: "alice", kind: ParticipantKind.USER, metadata: { tier: "gold" }, lastIntegratedSeq: 0n } });
    await sessions.bindParticipant({ ...addr, participantId: "bot", kind: ParticipantKind.AGENT });

    const appended = await sessions.appendTurns({
      id: session!.id,
      requestId: "r-1",
      turns: [
        { participantId: "alice", content: "Hello, my name is Alice and I prefer short answers." },
        { participantId: "bot", content: "Noted.", toolCalls: [{ id: "t1", name: "crm.lookup", arguments: { user: "alice" } }] },
      ],
    });
    expect(appended.turns.map((t) => [t.seq, t.role])).toEqual([
      [1n, "user"],
      [2n, "assistant"],
    ]);
    expect((await sessions.appendTurns({ id: session!.id, requestId: "r-1", turns: [{ participantId: "alice", content: "Hello, my name is Alice and I prefer short answers." }, { participantId: "bot", content: "Noted.", toolCalls: [{ id: "t1", name: "crm.lookup", arguments: { user: "alice" } }] }] })).replayed).toBe(true);

    const listed = await sessions.listTurns({ ...addr, participantId: "bot" });
    expect(listed.turns).toEqual([expect.objectContaining({ seq: 2n, content: "Noted.", toolCalls: [expect.objectContaining({ name: "crm.lookup", arguments: { user: "alice" } })] })]);
    expect((await sessions.listParticipants(addr)).participants.map((p) => p.participantId)).toEqual(["alice", "bot"]);

    const integrated = await sessions.integrateSession(addr);
    expect(integrated.results.map((r) => [r.participantId, r.outcome])).toEqual([
      ["alice", IntegrationOutcome.INTEGRATED],
      ["bot", IntegrationOutcome.INTEGRATED],
    ]);
    expect(integrated.stats).toMatchObject({ participantCount: 2, turnCount: 2, memoriesExtracted: 2, integrationCount: 1 });

    const mem = await memories.listMemories({ namespace: ns, subjectUser: "alice" });
    expect(mem.memories.map((m) => m.content).sort()).toEqual(["name: Alice", "prefers: short answers"]);
    expect(mem.memories[0]).toMatchObject({ sourceSession: session!.id, subjectParticipantId: "alice", integratedBy: "bot", namespace: ns });

    const { session: after } = await sessions.getSession(addr);
    expect(after?.stats).toMatchObject({ participantCount: 2, turnCount: 2, memoriesExtracted: 2, integrationCount: 1 });
    expect((await memories.deleteMemories({ namespace: ns, selector: { case: "subject", value: { user: "alice" } } })).deletedCount).toBe(2);
    expect((await memories.listMemories({ namespace: ns })).memories).toEqual([]);
  });

  it("runs the common chat flow in three calls: create with participants, append, read the last turns", async () => {
    const sessions = createClient(SessionService, transports(ctx.url)[name]);
    const { session } = await sessions.createSession({
      namespace: ns,
      sessionId: "flow",
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    const id = session!.id;
    const say = (n: number) => Array.from({ length: n }, (_, i) => ({ participantId: i % 2 ? "bot" : "alice", content: `message ${i + 1}` }));
    const appended = await sessions.appendTurns({ id, requestId: "first", turns: say(2) });
    expect(appended.turns.map((t) => t.seq)).toEqual([1n, 2n]);
    // What the append answers is what GetSession says next.
    const stats = async () => (await sessions.getSession({ id })).session!.stats;
    expect(appended).toMatchObject({ replayed: false, lastSeq: 2n });
    expect(appended.stats).toEqual(await stats());
    expect(appended.stats).toMatchObject({ participantCount: 2, turnCount: 2 });
    const more = await sessions.appendTurns({ id, turns: say(5) });
    expect(more.lastSeq).toBe(7n);
    expect(more.stats).toEqual(await stats());
    const replay = await sessions.appendTurns({ id, requestId: "first", turns: say(2) });
    expect(replay).toMatchObject({ replayed: true, lastSeq: 7n, turns: appended.turns });
    expect(replay.stats).toEqual(await stats());

    // The last 3, newest first; the token pages on to older turns.
    const last = await sessions.listTurns({ id, newestFirst: true, pageSize: 3 });
    expect(last.turns.map((t) => [t.seq, t.content])).toEqual([
      [7n, "message 5"],
      [6n, "message 4"],
      [5n, "message 3"],
    ]);
    const older = await sessions.listTurns({ id, newestFirst: true, pageSize: 3, pageToken: last.nextPageToken });
    expect(older.turns.map((t) => t.seq)).toEqual([4n, 3n, 2n]);
    const oldest = await sessions.listTurns({ id, newestFirst: true, pageSize: 3, pageToken: older.nextPageToken });
    expect([oldest.turns.map((t) => t.seq), oldest.nextPageToken]).toEqual([[1n], ""]);
    // More than there are: all of them, no next page. after_seq: only what came after it.
    expect((await sessions.listTurns({ id, newestFirst: true, pageSize: 50 })).turns.map((t) => t.seq)).toEqual([7n, 6n, 5n, 4n, 3n, 2n, 1n]);
    const since = await sessions.listTurns({ id, newestFirst: true, afterSeq: 4n, pageSize: 2 });
    expect(since.turns.map((t) => t.seq)).toEqual([7n, 6n]);
    expect((await sessions.listTurns({ id, newestFirst: true, afterSeq: 4n, pageSize: 2, pageToken: since.nextPageToken })).turns.map((t) => t.seq)).toEqual([5n]);
    // A token of one order is refused in the other.
    await expect(sessions.listTurns({ id, pageSize: 3, pageToken: last.nextPageToken })).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringMatching(/^page_token: was issued for a different request/) });
    // A session without turns: an empty page.
    const { session: empty } = await sessions.createSession({ namespace: ns });
    expect(await sessions.listTurns({ id: empty!.id, newestFirst: true, pageSize: 10 })).toMatchObject({ turns: [], nextPageToken: "" });
  });

  it("answers bad input with precise codes and messages naming the field", async () => {
    const sessions = createClient(SessionService, transports(ctx.url)[name]);
    const memories = createClient(MemoryService, transports(ctx.url)[name]);
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "bad" });
    const id = session!.id;
    await sessions.bindParticipant({ id, participantId: "u", kind: ParticipantKind.USER });
    const expectError = (p: Promise<unknown>, code: Code, message: string | RegExp) => expect(p).rejects.toMatchObject({ code, rawMessage: expect.stringMatching(message) });

    await expectError(sessions.appendTurns({ id, turns: [] }), Code.InvalidArgument, /^turns: must hold at least one turn$/);
    await expectError(sessions.appendTurns({ id, turns: Array.from({ length: 101 }, () => ({ participantId: "u", content: "x" })) }), Code.InvalidArgument, /^turns: at most 100 per call, got 101$/);
    await expectError(sessions.appendTurns({ id, turns: [{ participantId: "u", content: "" }] }), Code.InvalidArgument, /^turns\[0\]\.content: must not be empty$/);
    await expectError(sessions.appendTurns({ id, turns: [{ participantId: "u", content: "x".repeat(65 * 1024) }] }), Code.InvalidArgument, /^turns\[0\]\.content: must be at most 65536 bytes/);
    await expectError(sessions.appendTurns({ id, turns: [{ participantId: "ghost", content: "boo" }] }), Code.FailedPrecondition, /participant "ghost" is not bound/);
    await sessions.appendTurns({ id, requestId: "once", turns: [{ participantId: "u", content: "a" }] });
    await expectError(sessions.appendTurns({ id, requestId: "once", turns: [{ participantId: "u", content: "b" }] }), Code.AlreadyExists, /request_id "once" was already used/);
    await expectError(sessions.bindParticipant({ id, participantId: "u", kind: ParticipantKind.AGENT }), Code.AlreadyExists, /bound as USER/);
    await expectError(sessions.bindParticipant({ id, participantId: "v" }), Code.InvalidArgument, /^kind: is required/);
    await expectError(sessions.bindParticipant({ id, participantId: "v", kind: 9 as ParticipantKind }), Code.InvalidArgument, /^kind: unknown kind 9$/);
    await expectError(sessions.listTurns({ id, afterSeq: -1n }), Code.InvalidArgument, /^after_seq:/);
    await expectError(sessions.unbindParticipant({ id, participantId: "nobody" }), Code.NotFound, /participant "nobody" not found/);
    await expectError(memories.deleteMemories({ namespace: ns }), Code.InvalidArgument, /^selector:/);
    await expectError(memories.updateIntegratorConfig({ namespace: ns, config: { kind: IntegratorKind.REMOTE, url: "not a url" } }), Code.InvalidArgument, /^config\.url:/);
    await sessions.cancelSession({ id });
    await expectError(sessions.appendTurns({ id, turns: [{ participantId: "u", content: "late" }] }), Code.FailedPrecondition, /is cancelled/);
  });
});

describe("a remote integrator that cannot be reached", () => {
  it("gives each participant FAILED without failing the call", async () => {
    const transport = transports(ctx.url)["grpc/http2"];
    const sessions = createClient(SessionService, transport);
    const memories = createClient(MemoryService, transport);
    const config = await memories.updateIntegratorConfig({ namespace: "unreachable", config: { kind: IntegratorKind.REMOTE, url: "http://127.0.0.1:1", timeout: { seconds: 2n } } });
    expect(config.config).toMatchObject({ kind: IntegratorKind.REMOTE, url: "http://127.0.0.1:1", timeout: { seconds: 2n } });
    const { session } = await sessions.createSession({ namespace: "unreachable" });
    await sessions.bindParticipant({ id: session!.id, participantId: "a", kind: ParticipantKind.AGENT });
    await sessions.appendTurns({ id: session!.id, turns: [{ participantId: "a", content: "hi" }] });
    const { results } = await sessions.integrateSession({ id: session!.id });
    expect(results).toEqual([expect.objectContaining({ participantId: "a", outcome: IntegrationOutcome.FAILED, lastIntegratedSeq: 0n, error: expect.stringMatching(/^the integrator failed: /) })]);
  });
});

describe("buf curl", () => {
  it("appends and lists turns with JSON bodies and reflection", async () => {
    const client = createClient(SessionService, transports(ctx.url)["grpc/http2"]);
    await client.createSession({ namespace: "curl", sessionId: "c" });
    const call = async (method: string, body: unknown) =>
      JSON.parse((await run(BUF, ["curl", "-H", `Authorization: Bearer ${TEST_ADMIN_KEY}`, "--protocol", "grpc", "-d", JSON.stringify(body), `${ctx.url}/sessiond.v1.SessionService/${method}`], { timeout: 30_000 })).stdout);
    await call("BindParticipant", { namespace: "curl", sessionId: "c", participantId: "op", kind: "PARTICIPANT_KIND_USER" });
    const appended = await call("AppendTurns", { namespace: "curl", sessionId: "c", turns: [{ participantId: "op", content: "from buf curl" }] });
    expect(appended.turns[0]).toMatchObject({ seq: "1", role: "user" });
    expect(appended).toMatchObject({ lastSeq: "1", stats: { participantCount: 1, turnCount: 1 } });
    expect((await call("ListTurns", { namespace: "curl", sessionId: "c" })).turns.map((t: { content: string }) => t.content)).toEqual(["from buf curl"]);
    await call("AppendTurns", { namespace: "curl", sessionId: "c", turns: [{ participantId: "op", content: "second" }] });
    expect((await call("ListTurns", { namespace: "curl", sessionId: "c", newestFirst: true, pageSize: 1 })).turns.map((t: { content: string }) => t.content)).toEqual(["second"]);
  });
});
