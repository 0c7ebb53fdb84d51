/**
 * OperationService over the wire: bulk deletes and namespace deletions as persisted operations that
 * can be listed, watched from any batch, cancelled, and left running (`detach`) when their client goes
 * away; and its bad input and tenancy edges.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { OperationKind, OperationService, OperationState, type WatchOperationResponse } from "../../gen/sessiond/v1/operation_service_pb.js";
import { BulkDeleteOutcome, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { connectAs } from "../setup/auth.js";
import { namespaceIdOf, seedSessions } from "../setup/seed.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer();
const sessions = () => createClient(SessionService, grpcTransport(ctx.url));
const operations = () => createClient(OperationService, grpcTransport(ctx.url));

async function idsOf(n: number, namespace: string): Promise<string[]> {
  const uuids = await seedSessions(ctx.db.dataSource, n, namespace);
  const namespaceId = await namespaceIdOf(ctx.db.dataSource, namespace);
  return uuids.map((u) => encodeSessionId(namespaceId, u));
}

/** Starts a bulk delete, reads its first message and goes away; returns the operation id. */
async function startAndLeave(namespace: string, values: string[], opts: { detach: boolean; batchSize: number }): Promise<string> {
  const abort = new AbortController();
  let operationId = "";
  const err = await (async () => {
    for await (const m of sessions().bulkDeleteSessions({ namespace, selector: { case: "ids", value: { values } }, ...opts }, { signal: abort.signal })) {
      if (m.event.case === "started") {
        operationId = m.event.value.operationId;
        abort.abort();
      }
    }
  })().catch((e) => e);
  expect(ConnectError.from(err).code).toBe(Code.Canceled);
  return operationId;
}

async function watchAll(namespace: string, id: string, afterBatch = 0n): Promise<WatchOperationResponse[]> {
  const out: WatchOperationResponse[] = [];
  for await (const m of operations().watchOperation({ namespace, id, afterBatch })) out.push(m);
  return out;
}

/** The error `call` fails with (the test fails if it succeeds). */
async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  const out = await call.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );
  if (!out) throw new Error("the call succeeded");
  return out;
}

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 20_000): Promise<T> {
  for (const end = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 25))) {
    const v = await read();
    if (done(v) || Date.now() > end) return v;
  }
}

