/**
 * The authorization matrix: every RPC on the port x every kind of credential x own / foreign
 * namespace. The roles expected here are written out by hand (not read from the contract), so a wrong
 * option in a .proto file fails this test.
 */
import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { TraceService as OtlpTraceService } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";
import { BulkDeleteOutcome, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { bearer, codeOf, connectAs } from "../setup/auth.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();

type Needs = "reader" | "writer" | "admin" | "open";
/** What each RPC needs; `*` marks the ones a client secret may call, `!` those needing an all-namespaces key. */
const EXPECTED: Record<string, string> = {
  "SessionService/CreateSession": "writer",
  "SessionService/GetSession": "reader*",
  "SessionService/ListSessions": "reader",
  "SessionService/UpdateSession": "writer",
  "SessionService/DeleteSession": "writer",
  "SessionService/SoftDeleteSession": "writer",
  "SessionService/UndeleteSession": "writer",
  "SessionService/TruncateSession": "writer",
  "SessionService/CancelSession": "writer",
  "SessionService/RefreshClientSecret": "writer",
  "SessionService/BulkDeleteSessions": "writer",
  "SessionService/BindParticipant": "writer",
  "SessionService/UnbindParticipant": "writer",
  "SessionService/ListParticipants": "reader",
  "SessionService/AppendTurns": "writer*",
  "SessionService/ListTurns": "reader*",
  "SessionService/IntegrateSession": "writer",
  "MemoryService/ListMemories": "reader",
  "MemoryService/DeleteMemories": "writer",
  "MemoryService/GetIntegratorConfig": "reader",
  "MemoryService/UpdateIntegratorConfig": "admin",
  "TraceService/RecordSpans": "writer*",
  "TraceService/ListTraces": "reader",
  "TraceService/GetTrace": "reader",
  "TraceService/DeleteTraces": "writer",
  "TraceService/Annotate": "writer",
  "TraceService/ListAnnotations": "reader",
  "AdminService/CreateNamespace": "admin!",
  "AdminService/ListNamespaces": "admin!",
  "AdminService/DeleteNamespace": "admin!",
  "AdminService/CreateApiKey": "admin",
  "AdminService/ListApiKeys": "admin",
  "AdminService/RevokeApiKey": "admin",
  "AdminService/ListAuditEvents": "admin",
  "ServerInfoService/GetServerInfo": "open",
  "TraceService/Export": "writer",
};

const SERVICES: DescService[] = [SessionService, MemoryService, TraceService, AdminService, ServerInfoService, OtlpTraceService];
const RANK = { reader: 1, writer: 2, admin: 3 } as const;

/** A credential of the matrix. */
interface Caller {
  name: string;
  secret: string;
  /** What the credential is. */
  kind: "none" | "bad" | "key" | "client";
  role?: keyof typeof RANK;
  /** The key's one namespace; undefined for all. */
  namespace?: string;
}

const A = "tenant-a";
const B = "tenant-b";
const callers: Caller[] = [];
let admin: Client<typeof AdminService>;

beforeAll(async () => {
  admin = createClient(AdminService, transports(ctx.url)["connect/http1.1"]);
  await admin.createNamespace({ name: A });
  await admin.createNamespace({ name: B });
  const key = async (role: keyof typeof RANK, namespace?: string) => {
    const { secret } = await admin.createApiKey({ displayName: `${role} ${namespace ?? "*"}`, role: { reader: Role.READER, writer: Role.WRITER, admin: Role.ADMIN }[role], namespace });
    callers.push({ name: `${role.toUpperCase()} key of ${namespace ?? "all namespaces"}`, secret, kind: "key", role, namespace });
  };
  for (const role of ["reader", "writer", "admin"] as const) {
    await key(role);
    await key(role, A);
  }
  const { clientSecret } = await createClient(SessionService, transports(ctx.url)["connect/http1.1"]).createSession({ namespace: A, sessionId: "browser" });
  callers.push({ name: "client secret of a session in A", secret: clientSecret!.value, kind: "client", namespace: A });
  callers.push({ name: "no credential", secret: "", kind: "none" });
  callers.push({ name: "an unknown sk_ key", secret: `sk_${"A".repeat(22)}_${"B".repeat(43)}`, kind: "bad" });
  callers.push({ name: "a random string", secret: "this-is-not-a-key-but-it-is-long-enough", kind: "bad" });
});

/** Calls `method` with a minimal request naming `namespace`; returns the code (undefined for success). */
async function call(transport: Transport, service: DescService, method: DescMethod, namespace: string): Promise<Code | undefined> {
  const client = createClient(service, transport) as Record<string, (req: unknown, opts?: unknown) => unknown>;
  const input = create(method.input) as Record<string, unknown>;
  if (method.input.field.namespace) input.namespace = namespace;
  const session = method.input.field.session;
  if (session?.fieldKind === "message") input.session = create(session.message, { namespace });
  const headers = service === OtlpTraceService ? { "sessiond-namespace": namespace } : undefined;
  try {
    const result = client[method.localName](input, { headers });
    if (method.methodKind === "server_streaming") for await (const _ of result as AsyncIterable<unknown>);
    else await result;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** What the matrix expects: denied (with which code) or let through to the method itself. */
function expected(c: Caller, needs: string, own: boolean): "through" | Code {
  const [role, mark] = [needs.replace(/[*!]/g, "") as Needs, needs.slice(-1)];
  if (role === "open") return "through";
  if (c.kind === "none" || c.kind === "bad") return Code.Unauthenticated;
  if (c.kind === "client") return mark === "*" && own ? "through" : Code.PermissionDenied;
  if (RANK[c.role!] < RANK[role as keyof typeof RANK]) return Code.PermissionDenied;
  if (c.namespace && (mark === "!" || !own)) return Code.PermissionDenied;
  return "through";
}

describe("the authorization matrix", () => {
  it("lists every RPC on the port", () => {
    const served = SERVICES.flatMap((s) => s.methods.map((m) => `${s.name}/${m.name}`)).sort();
    expect(served).toEqual(Object.keys(EXPECTED).sort());
  });

  it("gives every RPC x credential x own/foreign namespace the expected answer", async () => {
    const mismatches: string[] = [];
    let checked = 0;
    for (const c of callers) {
      const transport = createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", interceptors: c.secret ? [bearer(c.secret)] : [] });
      for (const service of SERVICES) {
        for (const method of service.methods) {
          const needs = EXPECTED[`${service.name}/${method.name}`];
          for (const own of [true, false]) {
            const want = expected(c, needs, own);
            const got = await call(transport, service, method, own ? A : B);
            checked++;
            const ok = want === "through" ? got !== Code.Unauthenticated && got !== Code.PermissionDenied : got === want;
            if (!ok) mismatches.push(`${c.name} -> ${service.name}/${method.name} in ${own ? "own" : "foreign"} namespace: expected ${want === "through" ? "to get through" : Code[want]}, got ${got === undefined ? "OK" : Code[got]}`);
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(callers.length * Object.keys(EXPECTED).length * 2);
  }, 120_000);
});

describe("OTLP/HTTP POST /v1/traces", () => {
  const post = (secret: string, namespace?: string) =>
    fetch(`${ctx.url}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret ? { authorization: `Bearer ${secret}` } : {}), ...(namespace ? { "sessiond-namespace": namespace } : {}) },
      body: JSON.stringify({ resourceSpans: [] }),
    });
  const key = (role: string, namespace?: string) => callers.find((c) => c.kind === "key" && c.role === role && c.namespace === namespace)!.secret;

  it("is guarded like the gRPC Export: a WRITER key, inside its namespace", async () => {
    expect((await post("")).status).toBe(401);
    expect((await post("sk_nope")).status).toBe(401);
    expect((await post(key("reader"))).status).toBe(403);
    expect((await post(key("writer", A), B)).status).toBe(403);
    expect((await post(callers.find((c) => c.kind === "client")!.secret)).status).toBe(403);
    expect((await post(key("writer", A))).status).toBe(200);
    expect((await post(key("writer"), B)).status).toBe(200);
  });
});

describe("a key of one namespace", () => {
  it("never sees, lists, changes or deletes another namespace's sessions", async () => {
    const writerA = callers.find((c) => c.kind === "key" && c.role === "writer" && c.namespace === A)!;
    const asA = createClient(SessionService, connectAs(ctx.url, writerA.secret));
    const asAdmin = createClient(SessionService, transports(ctx.url)["grpc/http2"]);
    const { session: theirs } = await asAdmin.createSession({ namespace: B, sessionId: "secret-plans" });
    const { session: mine } = await asA.createSession({ sessionId: "mine" });
    expect(mine!.namespace).toBe(A);

    expect(await codeOf(asA.getSession({ id: theirs!.id }))).toBe(Code.NotFound);
    expect(await codeOf(asA.getSession({ namespace: B, sessionId: "secret-plans" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(asA.updateSession({ session: { id: theirs!.id, user: "x" }, updateMask: { paths: ["user"] } }))).toBe(Code.NotFound);
    expect(await codeOf(asA.deleteSession({ id: theirs!.id }))).toBe(Code.NotFound);
    expect(await codeOf(asA.cancelSession({ id: theirs!.id }))).toBe(Code.NotFound);
    expect(await codeOf(asA.appendTurns({ id: theirs!.id, turns: [{ participantId: "p", content: "x" }] }))).toBe(Code.NotFound);
    expect(await codeOf(asA.listSessions({ namespace: B }))).toBe(Code.PermissionDenied);
    const listed = await asA.listSessions({});
    expect(listed.sessions.map((s) => s.sessionId)).not.toContain("secret-plans");
    expect(listed.sessions.every((s) => s.namespace === A)).toBe(true);

    const outcomes = new Map<string, BulkDeleteOutcome>();
    for await (const m of asA.bulkDeleteSessions({ selector: { case: "ids", value: { values: [theirs!.id, mine!.id] } } })) {
      if (m.event.case === "progress") for (const r of m.event.value.results) outcomes.set(r.identifier, r.outcome);
    }
    expect(outcomes.get(theirs!.id)).toBe(BulkDeleteOutcome.NOT_FOUND);
    expect(outcomes.get(mine!.id)).toBe(BulkDeleteOutcome.DELETED);
    expect((await asAdmin.getSession({ id: theirs!.id })).session?.state).toBeDefined();
  });
});
