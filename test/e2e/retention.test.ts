/**
 * Retention over the wire: AdminService.Set/GetRetentionPolicy with its bad input, a session past its
 * policy answered NOT_FOUND at once, and the server's own sweeper (every 200 ms here) deleting it as a
 * RETENTION_SWEEP operation, counted in /metrics.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { OperationKind, OperationService, OperationState } from "../../gen/sessiond/v1/operation_service_pb.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer({ SESSIOND_SWEEP_INTERVAL_MS: "200" });
const admin = () => createClient(AdminService, transports(ctx.url)["connect/http1.1"]);

describe("retention policies over the wire", () => {
  it("reads the default, stores a policy, and names the field of a bad one", async () => {
    await admin().createNamespace({ name: "ret-wire" });
    expect(await admin().getRetentionPolicy({ namespace: "ret-wire" })).toMatchObject({ isDefault: true, policy: { holdLabels: [], purgeMemories: false } });
    const set = await admin().setRetentionPolicy({ namespace: "ret-wire", policy: { maxIdle: { seconds: 3600n }, holdLabels: ["legal-hold"] } });
    expect(set.policy).toMatchObject({ maxIdle: { seconds: 3600n }, holdLabels: ["legal-hold"] });
    expect(set.policy!.maxAge).toBeUndefined();
    const got = await admin().getRetentionPolicy({ namespace: "ret-wire" });
    expect(got).toMatchObject({ isDefault: false, policy: { maxIdle: { seconds: 3600n } } });
    expect(got.updateTime).toBeDefined();
    for (const [policy, field] of [
      [{ maxAge: { seconds: -5n } }, "policy.max_age"],
      [{ maxIdle: { seconds: 10n } }, "policy.max_idle"],
      [{ sessionlessTraceTtl: { seconds: 10_000_000_000n } }, "policy.sessionless_trace_ttl"],
    ] as const) {
      const err = await admin().setRetentionPolicy({ namespace: "ret-wire", policy }).catch((e) => ConnectError.from(e));
      expect(err).toMatchObject({ code: Code.InvalidArgument });
      expect((err as ConnectError).rawMessage.startsWith(`${field}:`)).toBe(true);
    }
    expect(await admin().getRetentionPolicy({ namespace: "ret-nowhere" }).catch((e) => ConnectError.from(e).code)).toBe(Code.NotFound);
  });

  it("hides a session past its policy at once, and the sweeper deletes it as an operation", async () => {
    const sessions = ctx.client();
    const { session } = await sessions.createSession({ namespace: "ret-sweep-wire", sessionId: "old" });
    const { session: young } = await sessions.createSession({ namespace: "ret-sweep-wire", sessionId: "young" });
    await ctx.db.sql("UPDATE sessions SET create_time = now() - interval '3 days', last_activity_time = now() - interval '3 days' WHERE external_id = 'old'");
    await admin().setRetentionPolicy({ namespace: "ret-sweep-wire", policy: { maxIdle: { seconds: 86_400n } } });
    expect(await sessions.getSession({ id: session!.id }).catch((e) => ConnectError.from(e).code)).toBe(Code.NotFound);
    expect((await sessions.listSessions({ namespace: "ret-sweep-wire" })).sessions.map((s) => s.sessionId)).toEqual(["young"]);

    const operations = createClient(OperationService, grpcTransport(ctx.url));
    let sweep;
    for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      [sweep] = (await operations.listOperations({ namespace: "ret-sweep-wire", kind: OperationKind.RETENTION_SWEEP })).operations;
      if (sweep?.state === OperationState.SUCCEEDED) break;
    }
    expect(sweep).toMatchObject({ state: OperationState.SUCCEEDED, actor: "system:retention", counters: { deleted: 1n } });
    expect(await ctx.db.sql("SELECT external_id FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = 'ret-sweep-wire'")).toEqual([{ external_id: "young" }]);
    expect((await sessions.getSession({ id: young!.id })).session?.sessionId).toBe("young");
    const metrics = await (await fetch(`${ctx.url}/metrics`)).text();
    expect(metrics).toMatch(/^sessiond_retention_swept_total\{what="sessions"\} [1-9]/m);
    expect(metrics).toMatch(/^sessiond_retention_sweep_lag_seconds \d/m);
  });
});
