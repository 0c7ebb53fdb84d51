/**
 * Authentication and authorization through every route, with the server's request gate and scope
 * interceptor: representative RPCs of each service and exact messages. The full matrix (every RPC x
 * every credential) is test/e2e/authorization.test.ts.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import type { Role } from "../../src/domain/access.js";
import { MISSING_CREDENTIALS } from "../../src/domain/authorization.js";
import { decodeSessionId, encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { useDatabase } from "../setup/context.js";
import { rpcAs, type Rpc } from "../setup/rpc.js";

const ctx = useDatabase();
const A = "tenant-a";
const B = "tenant-b";
const REJECTED = "the credential is unknown, revoked or expired";
let admin: Rpc;
/** Keys for all namespaces by role, and a WRITER and an ADMIN key of namespace A. */
const as = {} as Record<Role | "writerOfA" | "adminOfA", Rpc>;
/** A session in each namespace, made by the ADMIN key. */
let inA: { id: string; sessionId: string };
let inB: { id: string; sessionId: string };

async function key(role: Role, namespace = "", expiresAfterMs?: number) {
  return ctx.services.apiKeys.create({ displayName: `${role}-${namespace || "all"}`, role, namespace, expiresAfterMs, createdBy: "test" });
}

beforeAll(async () => {
  await ctx.services.apiKeys.ensureBootstrap(TEST_ADMIN_KEY);
  admin = rpcAs(ctx.services, TEST_ADMIN_KEY);
  await admin.admin.createNamespace({ name: A });
  await admin.admin.createNamespace({ name: B });
  for (const role of ["reader", "writer", "admin"] as const) as[role] = rpcAs(ctx.services, (await key(role)).secret);
  as.writerOfA = rpcAs(ctx.services, (await key("writer", A)).secret);
  as.adminOfA = rpcAs(ctx.services, (await key("admin", A)).secret);
  inA = (await admin.sessions.createSession({ namespace: A, sessionId: "a1" })).session!;
  inB = (await admin.sessions.createSession({ namespace: B, sessionId: "b1" })).session!;
});