describe("OperationService", () => {
  it("a detached bulk delete goes on after its client leaves, and WatchOperation replays every batch, then the end", async () => {
    const ns = "ops-detach";
    const ids = await idsOf(120, ns);
    const id = await startAndLeave(ns, ids, { detach: true, batchSize: 10 });
    const messages = await watchAll(ns, id);
    expect(messages[0].event.case).toBe("operation");
    const batches = messages.flatMap((m) => (m.event.case === "batch" ? [m.event.value] : []));
    expect(batches.map((b) => Number(b.number))).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const reported = batches.flatMap((b) => b.progress!.results.map((r) => r.identifier));
    expect(reported).toEqual(ids);
    expect(batches.every((b) => b.progress!.results.every((r) => r.outcome === BulkDeleteOutcome.DELETED))).toBe(true);
    const last = messages.at(-1)!;
    expect(last.event.case).toBe("ended");
    expect(last.event.value).toMatchObject({ id, namespace: ns, kind: OperationKind.BULK_DELETE_SESSIONS, state: OperationState.SUCCEEDED, batches: 12n, detach: true, attempts: 1 });
    // From a later batch: only what follows it.
    const tail = await watchAll(ns, id, 10n);
    expect(tail.filter((m) => m.event.case === "batch").map((m) => (m.event.value as { number: bigint }).number)).toEqual([11n, 12n]);
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM sessions s JOIN namespaces x ON x.id = s.namespace_id WHERE x.name = $1", [ns]);
    expect(n).toBe(0);
  });

  it("without detach, the client leaving cancels the operation between batches", async () => {
    const ns = "ops-attached";
    const ids = await idsOf(400, ns);
    const id = await startAndLeave(ns, ids, { detach: false, batchSize: 1 });
    const op = await until(
      async () => (await operations().getOperation({ namespace: ns, id })).operation!,
      (o) => o.state === OperationState.CANCELLED,
    );
    expect(op.state).toBe(OperationState.CANCELLED);
    expect(op.counters!.completed).toBeLessThan(400n);
    const [{ n }] = await ctx.db.sql("SELECT count(*)::int AS n FROM sessions s JOIN namespaces x ON x.id = s.namespace_id WHERE x.name = $1", [ns]);
    expect(n).toBe(400 - Number(op.counters!.deleted));
  });

  it("CancelOperation stops a running operation; its stream ends CANCELED; cancelling again is a no-op; a finished one is FAILED_PRECONDITION", async () => {
    const ns = "ops-cancel";
    const ids = await idsOf(400, ns);
    const stream = sessions().bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids } }, batchSize: 1 });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    const id = first.value.event.value.operationId as string;
    const { operation } = await operations().cancelOperation({ namespace: ns, id });
    expect([OperationState.RUNNING, OperationState.CANCELLED]).toContain(operation!.state);
    const err = await (async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })().catch((e) => e);
    expect(ConnectError.from(err).code).toBe(Code.Canceled);
    const again = await operations().cancelOperation({ namespace: ns, id });
    expect(again.operation!.state).toBe(OperationState.CANCELLED);

    const done = await startAndLeave(ns, ids.slice(-3), { detach: true, batchSize: 10 });
    await watchAll(ns, done);
    const refused = await errorOf(operations().cancelOperation({ namespace: ns, id: done }));
    expect(refused).toMatchObject({ code: Code.FailedPrecondition });
    expect(refused.message).toMatch(/already succeeded/);
  });

  it("ListOperations lists a namespace's operations newest first, by kind and state, in pages", async () => {
    const ns = "ops-list";
    const ids = await idsOf(6, ns);
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await startAndLeave(ns, ids.slice(i * 2, i * 2 + 2), { detach: true, batchSize: 10 });
      await watchAll(ns, id);
      made.push(id);
    }
    const first = await operations().listOperations({ namespace: ns, pageSize: 2 });
    expect(first.operations.map((o) => o.id)).toEqual([made[2], made[1]]);
    const second = await operations().listOperations({ namespace: ns, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.operations.map((o) => o.id)).toEqual([made[0]]);
    expect(second.nextPageToken).toBe("");
    expect((await operations().listOperations({ namespace: ns, state: OperationState.SUCCEEDED })).operations).toHaveLength(3);
    expect((await operations().listOperations({ namespace: ns, state: OperationState.QUEUED })).operations).toHaveLength(0);
    expect((await operations().listOperations({ namespace: ns, kind: OperationKind.DELETE_NAMESPACE })).operations).toHaveLength(0);
    const stale = await errorOf(operations().listOperations({ namespace: ns, pageSize: 2, pageToken: first.nextPageToken, state: OperationState.SUCCEEDED }));
    expect(stale).toMatchObject({ code: Code.InvalidArgument });
    expect(stale.message).toContain("page_token");
  });

  it("answers unknown, malformed and other namespaces' operation ids precisely", async () => {
    const ns = "ops-edges";
    const ids = await idsOf(2, ns);
    const id = await startAndLeave(ns, ids, { detach: true, batchSize: 10 });
    await watchAll(ns, id);
    const unknown = encodeGlobalId("Operation", "01900000-0000-7000-8000-000000000000");
    for (const call of [() => operations().getOperation({ namespace: ns, id: unknown }), () => operations().cancelOperation({ namespace: ns, id: unknown }), () => watchAll(ns, unknown)]) {
      expect((await errorOf(call())).code).toBe(Code.NotFound);
    }
    const malformed = await errorOf(operations().getOperation({ namespace: ns, id: "nope" }));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.message).toMatch(/^\[invalid_argument\] id/);
    const session = await errorOf(operations().getOperation({ namespace: ns, id: ids[0] }));
    expect(session.code).toBe(Code.InvalidArgument);
    // Another namespace's: not found, whoever asks.
    expect(await operations().getOperation({ namespace: "ops-other", id }).catch((e) => ConnectError.from(e).code)).toBe(Code.NotFound);
    const admin = createClient(AdminService, grpcTransport(ctx.url));
    await admin.createNamespace({ name: "ops-tenant" });
    const { secret } = await admin.createApiKey({ namespace: "ops-tenant", role: Role.ADMIN, displayName: "tenant" });
    const tenant = createClient(OperationService, connectAs(ctx.url, secret));
    expect(await tenant.getOperation({ id }).catch((e) => ConnectError.from(e).code)).toBe(Code.NotFound);
    expect(await tenant.getOperation({ namespace: ns, id }).catch((e) => ConnectError.from(e).code)).toBe(Code.PermissionDenied);
    expect((await tenant.listOperations({})).operations).toEqual([]);
    const negative = await errorOf(operations().watchOperation({ namespace: ns, id, afterBatch: -1n })[Symbol.asyncIterator]().next());
    expect(negative.code).toBe(Code.InvalidArgument);
    expect(negative.message).toContain("after_batch");
  });

  it("DeleteNamespace runs as an operation, readable after the namespace is gone by keys of all namespaces", async () => {
    const ns = "ops-ns";
    await idsOf(25, ns);
    const admin = createClient(AdminService, grpcTransport(ctx.url));
    let id = "";
    let deleted = false;
    for await (const m of admin.deleteNamespace({ name: ns, batchSize: 10 })) {
      if (m.event.case === "started") id = m.event.value.operationId;
      if (m.event.case === "deleted") deleted = true;
    }
    expect(deleted).toBe(true);
    const { operation } = await operations().getOperation({ namespace: ns, id });
    expect(operation).toMatchObject({ kind: OperationKind.DELETE_NAMESPACE, state: OperationState.SUCCEEDED, namespace: ns, counters: { deleted: 25n } });
    expect((await operations().listOperations({ namespace: ns })).operations.map((o) => o.id)).toEqual([id]);
  });

  it("is served over every protocol", async () => {
    const ns = "ops-protocols";
    const ids = await idsOf(1, ns);
    const id = await startAndLeave(ns, ids, { detach: true, batchSize: 10 });
    for (const [name, transport] of Object.entries(transports(ctx.url))) {
      const client = createClient(OperationService, transport);
      const ended = await until(
        async () => (await client.getOperation({ namespace: ns, id })).operation!,
        (o) => o.state === OperationState.SUCCEEDED,
      );
      expect(ended.state, name).toBe(OperationState.SUCCEEDED);
    }
  });
});
