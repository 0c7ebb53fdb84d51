/**
 * The audit interceptor through every route: what a mutating call leaves in the audit log (actor,
 * method, namespace, item count, code, request id), what reads and gate refusals leave (nothing), and
 * how a server stream the client abandons is recorded.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import type { Role } from "../../src/domain/access.js";
import type { AuditEvent } from "../../src/domain/audit-log.js";
import { decodeSessionId, encodeGlobalId } from "../../src/domain/ids.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { useDatabase } from "../setup/context.js";
import { rpcAs, type Rpc } from "../setup/rpc.js";
import { seedSessions } from "../setup/seed.js";

const ctx = useDatabase();
let admin: Rpc;

beforeAll(async () => {
  await ctx.services.apiKeys.ensureBootstrap(TEST_ADMIN_KEY);
  admin = rpcAs(ctx.services, TEST_ADMIN_KEY);
  await admin.admin.createNamespace({ name: "audit-a" });
  await admin.admin.createNamespace({ name: "audit-b" });
});

/** A new API key (its own actor, so each test reads only its own events) and clients sending it. */
async function caller(role: Role, namespace = ""): Promise<{ rpc: Rpc; actor: string }> {
  const { key, secret } = await ctx.services.apiKeys.create({ displayName: `${role}-${namespace || "all"}`, role, namespace, expiresAfterMs: undefined, createdBy: "test" });
  return { rpc: rpcAs(ctx.services, secret), actor: encodeGlobalId("ApiKey", key.uuid) };
}

/** The events of `actor`, oldest first, after flushing what this process queued. */
async function eventsOf(actor: string): Promise<AuditEvent[]> {
  await ctx.services.audit.flush();
  const { events } = await ctx.services.audit.list({ namespace: "", actor, pageSize: 100, pageToken: "" });
  return events.reverse();
}

/** The request id a call was given, from its response header or its error's metadata. */
async function requestIdOf(call: (onHeader: (h: Headers) => void) => Promise<unknown>): Promise<string> {
  let id: string | null = null;
  await call((h) => (id = h.get("x-request-id"))).catch((e) => (id = ConnectError.from(e).metadata.get("x-request-id")));
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  return id!;
}