/** The code and message a call fails with; "ok" when it succeeds. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (e) {
    const err = ConnectError.from(e);
    return `${Code[err.code]}: ${err.rawMessage}`;
  }
}

describe("authentication", () => {
  it("refuses a call without a credential as UNAUTHENTICATED, saying how to send one", async () => {
    const anonymous = rpcAs(ctx.services, "");
    expect(MISSING_CREDENTIALS).toBe("missing credentials: send Authorization: Bearer <API key> (or X-API-Key: <API key>)");
    expect(await outcome(anonymous.sessions.getSession({ id: inA.id }))).toBe(`Unauthenticated: ${MISSING_CREDENTIALS}`);
    expect(await outcome(anonymous.admin.listNamespaces({}))).toBe(`Unauthenticated: ${MISSING_CREDENTIALS}`);
    expect(anonymous.logged()).toContainEqual(expect.objectContaining({ msg: "rpc rejected", method: "sessiond.v1.SessionService/GetSession", code: "unauthenticated", reason: MISSING_CREDENTIALS }));
  });

  it("refuses an Authorization header that is not a bearer token, naming the expected form", async () => {
    const basic = rpcAs(ctx.services, "", { interceptors: [(next) => (req) => (req.header.set("authorization", "Basic dXNlcjpwYXNz"), next(req))] });
    expect(await outcome(basic.sessions.listSessions({}))).toBe('Unauthenticated: authorization: expected "Bearer <API key or client secret>"');
  });

  it("accepts the key in X-API-Key as well as in Authorization", async () => {
    const { secret } = await key("reader");
    const viaHeader = rpcAs(ctx.services, "", { interceptors: [(next) => (req) => (req.header.set("x-api-key", secret), next(req))] });
    expect(await outcome(viaHeader.sessions.getSession({ id: inA.id }))).toBe("ok");
  });

  it("refuses unknown keys, any other string, and keys of the right form that were never issued alike", async () => {
    for (const secret of [`sk_${"A".repeat(22)}_${"B".repeat(43)}`, `cs_${"A".repeat(43)}_${"B".repeat(43)}`, `cs_${"A".repeat(22)}_${"B".repeat(43)}`, "this-is-not-a-key-but-it-is-long-enough"]) {
      expect(await outcome(rpcAs(ctx.services, secret).sessions.listSessions({}))).toBe(`Unauthenticated: ${REJECTED}`);
    }
  });

  it("refuses a key from the moment it is revoked through AdminService, though it was just used", async () => {
    const { key: k, secret } = await key("writer");
    const revoked = rpcAs(ctx.services, secret);
    expect(await outcome(revoked.sessions.listSessions({}))).toBe("ok");
    const { apiKey } = await admin.admin.revokeApiKey({ id: encodeGlobalId("ApiKey", k.uuid) });
    expect(apiKey!.revokeTime).toBeDefined();
    expect(await outcome(revoked.sessions.listSessions({}))).toBe(`Unauthenticated: ${REJECTED}`);
  });

  it("refuses a key past its expire_time", async () => {
    const { key: k, secret } = await key("reader", "", 60_000);
    await ctx.db.sql("UPDATE api_keys SET expire_time = now() - interval '1 second' WHERE id = $1", [k.uuid]);
    expect(await outcome(rpcAs(ctx.services, secret).sessions.listSessions({}))).toBe(`Unauthenticated: ${REJECTED}`);
  });
});

describe("roles", () => {
  it("lets a READER read every service it may, and refuses its writes naming the role needed", async () => {
    const r = as.reader;
    expect(await outcome(r.sessions.getSession({ id: inA.id }))).toBe("ok");
    expect(await outcome(r.sessions.listSessions({ namespace: A }))).toBe("ok");
    expect(await outcome(r.memories.listMemories({ namespace: A }))).toBe("ok");
    expect(await outcome(r.traces.listTraces({ namespace: A, withoutSession: true }))).toBe("ok");
    expect(await outcome(r.sessions.createSession({ namespace: A }))).toBe("PermissionDenied: sessiond.v1.SessionService/CreateSession needs role WRITER; this API key is READER");
    expect(await outcome(r.memories.deleteMemories({ namespace: A }))).toBe("PermissionDenied: sessiond.v1.MemoryService/DeleteMemories needs role WRITER; this API key is READER");
    expect(await outcome(r.traces.annotate({ namespace: A }))).toBe("PermissionDenied: sessiond.v1.TraceService/Annotate needs role WRITER; this API key is READER");
    expect(await outcome(r.otlp.export({}))).toBe("PermissionDenied: opentelemetry.proto.collector.trace.v1.TraceService/Export needs role WRITER; this API key is READER");
    expect(await outcome(r.admin.listAuditEvents({}))).toBe("PermissionDenied: sessiond.v1.AdminService/ListAuditEvents needs role ADMIN; this API key is READER");
  });

  it("lets a WRITER write sessions, memories and traces, and refuses what needs ADMIN", async () => {
    const w = as.writer;
    const { session } = await w.sessions.createSession({ namespace: A });
    expect(await outcome(w.sessions.cancelSession({ id: session!.id }))).toBe("ok");
    expect(await outcome(w.otlp.export({}, { headers: { "sessiond-namespace": A } }))).toBe("ok");
    expect(await outcome(w.memories.updateIntegratorConfig({ namespace: A }))).toBe("PermissionDenied: sessiond.v1.MemoryService/UpdateIntegratorConfig needs role ADMIN; this API key is WRITER");
    expect(await outcome(w.admin.createApiKey({ displayName: "x", role: ProtoRole.READER }))).toBe("PermissionDenied: sessiond.v1.AdminService/CreateApiKey needs role ADMIN; this API key is WRITER");
    expect(await outcome(w.admin.listNamespaces({}))).toBe("PermissionDenied: sessiond.v1.AdminService/ListNamespaces needs role ADMIN; this API key is WRITER");
  });

  it("lets an ADMIN key for all namespaces manage namespaces and keys; one of a namespace manages only its keys", async () => {
    expect(await outcome(as.admin.admin.createNamespace({ name: "made-by-admin" }))).toBe("ok");
    expect(await outcome(as.admin.admin.listApiKeys({}))).toBe("ok");
    expect(await outcome(as.adminOfA.admin.createNamespace({ name: "made-by-a" }))).toBe(`PermissionDenied: sessiond.v1.AdminService/CreateNamespace needs an API key for all namespaces; this one is for namespace "${A}"`);
    expect(await outcome(as.adminOfA.admin.listNamespaces({}))).toBe(`PermissionDenied: sessiond.v1.AdminService/ListNamespaces needs an API key for all namespaces; this one is for namespace "${A}"`);
    const { apiKeys } = await as.adminOfA.admin.listApiKeys({});
    expect(apiKeys.length).toBeGreaterThan(0);
    expect(new Set(apiKeys.map((k) => k.namespace))).toEqual(new Set([A]));
    expect(await outcome(as.adminOfA.admin.listApiKeys({ namespace: B }))).toBe(`PermissionDenied: namespace: this API key may only use namespace "${A}"`);
  });
});

describe("namespace scope", () => {
  it("refuses a key of one namespace naming another, wherever the request names it", async () => {
    const w = as.writerOfA;
    const denied = `PermissionDenied: namespace: this API key may only use namespace "${A}"`;
    expect(await outcome(w.sessions.createSession({ namespace: B }))).toBe(denied);
    expect(await outcome(w.sessions.getSession({ namespace: B, sessionId: inB.sessionId }))).toBe(denied);
    expect(await outcome(w.sessions.updateSession({ session: { namespace: B, sessionId: inB.sessionId, user: "x" }, updateMask: { paths: ["user"] } }))).toBe(denied);
    expect(await outcome(w.memories.listMemories({ namespace: B }))).toBe(denied);
    expect(await outcome(w.otlp.export({}, { headers: { "sessiond-namespace": B } }))).toBe(`PermissionDenied: sessiond-namespace: this API key may only use namespace "${A}"`);
  });

  it("answers NOT_FOUND, not PERMISSION_DENIED, for another namespace's session addressed by global id", async () => {
    expect(await outcome(as.writerOfA.sessions.getSession({ id: inB.id }))).toBe(`NotFound: session ${inB.id} not found`);
    expect(await outcome(as.writerOfA.sessions.deleteSession({ id: inB.id }))).toBe(`NotFound: session ${inB.id} not found`);
    expect(await outcome(admin.sessions.getSession({ id: inB.id }))).toBe("ok");
    // B's session uuid under A's namespace uuid names no session in A.
    const forged = encodeSessionId(decodeSessionId(inA.id).namespaceId!, decodeSessionId(inB.id).uuid);
    expect(await outcome(as.writerOfA.sessions.getSession({ id: forged }))).toBe(`NotFound: session ${forged} not found`);
    expect(await outcome(admin.sessions.getSession({ id: forged }))).toBe(`NotFound: session ${forged} not found`);
  });

  it("reads a global id of the old form inside the key's namespace: its own sessions are found, another namespace's are NOT_FOUND", async () => {
    const old = (id: string) => Buffer.from(`Session:${decodeSessionId(id).uuid}`).toString("base64url");
    expect(((await as.writerOfA.sessions.getSession({ id: old(inA.id) })).session)?.id).toBe(inA.id);
    expect(await outcome(as.writerOfA.sessions.getSession({ id: old(inB.id) }))).toBe(`NotFound: session ${old(inB.id)} not found`);
    expect(((await admin.sessions.getSession({ id: old(inB.id) })).session)?.id).toBe(inB.id);
  });

  it("reads an empty namespace as the key's own", async () => {
    const { session } = await as.writerOfA.sessions.createSession({ sessionId: "filled-in" });
    expect(session!.namespace).toBe(A);
    expect(await outcome(as.writerOfA.sessions.getSession({ sessionId: "filled-in" }))).toBe("ok");
  });
});

describe("client secrets", () => {
  let own: { id: string; sessionId: string };
  let secret: Rpc;

  beforeAll(async () => {
    const created = await admin.sessions.createSession({ namespace: A, sessionId: "browser" });
    own = created.session!;
    secret = rpcAs(ctx.services, created.clientSecret!.value);
    await admin.sessions.bindParticipant({ id: own.id, participantId: "u", kind: ParticipantKind.USER });
  });

  it("may call GetSession, AppendTurns and ListTurns on its own session, addressed or left empty", async () => {
    expect((await secret.sessions.getSession({})).session!.id).toBe(own.id);
    expect(await outcome(secret.sessions.getSession({ id: own.id }))).toBe("ok");
    expect(await outcome(secret.sessions.getSession({ namespace: A, sessionId: "browser" }))).toBe("ok");
    expect(await outcome(secret.sessions.appendTurns({ turns: [{ participantId: "u", role: "user", content: "hello" }] }))).toBe("ok");
    expect((await secret.sessions.listTurns({})).turns.map((t) => t.content)).toEqual(["hello"]);
  });

  it("is refused on any other session, any other namespace and any other RPC", async () => {
    expect(await outcome(secret.sessions.getSession({ id: inA.id }))).toBe("PermissionDenied: id: this client secret may only address its own session");
    expect(await outcome(secret.sessions.listTurns({ namespace: A, sessionId: inA.sessionId }))).toBe("PermissionDenied: session_id: this client secret may only address its own session");
    expect(await outcome(secret.sessions.getSession({ namespace: B, sessionId: "browser" }))).toBe(`PermissionDenied: namespace: this client secret may only use namespace "${A}"`);
    const notAllowed = (m: string) => `PermissionDenied: a client secret may not call ${m}; it allows GetSession, AppendTurns, ListTurns and RecordSpans on its own session`;
    expect(await outcome(secret.sessions.listSessions({}))).toBe(notAllowed("sessiond.v1.SessionService/ListSessions"));
    expect(await outcome(secret.sessions.cancelSession({ id: own.id }))).toBe(notAllowed("sessiond.v1.SessionService/CancelSession"));
    expect(await outcome(secret.memories.listMemories({}))).toBe(notAllowed("sessiond.v1.MemoryService/ListMemories"));
    expect(await outcome(secret.admin.listApiKeys({}))).toBe(notAllowed("sessiond.v1.AdminService/ListApiKeys"));
  });

  it("is refused as unknown once its session is cancelled", async () => {
    const created = await admin.sessions.createSession({ namespace: A });
    const doomed = rpcAs(ctx.services, created.clientSecret!.value);
    expect(await outcome(doomed.sessions.getSession({}))).toBe("ok");
    await admin.sessions.cancelSession({ id: created.session!.id });
    expect(await outcome(doomed.sessions.getSession({}))).toBe(`Unauthenticated: ${REJECTED}`);
  });
});

describe("open RPCs", () => {
  it("answers GetServerInfo and Health without a credential, and without even looking at a bad one", async () => {
    for (const rpc of [rpcAs(ctx.services, ""), rpcAs(ctx.services, "not-a-key-at-all-but-long-enough-to-try")]) {
      expect((await rpc.serverInfo.getServerInfo({})).version).toBeTruthy();
      expect((await rpc.health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
  });
});
