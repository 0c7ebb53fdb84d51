import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { SessionState, SortOrder } from "../../gen/sessiond/v1/session_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { decodeSessionId, encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer({ SESSIOND_MAX_MESSAGE_BYTES: String(64 * 1024) });

describe.each(["connect/http1.1", "connect/http2", "grpc/http2", "grpc-web/http1.1"])("the whole lifecycle over %s", (name) => {
  it("creates, reads, lists, updates, cancels, soft-deletes, undeletes, truncates and deletes", async () => {
    const client = createClient(SessionService, transports(ctx.url)[name]);
    const ns = `life-${name.replace(/[^a-z0-9]/g, "")}`;
    const { session } = await client.createSession({ namespace: ns, sessionId: "s1", user: "alice", labels: { env: "test" }, data: { topic: "tea" }, workflow: { id: "wf", version: "1" } });
    expect(session).toMatchObject({ namespace: ns, sessionId: "s1", user: "alice", state: SessionState.ACTIVE, maxRequestsPerMinute: 10, data: { topic: "tea" } });
    expect(Buffer.from(session!.id, "base64url").toString("latin1")).toMatch(/^Session:\x01[\s\S]{32}$/);
    const [row] = await ctx.db.sql("SELECT s.namespace_id, s.id FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1 AND s.external_id = 's1'", [ns]);
    expect(decodeSessionId(session!.id)).toEqual({ namespaceId: row.namespace_id, uuid: row.id });

    expect((await client.getSession({ id: session!.id })).session).toEqual(session);
    expect((await client.getSession({ namespace: ns, sessionId: "s1" })).session?.id).toBe(session!.id);

    await client.createSession({ namespace: ns, sessionId: "s2" });
    const list = await client.listSessions({ namespace: ns, pageSize: 1, order: SortOrder.ASCENDING });
    expect(list.sessions.map((s) => s.sessionId)).toEqual(["s1"]);
    const next = await client.listSessions({ namespace: ns, pageSize: 1, order: SortOrder.ASCENDING, pageToken: list.nextPageToken });
    expect(next.sessions.map((s) => s.sessionId)).toEqual(["s2"]);
    expect(next.nextPageToken).toBe("");

    const updated = await client.updateSession({ session: { id: session!.id, labels: { env: "prod" }, etag: session!.etag }, updateMask: { paths: ["labels"] } });
    expect(updated.session?.labels).toEqual({ env: "prod" });

    expect((await client.cancelSession({ id: session!.id })).session?.state).toBe(SessionState.CANCELLED);
    expect((await client.softDeleteSession({ id: session!.id })).session?.state).toBe(SessionState.SOFT_DELETED);
    expect((await client.undeleteSession({ id: session!.id })).session?.state).toBe(SessionState.CANCELLED);
    const truncated = await client.truncateSession({ id: session!.id });
    expect(truncated.session?.data).toEqual({});

    const deleted = await client.deleteSession({ namespace: ns, sessionId: "s1" });
    expect(deleted).toMatchObject({ id: session!.id, sessionId: "s1", deleted: { participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 } });
    await expect(client.getSession({ id: session!.id })).rejects.toMatchObject({ code: Code.NotFound });
  });
});