describe("audit events of mutating calls", () => {
  it("records actor, method, namespace, item count, code and request id of each mutating call", async () => {
    const { rpc, actor } = await caller("writer");
    const created = await requestIdOf((onHeader) => rpc.sessions.createSession({ namespace: "audit-a", sessionId: "s1" }, { onHeader }));
    await rpc.sessions.bindParticipant({ namespace: "audit-a", sessionId: "s1", participantId: "p", kind: ParticipantKind.USER });
    const turns = { participantId: "p", role: "user", content: "hi" };
    const appended = await requestIdOf((onHeader) => rpc.sessions.appendTurns({ namespace: "audit-a", sessionId: "s1", turns: [turns, turns, turns] }, { onHeader }));
    expect(await eventsOf(actor)).toMatchObject([
      { actor, method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-a", itemCount: 1, code: "ok", requestId: created },
      { actor, method: "sessiond.v1.SessionService/BindParticipant", namespace: "audit-a", itemCount: 1, code: "ok" },
      { actor, method: "sessiond.v1.SessionService/AppendTurns", namespace: "audit-a", itemCount: 3, code: "ok", requestId: appended },
    ]);
  });

  it("counts a session created with participants as one item plus one per participant", async () => {
    const { rpc, actor } = await caller("writer");
    const participants = [
      { participantId: "u", kind: ParticipantKind.USER },
      { participantId: "a", kind: ParticipantKind.AGENT },
    ];
    await rpc.sessions.createSession({ namespace: "audit-a", sessionId: "with-participants", participants });
    await rpc.sessions.createSession({ namespace: "audit-a", sessionId: "with-participants", participants }).catch(() => {});
    expect(await eventsOf(actor)).toMatchObject([
      { method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-a", itemCount: 3, code: "ok" },
      { method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-a", itemCount: 3, code: "already_exists" },
    ]);
  });

  it("records a session addressed by global id under the session's namespace", async () => {
    const { rpc, actor } = await caller("writer");
    const { session } = await rpc.sessions.createSession({ namespace: "audit-b" });
    await rpc.sessions.cancelSession({ id: session!.id });
    expect(await eventsOf(actor)).toMatchObject([
      { method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-b", code: "ok" },
      { method: "sessiond.v1.SessionService/CancelSession", namespace: "audit-b", itemCount: 1, code: "ok" },
    ]);
  });

  it("records a session addressed by a global id of either form under the session's namespace, also once it is deleted", async () => {
    const { rpc, actor } = await caller("writer");
    const { session } = await rpc.sessions.createSession({ namespace: "audit-b" });
    const old = Buffer.from(`Session:${decodeSessionId(session!.id).uuid}`).toString("base64url");
    await rpc.sessions.bindParticipant({ id: old, participantId: "u", kind: ParticipantKind.USER });
    // Written while the session exists (a call by an id of the old form is resolved when its event is
    // written: in a batch after the delete, and before any event that names the session, it would find
    // nothing).
    await ctx.services.audit.flush();
    await rpc.sessions.deleteSession({ id: session!.id });
    // Deleted before these events are written: the namespace is the one the id carries, or one learned.
    await rpc.sessions.cancelSession({ id: session!.id }).catch(() => {});
    await rpc.sessions.cancelSession({ id: old }).catch(() => {});
    expect(await eventsOf(actor)).toMatchObject([
      { method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-b", code: "ok" },
      { method: "sessiond.v1.SessionService/BindParticipant", namespace: "audit-b", code: "ok" },
      { method: "sessiond.v1.SessionService/DeleteSession", namespace: "audit-b", code: "ok" },
      { method: "sessiond.v1.SessionService/CancelSession", namespace: "audit-b", code: "not_found" },
      { method: "sessiond.v1.SessionService/CancelSession", namespace: "audit-b", code: "not_found" },
    ]);
  });

  it("records a DeleteSession of a session that does not exist as not_found, in the namespace it named", async () => {
    const { rpc, actor } = await caller("writer");
    const requestId = await requestIdOf((onHeader) => rpc.sessions.deleteSession({ namespace: "audit-a", sessionId: "never-there" }, { onHeader }));
    expect(await eventsOf(actor)).toEqual([
      expect.objectContaining({ actor, method: "sessiond.v1.SessionService/DeleteSession", namespace: "audit-a", itemCount: 1, code: "not_found", requestId }),
    ]);
  });

  it("records a call refused for naming another namespace as permission_denied, and one refused by the domain with its code", async () => {
    const { rpc, actor } = await caller("writer", "audit-a");
    await expect(rpc.sessions.createSession({ namespace: "audit-b" })).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(rpc.sessions.createSession({ namespace: "audit-a", labels: { "bad key!": "x" } })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(rpc.memories.deleteMemories({ namespace: "audit-a", selector: { case: "ids", value: { values: ["not-an-id", "nor-this"] } } })).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(await eventsOf(actor)).toMatchObject([
      { actor, method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-b", itemCount: 1, code: "permission_denied" },
      { actor, method: "sessiond.v1.SessionService/CreateSession", namespace: "audit-a", itemCount: 1, code: "invalid_argument" },
      { actor, method: "sessiond.v1.MemoryService/DeleteMemories", namespace: "audit-a", itemCount: 2, code: "invalid_argument" },
    ]);
  });

  it("records nothing of a call the request gate refuses (wrong role): it is logged as rejected instead", async () => {
    const { rpc, actor } = await caller("reader");
    await expect(rpc.sessions.createSession({ namespace: "audit-a" })).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(await eventsOf(actor)).toEqual([]);
    expect(rpc.logged()).toContainEqual(expect.objectContaining({ msg: "rpc rejected", method: "sessiond.v1.SessionService/CreateSession", code: "permission_denied" }));
  });

  it("records no read: Get and List calls leave no event, a mutating call after them does", async () => {
    const { rpc, actor } = await caller("writer");
    const { session } = await admin.sessions.createSession({ namespace: "audit-a" });
    await rpc.sessions.getSession({ id: session!.id });
    await rpc.sessions.listSessions({ namespace: "audit-a" });
    await rpc.sessions.listTurns({ id: session!.id });
    await rpc.sessions.listParticipants({ id: session!.id });
    await rpc.memories.listMemories({ namespace: "audit-a" });
    await rpc.traces.listTraces({ namespace: "audit-a", session: session!.id });
    await expect(rpc.sessions.getSession({ namespace: "audit-a", sessionId: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await eventsOf(actor)).toEqual([]);
    await rpc.sessions.truncateSession({ id: session!.id });
    expect((await eventsOf(actor)).map((e) => e.method)).toEqual(["sessiond.v1.SessionService/TruncateSession"]);
  });

  it("serves the events through AdminService.ListAuditEvents, newest first, filtered by actor", async () => {
    const { rpc, actor } = await caller("writer");
    await rpc.sessions.createSession({ namespace: "audit-b", sessionId: "listed" });
    await rpc.sessions.softDeleteSession({ namespace: "audit-b", sessionId: "listed" });
    await ctx.services.audit.flush();
    const { events } = await admin.admin.listAuditEvents({ actor });
    expect(events.map((e) => [e.method, e.namespace, Number(e.itemCount), e.code, e.actor])).toEqual([
      ["sessiond.v1.SessionService/SoftDeleteSession", "audit-b", 1, "ok", actor],
      ["sessiond.v1.SessionService/CreateSession", "audit-b", 1, "ok", actor],
    ]);
  });
});

describe("audit events of server streams", () => {
  it("records a finished BulkDeleteSessions with the total it announced", async () => {
    const { rpc, actor } = await caller("writer");
    await seedSessions(ctx.db.dataSource, 5, "audit-b", { prefix: "done-" });
    const ids = ["done-1", "done-2", "done-3", "done-4", "done-5", "never-there"];
    for await (const _ of rpc.sessions.bulkDeleteSessions({ namespace: "audit-b", selector: { case: "sessionIds", value: { values: ids } }, batchSize: 2 }));
    expect(await eventsOf(actor)).toEqual([
      expect.objectContaining({ method: "sessiond.v1.SessionService/BulkDeleteSessions", namespace: "audit-b", itemCount: 6, code: "ok" }),
    ]);
  });

  it("records a BulkDeleteSessions the client aborts as canceled, with its total, and deletes no further batch", async () => {
    const { rpc, actor } = await caller("writer");
    const uuids = await seedSessions(ctx.db.dataSource, 40, "audit-a", { prefix: "abandoned-" });
    const abort = new AbortController();
    const ids = Array.from({ length: 40 }, (_, i) => `abandoned-${i + 1}`);
    const seen: string[] = [];
    const consume = async () => {
      for await (const m of rpc.sessions.bulkDeleteSessions({ namespace: "audit-a", selector: { case: "sessionIds", value: { values: ids } }, batchSize: 1 }, { signal: abort.signal })) {
        seen.push(m.event.case!);
        if (m.event.case === "progress") abort.abort();
      }
    };
    await expect(consume()).rejects.toMatchObject({ code: Code.Canceled });
    expect(seen).toEqual(["started", "progress"]);
    // The server ends the stream when it sees the abort: wait for the event, not for a time.
    await vi.waitFor(async () => expect(await eventsOf(actor)).toHaveLength(1), { timeout: 10_000, interval: 20 });
    expect(await eventsOf(actor)).toEqual([
      expect.objectContaining({ actor, method: "sessiond.v1.SessionService/BulkDeleteSessions", namespace: "audit-a", itemCount: 40, code: "canceled" }),
    ]);
    // The access log says the same, and the batches after the abort never ran (the one in hand may have).
    expect(rpc.logged()).toContainEqual(expect.objectContaining({ msg: "rpc", method: "BulkDeleteSessions", code: "canceled", level: 30 }));
    const [{ left }] = await ctx.db.sql<{ left: number }>("SELECT count(*)::int AS left FROM sessions WHERE id = ANY($1)", [uuids]);
    expect(left).toBeGreaterThanOrEqual(38);
  });
});
