/**
 * One bad request must not silence the audit log (issue 12, defect 2): a CreateSession whose namespace
 * holds a NUL is refused, and its audit event, which Postgres cannot take as it was, is recorded
 * without resolving the name; every call after it is audited as before, over Connect JSON and gRPC,
 * and /metrics shows an empty queue and nothing dropped; a graceful stop writes what is queued.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport } from "../setup/server.js";
import { spawnServer, waitFor, type ServerProcess } from "./harness.js";

let db: TestDatabase;
let server: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
  server = await spawnServer({ databaseUrl: db.url });
});
afterAll(async () => {
  server?.kill("SIGKILL");
  await db?.close();
});

/** The metric samples of /metrics, by "name{labels}". */
async function scrape(): Promise<Map<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return new Map(
    text
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => [l.slice(0, l.lastIndexOf(" ")), Number(l.slice(l.lastIndexOf(" ") + 1))]),
  );
}

describe("a CreateSession with a NUL in its namespace", () => {
  it("is refused and audited, and every call after it is audited too (Connect JSON and gRPC)", async () => {
    const clients = {
      json: createClient(SessionService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false, interceptors: [bearer(TEST_ADMIN_KEY)] })),
      grpc: createClient(SessionService, grpcTransport(server.url)),
    };
    const admin = createClient(AdminService, grpcTransport(server.url));
    for (const [name, client] of Object.entries(clients)) {
      const err = await client.createSession({ namespace: `evil\u0000${name}`, sessionId: `nul-${name}` }).then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.InvalidArgument);
      // Calls after it, in the same flush window and in later ones.
      await client.createSession({ namespace: "after-nul", sessionId: `s1-${name}` });
    }
    // A later batch, after the first one was written (or not).
    await admin.listAuditEvents({ pageSize: 1 });
    for (const [name, client] of Object.entries(clients)) await client.createSession({ namespace: "after-nul", sessionId: `s2-${name}` });

    const audited = await waitFor(async () => {
      const { events } = await admin.listAuditEvents({ namespace: "after-nul", pageSize: 100 });
      return events.length >= 4 ? events : undefined;
    }, 20_000);
    expect(audited.map((e) => [e.method, e.code]).sort()).toEqual(Array(4).fill(["sessiond.v1.SessionService/CreateSession", "ok"]));

    // The refused calls are there too, with their code and the name made storable (never resolved).
    const all = (await admin.listAuditEvents({ pageSize: 100 })).events;
    const refused = all.filter((e) => e.code === "invalid_argument").map((e) => e.namespace).sort();
    expect(refused).toEqual(["evil\uFFFDgrpc", "evil\uFFFDjson"]);
    const rows = await db.sql("SELECT namespace, namespace_id FROM audit_events WHERE code = 'invalid_argument' ORDER BY namespace");
    expect(rows).toEqual([
      { namespace: "evil\uFFFDgrpc", namespace_id: null },
      { namespace: "evil\uFFFDjson", namespace_id: null },
    ]);

    const metrics = await scrape();
    expect(metrics.get("sessiond_audit_queue_depth")).toBe(0);
    for (const reason of ["queue_full", "unwritable", "shutdown"]) expect(metrics.get(`sessiond_audit_events_dropped_total{reason="${reason}"}`)).toBe(0);
    expect(server.logs().filter((l) => l.component === "audit" || /audit/.test(String(l.msg)))).toEqual([]);
  });

  it("does not stop the events queued with it from being written at a graceful stop", async () => {
    const client = createClient(SessionService, grpcTransport(server.url));
    expect(await client.createSession({ namespace: "evil\u0000stop", sessionId: "x" }).then(() => undefined, (e) => ConnectError.from(e).code)).toBe(Code.InvalidArgument);
    await client.createSession({ namespace: "after-nul", sessionId: "last-before-stop" });
    // No read flushes them: the stop does.
    server.kill("SIGTERM");
    expect(await server.exited).toEqual({ code: 0, signal: null });
    const rows = await db.sql("SELECT namespace, code FROM audit_events WHERE namespace IN ('after-nul', 'evil\uFFFDstop') ORDER BY namespace, code");
    expect(rows).toEqual([...Array(5).fill({ namespace: "after-nul", code: "ok" }), { namespace: "evil\uFFFDstop", code: "invalid_argument" }]);
    expect(server.logs().filter((l) => /dropped/.test(String(l.msg)))).toEqual([]);
  });
});
