/**
 * GET /metrics: Prometheus text with RPC counts and durations by final code, bulk delete outcomes,
 * the database pool and process metrics; open like /healthz, and free of ids and namespaces.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { loadConfig } from "../../src/config.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, useServer } from "../setup/server.js";

const ctx = useServer();
const SESSIONS = 'service="sessiond.v1.SessionService"';

/** The exposition's sample lines (comments dropped), as "name{labels} value". */
async function scrape(): Promise<{ status: number; contentType: string | null; lines: string[]; text: string }> {
  const res = await fetch(`${ctx.url}/metrics`);
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get("content-type"), lines: text.split("\n").filter((l) => l && !l.startsWith("#")), text };
}

describe("GET /metrics", () => {
  let sessionId = "";
  const namespace = "metrics-ns";
  const unknownId = encodeSessionId(randomUUID(), randomUUID());

  beforeAll(async () => {
    const client = ctx.client();
    const { session } = await client.createSession({ namespace, sessionId: "metrics-s1" });
    sessionId = session!.id;
    const err = await client.getSession({ id: unknownId }).catch((e) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.NotFound });
    for await (const _ of client.bulkDeleteSessions({ namespace, selector: { case: "ids", value: { values: [sessionId, unknownId, "not-an-id"] } } }));
    const failed = await (async () => { for await (const _ of createClient(AdminService, grpcTransport(ctx.url)).deleteNamespace({ name: "metrics-missing" })); })().catch((e) => ConnectError.from(e));
    expect(failed).toMatchObject({ code: Code.NotFound });
    const rejected = await ctx.client(grpcTransport(ctx.url, "")).getSession({ id: unknownId }).catch((e) => ConnectError.from(e));
    expect(rejected).toMatchObject({ code: Code.Unauthenticated });
  });

  it("answers without credentials in the Prometheus text format", async () => {
    const { status, contentType } = await scrape();
    expect(status).toBe(200);
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  it("counts RPCs by service, method and final code, server streams included", async () => {
    const { lines } = await scrape();
    expect(lines).toContain(`sessiond_rpc_calls_total{${SESSIONS},method="CreateSession",code="ok"} 1`);
    expect(lines).toContain(`sessiond_rpc_calls_total{${SESSIONS},method="GetSession",code="not_found"} 1`);
    expect(lines).toContain(`sessiond_rpc_calls_total{${SESSIONS},method="BulkDeleteSessions",code="ok"} 1`);
    expect(lines).toContain(`sessiond_rpc_duration_seconds_count{${SESSIONS},method="GetSession",code="not_found"} 1`);
    expect(lines).toContain(`sessiond_rpc_duration_seconds_bucket{le="60",${SESSIONS},method="BulkDeleteSessions",code="ok"} 1`);
    expect(lines.some((l) => l.startsWith(`sessiond_rpc_calls_total{${SESSIONS},method="GetSession",code="ok"}`))).toBe(false);
  });

  it("counts a server stream that fails with its code", async () => {
    const { lines } = await scrape();
    expect(lines).toContain('sessiond_rpc_calls_total{service="sessiond.v1.AdminService",method="DeleteNamespace",code="not_found"} 1');
  });

  it("counts calls the credential check rejects apart, in sessiond_rpc_rejected_total (they never reach interceptors)", async () => {
    const { lines } = await scrape();
    // Refused by the request gate, before interceptors: counted apart.
    expect(lines.filter((l) => l.startsWith("sessiond_rpc_calls_total{") && l.includes('code="unauthenticated"'))).toEqual([]);
    expect(lines).toContain('sessiond_rpc_rejected_total{service="sessiond.v1.SessionService",method="GetSession",code="unauthenticated"} 1');
  });

  it("counts the per-id outcomes of bulk deletes", async () => {
    const { lines } = await scrape();
    expect(lines).toEqual(expect.arrayContaining([
      'sessiond_bulk_delete_ids_total{outcome="deleted"} 1',
      'sessiond_bulk_delete_ids_total{outcome="not_found"} 1',
      'sessiond_bulk_delete_ids_total{outcome="invalid_id"} 1',
      'sessiond_bulk_delete_ids_total{outcome="failed"} 0',
      'sessiond_bulk_delete_ids_total{outcome="would_delete"} 0',
    ]));
  });

  it("reports operations by kind and state, and those this process runs", async () => {
    const { lines } = await scrape();
    expect(lines).toEqual(expect.arrayContaining(['sessiond_operations{kind="bulk_delete_sessions",state="succeeded"} 1', "sessiond_operations_running_local 0"]));
    expect(lines.filter((l) => l.startsWith("sessiond_operations{"))).toHaveLength(1);
  });

  it("reports the database pool and the process", async () => {
    const { lines } = await scrape();
    const value = (prefix: string) => {
      const line = lines.find((l) => l.startsWith(`${prefix} `));
      expect(line, prefix).toBeDefined();
      return Number(line!.slice(prefix.length + 1));
    };
    expect(value("sessiond_db_pool_max")).toBe(10);
    const total = value('sessiond_db_pool_connections{state="total"}');
    expect(total).toBeGreaterThanOrEqual(1);
    expect(total).toBeLessThanOrEqual(10);
    expect(value('sessiond_db_pool_connections{state="idle"}')).toBeLessThanOrEqual(total);
    expect(value('sessiond_db_pool_connections{state="waiting"}')).toBe(0);
    expect(value("sessiond_process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(value("sessiond_process_start_time_seconds")).toBeGreaterThan(0);
  });

  it("never carries ids, namespaces or secrets in labels", async () => {
    const { text } = await scrape();
    for (const secret of [sessionId, unknownId, "not-an-id", namespace, "metrics-s1", "metrics-missing", "test-bootstrap-admin-key"]) expect(text).not.toContain(secret);
  });

  it("answers HEAD without a body and other methods with 405", async () => {
    const head = await fetch(`${ctx.url}/metrics`, { method: "HEAD" });
    expect([head.status, head.headers.get("content-type"), await head.text()]).toEqual([200, "text/plain; version=0.0.4; charset=utf-8", ""]);
    const post = await fetch(`${ctx.url}/metrics`, { method: "POST", body: "x" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  });

  it("counts calls connect-es refuses before the interceptors in sessiond_rpc_rejected_total, by reason, with a request id and a log line", async () => {
    const auth = { authorization: `Bearer ${TEST_ADMIN_KEY}` };
    const post = async (headers: Record<string, string>, body: Uint8Array | string) => {
      const res = await fetch(`${ctx.url}/sessiond.v1.SessionService/GetSession`, { method: "POST", headers: { ...auth, ...headers }, body });
      await res.arrayBuffer();
      return { status: res.status, requestId: res.headers.get("x-request-id") };
    };
    const refused = [
      await post({ "content-type": "application/proto" }, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])),
      // 1 MiB over the default message limit.
      await post({ "content-type": "application/proto" }, Buffer.alloc(loadConfig({}).readMaxBytes + 1024 * 1024, 0x0a)),
      await post({ "content-type": "text/plain" }, "hello"),
    ];
    expect(refused.map((r) => r.status)).toEqual([500, 429, 415]);
    for (const { requestId } of refused) {
      expect(requestId).toBeTruthy();
      const line = ctx.logs.map((l) => JSON.parse(l)).find((l) => l.request_id === requestId);
      expect(line).toMatchObject({ msg: "rpc", service: "sessiond.v1.SessionService", method: "GetSession", level: 40 });
    }
    const { lines } = await scrape();
    expect(lines).toEqual(expect.arrayContaining([
      `sessiond_rpc_rejected_total{${SESSIONS},method="GetSession",code="internal",reason="undecodable"} 1`,
      `sessiond_rpc_rejected_total{${SESSIONS},method="GetSession",code="resource_exhausted",reason="too_large"} 1`,
      expect.stringMatching(new RegExp(`^sessiond_rpc_rejected_total\\{${SESSIONS},method="GetSession",code="[a-z_]+",reason="content_type"\\} 1$`)),
    ]));
  });

  it("counts a server stream the client abandons over HTTP/1.1 as canceled, not internal", async () => {
    const health = createClient(Health, createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", interceptors: [bearer(TEST_ADMIN_KEY)] }));
    const abort = new AbortController();
    const stream = health.watch({ service: "" }, { signal: abort.signal });
    for await (const _ of stream) break; // the first status, then the client goes away
    abort.abort();
    const watch = 'sessiond_rpc_calls_total{service="grpc.health.v1.Health",method="Watch",code=';
    let lines: string[] = [];
    for (const end = Date.now() + 30_000; !lines.some((l) => l.startsWith(watch)); await new Promise((r) => setTimeout(r, 25))) {
      if (Date.now() > end) throw new Error("no sessiond_rpc_calls_total sample for Health/Watch within 30 s");
      lines = (await scrape()).lines;
    }
    expect(lines.filter((l) => l.startsWith(watch))).toEqual([`${watch}"canceled"} 1`]);
  });
});