describe.each(["connect/http1.1", "grpc/http2", "grpc-web/http1.1"])("a session created with its participants over %s", (name) => {
  const ns = `with-p-${name.replace(/[^a-z0-9]/g, "")}`;
  /** Sessions and participants stored under `sessionId` in the namespace. */
  const stored = async (sessionId: string) =>
    (
      await ctx.db.sql(
        `SELECT count(DISTINCT s.id)::int AS sessions, count(p.id)::int AS participants FROM sessions s JOIN namespaces n ON n.id = s.namespace_id
         LEFT JOIN participants p ON p.namespace_id = s.namespace_id AND p.session_id = s.id WHERE n.name = $1 AND s.external_id = $2`,
        [ns, sessionId],
      )
    )[0];

  it("binds them in the same call and returns them, counted on the session", async () => {
    const client = createClient(SessionService, transports(ctx.url)[name]);
    const created = await client.createSession({
      namespace: ns,
      sessionId: "chat",
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER, displayName: "Alice", metadata: { tier: "gold" } },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    expect(created.participants.map((p) => [p.participantId, p.kind, p.displayName, p.metadata, p.leaveTime])).toEqual([
      ["alice", ParticipantKind.USER, "Alice", { tier: "gold" }, undefined],
      ["bot", ParticipantKind.AGENT, "", {}, undefined],
    ]);
    expect(created.participants.every((p) => p.bindTime)).toBe(true);
    expect(created.session?.stats?.participantCount).toBe(2);
    expect((await client.getSession({ id: created.session!.id })).session).toEqual(created.session);
    expect((await client.listParticipants({ id: created.session!.id })).participants).toEqual(created.participants);
    expect(await stored("chat")).toEqual({ sessions: 1, participants: 2 });
  });

  it("fails the whole call on one bad participant, naming it, and leaves no session", async () => {
    const client = createClient(SessionService, transports(ctx.url)[name]);
    const user = { participantId: "alice", kind: ParticipantKind.USER };
    const cases: [string, Parameters<typeof client.createSession>[0]["participants"], RegExp][] = [
      ["no-kind", [user, { participantId: "bot" }], /^participants\[1\]\.kind: is required/],
      ["twice", [user, { participantId: "alice", kind: ParticipantKind.AGENT }], /^participants\[1\]\.participant_id: "alice" is already given as participants\[0\]$/],
      ["bad-kind", [{ participantId: "x", kind: 9 as ParticipantKind }], /^participants\[0\]\.kind: unknown kind 9$/],
      ["empty-id", [user, { participantId: "", kind: ParticipantKind.TOOL }], /^participants\[1\]\.participant_id: is required$/],
      ["too-many", Array.from({ length: 101 }, (_, i) => ({ participantId: `p${i}`, kind: ParticipantKind.USER })), /^participants: at most 100 per call, got 101$/],
    ];
    for (const [sessionId, participants, message] of cases) {
      const e = await codeOf(client.createSession({ namespace: ns, sessionId, participants }));
      expect([e.code, e.rawMessage], sessionId).toEqual([Code.InvalidArgument, expect.stringMatching(message)]);
      expect(await stored(sessionId), sessionId).toEqual({ sessions: 0, participants: 0 });
    }
  });
});

async function codeOf(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err, "the call should have failed").toBeInstanceOf(ConnectError);
  // Never a catch-all code, never database internals.
  expect([Code.Internal, Code.Unknown]).not.toContain(err.code);
  expect(err.rawMessage).not.toMatch(/SELECT|INSERT|UPDATE|relation|syntax|QueryFailed|at .*\.ts:/);
  return err;
}

