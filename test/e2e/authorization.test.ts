/**
 * The authorization matrix (test/setup/authorization-matrix.ts): every RPC on the port x every kind of
 * credential x own / foreign namespace, with API keys and client secrets.
 */
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { BulkDeleteOutcome, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { bearer, codeOf, connectAs } from "../setup/auth.js";
import { EXPECTED, RANK, runMatrix, SERVICES, type Caller } from "../setup/authorization-matrix.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();

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

describe("the authorization matrix", () => {
  it("lists every RPC on the port", () => {
    const served = SERVICES.flatMap((s) => s.methods.map((m) => `${s.name}/${m.name}`)).sort();
    expect(served).toEqual(Object.keys(EXPECTED).sort());
  });

  it("gives every RPC x credential x own/foreign namespace the expected answer", async () => {
    const { mismatches, checked } = await runMatrix(callers, (c) => createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", interceptors: c.secret ? [bearer(c.secret)] : [] }), A, B);
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
