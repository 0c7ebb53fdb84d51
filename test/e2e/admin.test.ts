/**
 * AdminService: namespaces (deleting one streams the deletion of everything in it), API keys (shown
 * once, listed without secrets, revoked, expired) and the audit log.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { toJsonString } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { AdminService, ListApiKeysResponseSchema, type DeleteNamespaceResponse } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { codeOf, connectAs } from "../setup/auth.js";
import { seedSessions } from "../setup/seed.js";
import { grpcTransport, useServer } from "../setup/server.js";

const ctx = useServer();
const as = <S extends Parameters<typeof createClient>[0]>(service: S, secret?: string) =>
  createClient(service, secret === undefined ? grpcTransport(ctx.url) : connectAs(ctx.url, secret));
let admin: ReturnType<typeof as<typeof AdminService>>;
beforeAll(() => void (admin = as(AdminService)));

async function newKey(role: Role, namespace?: string, name = "test") {
  const res = await admin.createApiKey({ displayName: name, role, namespace });
  return { key: res.apiKey!, secret: res.secret };
}

describe("namespaces", () => {
  it("are created once, listed oldest first in pages, and refuse bad names", async () => {
    await admin.createNamespace({ name: "ns-one" });
    await admin.createNamespace({ name: "ns-two" });
    expect(await codeOf(admin.createNamespace({ name: "ns-one" }))).toBe(Code.AlreadyExists);
    const bad = await admin.createNamespace({ name: "Not OK" }).catch((e) => ConnectError.from(e));
    expect(bad).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringMatching(/^name: /) });
    const names: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.listNamespaces({ pageSize: 1, pageToken });
      names.push(...page.namespaces.map((n) => n.name));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(names.indexOf("ns-one")).toBeLessThan(names.indexOf("ns-two"));
  });

  it("are deleted with everything in them, as a stream with per-session progress; their keys stop working", async () => {
    const ns = "doomed";
    await admin.createNamespace({ name: ns });
    const sessions = as(SessionService);
    for (let i = 0; i < 7; i++) {
      const { session } = await sessions.createSession({ namespace: ns, sessionId: `s${i}` });
      await sessions.bindParticipant({ id: session!.id, participantId: "u", kind: ParticipantKind.USER });
      await sessions.bindParticipant({ id: session!.id, participantId: "bot", kind: ParticipantKind.AGENT });
      await sessions.appendTurns({ id: session!.id, turns: [{ participantId: "u", content: "My name is Dana." }] });
      await sessions.integrateSession({ id: session!.id });
    }
    await sessions.softDeleteSession({ namespace: ns, sessionId: "s0" });
    await as(TraceService).recordSpans({ namespace: ns, spans: [{ traceId: "1af7651916cd43dd8448eb211c80319c", spanId: "c7ad6b7169203331", name: "loose", startTime: { seconds: 1n }, endTime: { seconds: 2n } }] });
    const { secret } = await newKey(Role.READER, ns);
    expect((await as(SessionService, secret).listSessions({})).sessions).toHaveLength(6);

    const events: DeleteNamespaceResponse["event"][] = [];
    for await (const m of admin.deleteNamespace({ name: ns, batchSize: 3 })) events.push(m.event);
    expect(events.map((e) => e.case)).toEqual(["started", "progress", "progress", "progress", "summary", "deleted"]);
    expect(events[0].case === "started" && events[0].value.total).toBe(7n);
    const last = events.at(-1)!;
    expect(last.case === "deleted" && last.value).toMatchObject({ namespace: { name: ns }, memoriesDeleted: 7n, tracesDeleted: 1n, apiKeysDeleted: 1n });

    expect(await codeOf(as(SessionService, secret).listSessions({}))).toBe(Code.Unauthenticated);
    expect((await admin.listNamespaces({ pageSize: 1000 })).namespaces.map((n) => n.name)).not.toContain(ns);
    expect((await as(MemoryService).listMemories({ namespace: ns })).memories).toEqual([]);
    const [rows] = await ctx.db.sql("SELECT count(*)::int AS n FROM namespaces WHERE name = $1", [ns]);
    expect(rows.n).toBe(0);
    expect(await codeOf((async () => { for await (const _ of admin.deleteNamespace({ name: ns })); })())).toBe(Code.NotFound);
    // The name can be used again, from scratch.
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "s1" });
    expect(session!.stats?.turnCount).toBe(0);
  });
});

describe("API keys", () => {
  it("show their secret once, are listed without it, and stop working when revoked", async () => {
    const { key, secret } = await newKey(Role.WRITER, undefined, "billing backend");
    expect(secret).toMatch(/^sk_/);
    expect(key).toMatchObject({ displayName: "billing backend", role: Role.WRITER, namespace: "", createdBy: expect.any(String), secretPrefix: secret.slice(0, 11) });
    expect(secret.length).toBeGreaterThan(60);
    const listed = await admin.listApiKeys({ pageSize: 1000 });
    expect(listed.apiKeys.map((k) => k.id)).toContain(key.id);
    expect(toJsonString(ListApiKeysResponseSchema, listed)).not.toContain(secret.slice(12));
    const [row] = await ctx.db.sql("SELECT length(secret_hash) AS n, secret_prefix FROM api_keys WHERE secret_prefix = $1", [key.secretPrefix]);
    expect(row).toEqual({ n: 32, secret_prefix: secret.slice(0, 11) });

    await as(SessionService, secret).createSession({ namespace: "keys" });
    const revoked = await admin.revokeApiKey({ id: key.id });
    expect(revoked.apiKey?.revokeTime).toBeDefined();
    expect(await codeOf(as(SessionService, secret).createSession({ namespace: "keys" }))).toBe(Code.Unauthenticated);
    expect((await admin.listApiKeys({ pageSize: 1000 })).apiKeys.map((k) => k.id)).not.toContain(key.id);
    expect((await admin.listApiKeys({ pageSize: 1000, showRevoked: true })).apiKeys.map((k) => k.id)).toContain(key.id);
  });

  it("stop working once expired, and refuse bad roles, names and expiries", async () => {
    const { key, secret } = await newKey(Role.READER);
    const before = Date.now();
    const res = await admin.createApiKey({ displayName: "short", role: Role.READER, expiresAfter: { seconds: 120n, nanos: 0 } });
    const after = Date.now();
    // 120 s after the key was made, which happened during the call (the database's clock is this machine's).
    const expires = Math.floor(Number(res.apiKey!.expireTime!.seconds) * 1000 + res.apiKey!.expireTime!.nanos / 1e6);
    expect(expires).toBeGreaterThanOrEqual(before + 120_000);
    expect(expires).toBeLessThanOrEqual(after + 120_000);
    await ctx.db.sql("UPDATE api_keys SET expire_time = now() - interval '1 second' WHERE secret_prefix = $1", [key.secretPrefix]);
    expect(await codeOf(as(SessionService, secret).listSessions({}))).toBe(Code.Unauthenticated);
    const bad = (req: Parameters<typeof admin.createApiKey>[0]) => admin.createApiKey(req).catch((e) => ConnectError.from(e).rawMessage);
    expect(await bad({ displayName: "x" })).toMatch(/^role: is required/);
    expect(await bad({ role: Role.READER })).toMatch(/^display_name: is required/);
    expect(await bad({ displayName: "x", role: Role.READER, expiresAfter: { seconds: 5n, nanos: 0 } })).toMatch(/^expires_after: /);
    expect(await bad({ displayName: "x", role: Role.READER, namespace: "nowhere" })).toMatch(/namespace "nowhere" not found/);
  });

  it("of one namespace: an ADMIN key manages only that namespace's keys and reads only its audit events", async () => {
    await admin.createNamespace({ name: "team-x" });
    const { secret } = await newKey(Role.ADMIN, "team-x");
    const teamAdmin = as(AdminService, secret);
    const made = await teamAdmin.createApiKey({ displayName: "team writer", role: Role.WRITER });
    expect(made.apiKey?.namespace).toBe("team-x");
    expect(await codeOf(teamAdmin.createApiKey({ displayName: "escalate", role: Role.ADMIN, namespace: "default" }))).toBe(Code.PermissionDenied);
    expect((await teamAdmin.listApiKeys({})).apiKeys.every((k) => k.namespace === "team-x")).toBe(true);
    const { key: global } = await newKey(Role.READER);
    expect(await codeOf(teamAdmin.revokeApiKey({ id: global.id }))).toBe(Code.NotFound);
    expect(await codeOf(teamAdmin.listNamespaces({}))).toBe(Code.PermissionDenied);
    await as(SessionService, made.secret).createSession({ sessionId: "audited" });
    await as(AdminService).listAuditEvents({}); // flushes
    const events = (await teamAdmin.listAuditEvents({ pageSize: 1000 })).events;
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.namespace === "team-x")).toBe(true);
  });
});

describe("the audit log", () => {
  it("records a server stream the client walked away from as canceled, with the total it was going through", async () => {
    const { key, secret } = await newKey(Role.WRITER, undefined, "walks away");
    await seedSessions(ctx.db.dataSource, 300, "audit-cancel");
    const abort = new AbortController();
    const stream = as(SessionService, secret).bulkDeleteSessions({ namespace: "audit-cancel", selector: { case: "filter", value: {} }, batchSize: 1 }, { signal: abort.signal });
    await expect(
      (async () => {
        for await (const m of stream) if (m.event.case === "progress") abort.abort();
      })(),
    ).rejects.toMatchObject({ code: Code.Canceled });
    let events: { method: string; code: string; itemCount: bigint }[] = [];
    for (const t0 = Date.now(); !events.length; await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() - t0 > 30_000) throw new Error(`no audit event for key ${key.id} within 30 s`);
      events = (await admin.listAuditEvents({ actor: key.id })).events;
    }
    expect(events.map((e) => [e.method, e.code, e.itemCount])).toEqual([["sessiond.v1.SessionService/BulkDeleteSessions", "canceled", 300n]]);
  });

  it("records who made each mutating call, which RPC, which namespace, how many ids and how it ended", async () => {
    const { key, secret } = await newKey(Role.WRITER, undefined, "auditor test");
    const client = as(SessionService, secret);
    const { session } = await client.createSession({ namespace: "audit", sessionId: "a1" });
    await client.getSession({ id: session!.id });
    for await (const _ of client.bulkDeleteSessions({ namespace: "audit", selector: { case: "sessionIds", value: { values: ["a1", "a2", "a3"] } } }));
    await client.deleteSession({ namespace: "audit", sessionId: "gone" }).catch(() => {});
    const events = (await admin.listAuditEvents({ actor: key.id, pageSize: 10 })).events;
    expect(events.map((e) => [e.method, e.namespace, e.itemCount, e.code])).toEqual([
      ["sessiond.v1.SessionService/DeleteSession", "audit", 1n, "not_found"],
      ["sessiond.v1.SessionService/BulkDeleteSessions", "audit", 3n, "ok"],
      ["sessiond.v1.SessionService/CreateSession", "audit", 1n, "ok"],
    ]);
    expect(events.every((e) => e.actor === key.id && e.requestId.length > 0)).toBe(true);
    // A session addressed by global id alone is logged under its namespace, also once deleted.
    const { session: byId } = await client.createSession({ namespace: "audit", sessionId: "by-id" });
    await client.bindParticipant({ id: byId!.id, participantId: "u", kind: ParticipantKind.USER });
    await client.appendTurns({ id: byId!.id, turns: [{ participantId: "u", content: "hi" }] });
    await client.deleteSession({ id: byId!.id });
    const latest = (await admin.listAuditEvents({ actor: key.id, pageSize: 3 })).events;
    expect(latest.map((e) => [e.method.split("/")[1], e.namespace])).toEqual([
      ["DeleteSession", "audit"],
      ["AppendTurns", "audit"],
      ["BindParticipant", "audit"],
    ]);
    expect((await admin.listAuditEvents({ namespace: "audit", actor: key.id, pageSize: 100 })).events).toHaveLength(7);
    // Pages.
    const all = (await admin.listAuditEvents({ actor: key.id, pageSize: 100 })).events;
    const first = await admin.listAuditEvents({ actor: key.id, pageSize: 4 });
    const second = await admin.listAuditEvents({ actor: key.id, pageSize: 4, pageToken: first.nextPageToken });
    expect([...first.events, ...second.events].map((e) => e.id)).toEqual(all.map((e) => e.id));
  });
});
