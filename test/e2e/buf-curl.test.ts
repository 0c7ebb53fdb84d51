import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { useServer } from "../setup/server.js";

const run = promisify(execFile);
const BUF = path.resolve("node_modules/.bin/buf");
const ctx = useServer();

/** Runs `buf curl` against the server with server reflection (no --schema). */
async function bufCurl(protocol: string, method: string, body: object): Promise<any> {
  const { stdout } = await run(BUF, ["curl", "-H", `Authorization: Bearer ${TEST_ADMIN_KEY}`, "--protocol", protocol, "-d", JSON.stringify(body), `${ctx.url}/sessiond.v1.SessionService/${method}`], { timeout: 30_000 });
  return JSON.parse(stdout);
}

describe("buf curl with server reflection", () => {
  it("lists every service: sessiond's, OTLP's TraceService, Health and reflection", async () => {
    const { stdout } = await run(BUF, ["curl", "--list-services", ctx.url], { timeout: 30_000 });
    expect(stdout.split("\n").filter(Boolean).sort()).toEqual(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
      "opentelemetry.proto.collector.trace.v1.TraceService",
      "sessiond.v1.AdminService",
      "sessiond.v1.MemoryService",
      "sessiond.v1.OperationService",
      "sessiond.v1.ServerInfoService",
      "sessiond.v1.SessionService",
      "sessiond.v1.TraceService",
    ]);
  });

  it.each(["grpc", "connect", "grpcweb"])("manages a session over --protocol %s", async (protocol) => {
    const ns = `curl-${protocol}`;
    const created = await bufCurl(protocol, "CreateSession", { namespace: ns, sessionId: "c1", user: "bob", labels: { via: "curl" } });
    expect(created.session).toMatchObject({ namespace: ns, sessionId: "c1", user: "bob", state: "SESSION_STATE_ACTIVE" });
    const id = created.session.id;
    expect((await bufCurl(protocol, "GetSession", { id })).session.id).toBe(id);
    expect((await bufCurl(protocol, "ListSessions", { namespace: ns })).sessions.map((s: any) => s.sessionId)).toEqual(["c1"]);
    const updated = await bufCurl(protocol, "UpdateSession", { session: { id, user: "carol" }, updateMask: "user" });
    expect(updated.session.user).toBe("carol");
    expect((await bufCurl(protocol, "CancelSession", { id })).session.state).toBe("SESSION_STATE_CANCELLED");
    expect((await bufCurl(protocol, "SoftDeleteSession", { id })).session.state).toBe("SESSION_STATE_SOFT_DELETED");
    expect((await bufCurl(protocol, "UndeleteSession", { id })).session.state).toBe("SESSION_STATE_CANCELLED");
    expect((await bufCurl(protocol, "TruncateSession", { id })).session.id).toBe(id);
    expect(await bufCurl(protocol, "DeleteSession", { id })).toMatchObject({ id, sessionId: "c1" });
  });

  it("prints a precise error code for bad input", async () => {
    const err = await run(BUF, ["curl", "-H", `Authorization: Bearer ${TEST_ADMIN_KEY}`, "--protocol", "grpc", "-d", '{"id":"nope"}', `${ctx.url}/sessiond.v1.SessionService/GetSession`], { timeout: 30_000 }).catch((e) => e);
    expect(err.code).not.toBe(0);
    expect(JSON.parse(err.stderr)).toMatchObject({ code: "invalid_argument", message: "id: not a valid Session id" });
  });
});