describe("bad input gets a precise code and a message naming the field", () => {
  it.each(["connect/http1.1", "grpc/http2"])("over %s", async (name) => {
    const client = createClient(SessionService, transports(ctx.url)[name]);
    const ns = `bad-${name.replace(/[^a-z0-9]/g, "")}`;
    const { session } = await client.createSession({ namespace: ns, sessionId: "target" });

    let e = await codeOf(client.getSession({ id: "%%%not-base64%%%" }));
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "id: not a valid Session id"]);
    e = await codeOf(client.getSession({ id: encodeGlobalId("Trace", crypto.randomUUID()) }));
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "id: is a Trace id, expected a Session id"]);
    e = await codeOf(client.getSession({ id: encodeSessionId(crypto.randomUUID(), crypto.randomUUID()) }));
    expect(e.code).toBe(Code.NotFound);
    e = await codeOf(client.getSession({ id: Buffer.from(`Session:${crypto.randomUUID()}:x`).toString("base64url") }));
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "id: not a valid Session id"]);
    e = await codeOf(client.createSession({ labels: { ["k".repeat(64)]: "v" } }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/^labels\[/);
    e = await codeOf(client.createSession({ labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])) }));
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "labels: at most 64 labels, got 65"]);
    e = await codeOf(client.listSessions({ namespace: ns, pageSize: 1001 }));
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "page_size: must be between 1 and 1000"]);
    e = await codeOf(client.listSessions({ namespace: ns, pageToken: "forged.token" }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/^page_token: malformed/);
    await client.createSession({ namespace: ns });
    const page = await client.listSessions({ namespace: ns, pageSize: 1 });
    e = await codeOf(client.listSessions({ namespace: ns, pageToken: page.nextPageToken, showDeleted: true }));
    expect([e.code, e.rawMessage.split(";")[0]]).toEqual([Code.InvalidArgument, "page_token: was issued for a different request"]);
    e = await codeOf(client.updateSession({ session: { id: session!.id, user: "x", etag: '"v999"' }, updateMask: { paths: ["user"] } }));
    expect(e.code).toBe(Code.Aborted);
    expect(e.rawMessage).toMatch(/^session\.etag: /);
    e = await codeOf(client.updateSession({ session: { id: session!.id }, updateMask: { paths: ["create_time"] } }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/^update_mask: unknown or read-only field "create_time"/);
    e = await codeOf(client.createSession({ namespace: ns, sessionId: "target" }));
    expect(e.code).toBe(Code.AlreadyExists);
    e = await codeOf(client.undeleteSession({ id: session!.id }));
    expect(e.code).toBe(Code.FailedPrecondition);
    e = await codeOf(client.createSession({ namespace: ns, data: { blob: "x".repeat(100 * 1024) } }));
    expect(e.code).toBe(Code.ResourceExhausted);
    expect(await ctx.db.sql("SELECT count(*)::int AS n FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1", [ns])).toEqual([{ n: 2 }]);
  });

  it("sends a request id with every response and logs one line per call, without secrets", async () => {
    const client = ctx.client();
    let header: Headers | undefined;
    await client.getSession({ id: encodeSessionId(crypto.randomUUID(), crypto.randomUUID()) }, { onHeader: (h) => (header = h), headers: { authorization: "Bearer top-secret-value" } }).catch(() => {});
    const err = (await client.getSession({ id: "x" }, { headers: { "x-request-id": "req-123" } }).catch((e) => e)) as ConnectError;
    expect(err.metadata.get("x-request-id")).toBe("req-123");
    const lines = ctx.logs.filter((l) => l.includes("req-123"));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(lines[0])).toMatchObject({ request_id: "req-123", method: "GetSession", code: "invalid_argument" });
    expect(ctx.logs.join("")).not.toContain("top-secret-value");
    void header;
  });
});

describe("a session addressed by its global id alone, with a key for all namespaces", () => {
  /** Two sessions with the same caller id in two namespaces, each with a participant and a turn of its own. */
  async function twins(prefix: string) {
    const client = ctx.client();
    const made = [];
    for (const ns of [`${prefix}-a`, `${prefix}-b`]) {
      const { session } = await client.createSession({ namespace: ns, sessionId: "same" });
      await client.bindParticipant({ id: session!.id, participantId: "u", kind: ParticipantKind.USER });
      await client.appendTurns({ id: session!.id, turns: [{ participantId: "u", content: `first in ${ns}` }] });
      made.push({ ns, session: session! });
    }
    return { client, a: made[0], b: made[1] };
  }
  const contents = async (p: Promise<{ turns: { content: string }[] }>) => (await p).turns.map((t) => t.content);

  it("gets, appends to and lists the turns of the right session (GetSession, AppendTurns, ListTurns)", async () => {
    const { client, a, b } = await twins("gid");
    for (const { ns, session } of [a, b]) {
      expect((await client.getSession({ id: session.id })).session).toMatchObject({ id: session.id, namespace: ns, sessionId: "same" });
      const appended = await client.appendTurns({ id: session.id, turns: [{ participantId: "u", content: `second in ${ns}` }], requestId: `r-${ns}` });
      expect(appended.turns.map((t) => t.seq)).toEqual([2n]);
      // A retry is recognized through the same address.
      expect((await client.appendTurns({ id: session.id, turns: [{ participantId: "u", content: `second in ${ns}` }], requestId: `r-${ns}` })).replayed).toBe(true);
      expect(await contents(client.listTurns({ id: session.id }))).toEqual([`first in ${ns}`, `second in ${ns}`]);
    }
    expect((await client.getSession({ id: a.session.id })).session?.stats?.turnCount).toBe(2);
    expect((await client.getSession({ id: b.session.id })).session?.stats?.turnCount).toBe(2);
  });

  it("answers NOT_FOUND for a session of namespace A addressed with namespace B, and writes nothing", async () => {
    const { client, a, b } = await twins("gid-cross");
    for (const namespace of [b.ns, "gid-cross-none"]) {
      for (const call of [
        () => client.getSession({ id: a.session.id, namespace }),
        () => client.appendTurns({ id: a.session.id, namespace, turns: [{ participantId: "u", content: "misrouted" }] }),
        () => client.appendTurns({ id: a.session.id, namespace, turns: [{ participantId: "u", content: "misrouted" }], requestId: "r-cross" }),
        () => client.listTurns({ id: a.session.id, namespace }),
        () => client.cancelSession({ id: a.session.id, namespace }),
      ]) {
        const e = await codeOf(call());
        expect([e.code, e.rawMessage]).toEqual([Code.NotFound, `session ${a.session.id} not found`]);
      }
    }
    // Session A's uuid under namespace B's uuid names no session, with or without a namespace.
    const forged = encodeSessionId(decodeSessionId(b.session.id).namespaceId!, decodeSessionId(a.session.id).uuid);
    for (const namespace of ["", a.ns, b.ns]) {
      expect((await codeOf(client.getSession({ id: forged, namespace }))).code).toBe(Code.NotFound);
      expect((await codeOf(client.appendTurns({ id: forged, namespace, turns: [{ participantId: "u", content: "forged" }] }))).code).toBe(Code.NotFound);
    }
    expect(await contents(client.listTurns({ id: a.session.id, namespace: a.ns }))).toEqual([`first in ${a.ns}`]);
    expect(await contents(client.listTurns({ id: b.session.id }))).toEqual([`first in ${b.ns}`]);
    expect((await client.getSession({ id: a.session.id })).session?.state).toBe(SessionState.ACTIVE);
  });

  it("still takes a global id of the old form (the uuid alone), alone or with the session's namespace", async () => {
    const { client, a, b } = await twins("gid-old");
    const old = Buffer.from(`Session:${decodeSessionId(a.session.id).uuid}`).toString("base64url");
    expect((await client.getSession({ id: old })).session).toMatchObject({ id: a.session.id, namespace: a.ns });
    expect((await client.getSession({ id: old, namespace: a.ns })).session?.id).toBe(a.session.id);
    await client.appendTurns({ id: old, turns: [{ participantId: "u", content: "by old id" }], requestId: "r-old" });
    expect((await client.appendTurns({ id: old, turns: [{ participantId: "u", content: "by old id" }], requestId: "r-old" })).replayed).toBe(true);
    await client.appendTurns({ id: old, namespace: a.ns, turns: [{ participantId: "u", content: "by old id in its namespace" }] });
    expect(await contents(client.listTurns({ id: old }))).toEqual([`first in ${a.ns}`, "by old id", "by old id in its namespace"]);
    for (const call of [
      () => client.getSession({ id: old, namespace: b.ns }),
      () => client.appendTurns({ id: old, namespace: b.ns, turns: [{ participantId: "u", content: "x" }] }),
      () => client.listTurns({ id: old, namespace: b.ns }),
    ]) {
      expect((await codeOf(call())).code).toBe(Code.NotFound);
    }
    expect(await contents(client.listTurns({ id: b.session.id }))).toEqual([`first in ${b.ns}`]);
  });
});
