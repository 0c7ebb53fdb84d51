import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BulkDeleteOutcome, SessionService, type BulkDeleteSessionsRequest, type BulkDeleteSessionsResponse } from "../../gen/sessiond/v1/session_service_pb.js";
import { OperationService, OperationState } from "../../gen/sessiond/v1/operation_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { BulkDeleteSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import { freePort } from "../../src/net/free-port.js";
import { createLogger } from "../../src/logger.js";
import { countContents, countContentsEach, namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer();
const SHAPE = { participants: 2, turnsPerParticipant: 5, traces: 2, spansPerTrace: 5, annotationsPerTrace: 1, memories: 1 };
/** Namespace ids of the sessions seeded here, by session uuid: what their global ids carry. */
const namespaceOfSession = new Map<string, string>();

/** Seeds `n` sessions in `namespace` (seedSessions) and notes their namespace, for gid. */
async function seed(n: number, namespace: string): Promise<string[]> {
  const uuids = await seedSessions(ctx.db.dataSource, n, namespace);
  const namespaceId = await namespaceIdOf(ctx.db.dataSource, namespace);
  for (const u of uuids) namespaceOfSession.set(u, namespaceId);
  return uuids;
}

/** The global id of a seeded session. */
const gid = (u: string) => encodeSessionId(namespaceOfSession.get(u)!, u);
type Req = MessageInitShape<typeof BulkDeleteSessionsRequestSchema>;

/**
 * The server's access-log line of the call with `requestId`, once it is written: it is written when the
 * call's stream has ended on the server (handlers/streams.ts watchStream), after the batch in hand has
 * committed, so no statement of that call still runs and the counts are final.
 */
async function accessLogOf(requestId: string, ms = 30_000): Promise<Record<string, unknown>> {
  for (const end = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 20))) {
    const line = ctx.logs.flatMap((chunk) => chunk.split("\n")).filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === "rpc" && l.request_id === requestId);
    if (line) return line;
    if (Date.now() > end) throw new Error(`no access-log line for request ${requestId} within ${ms} ms`);
  }
}

/**
 * Waits for the operation a stream ran as to end, and returns its state: the stream's end (a client that
 * went away, a deadline) stops the operation after the batch in hand, which the server still commits.
 */
async function endOf(namespace: string, operationId: string): Promise<OperationState | undefined> {
  let ended: OperationState | undefined;
  for await (const m of createClient(OperationService, grpcTransport(ctx.url)).watchOperation({ namespace, id: operationId })) {
    if (m.event.case === "ended") ended = m.event.value.state;
  }
  return ended;
}

async function consume(stream: AsyncIterable<BulkDeleteSessionsResponse>, onMessage?: (m: BulkDeleteSessionsResponse, i: number) => void) {
  const messages: BulkDeleteSessionsResponse[] = [];
  for await (const m of stream) {
    onMessage?.(m, messages.length);
    messages.push(m);
  }
  return messages;
}

const resultsOf = (ms: BulkDeleteSessionsResponse[]) => ms.flatMap((m) => (m.event.case === "progress" ? m.event.value.results : []));

/** Every session is either whole (all its rows) or entirely gone: never half-deleted. */
async function expectNoHalfDeleted(uuids: string[]) {
  for (const c of (await countContentsEach(ctx.db.dataSource, uuids)).values()) {
    if (c.sessions === 0) expect(c).toMatchObject({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
    else expect(c).toMatchObject({ sessions: 1, participants: 2, turns: 10, traces: 2, spans: 10, annotations: 2 });
  }
}

describe.each([
  ["grpc/http2", () => grpcTransport(ctx.url)],
  ["connect/http1.1", () => transports(ctx.url)["connect/http1.1"]],
])("BulkDeleteSessions over %s", (name, transport) => {
  it("streams started, per-batch progress and a summary, and the rows are gone", async () => {
    const ns = `bulk-${name.replace(/[^a-z0-9]/g, "")}`;
    const uuids = await seed(120, ns);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const client = createClient(SessionService, transport());
    const ids = [...uuids.map(gid), "not-an-id", encodeSessionId(namespaceOfSession.get(uuids[0])!, crypto.randomUUID())];
    const messages = await consume(client.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids } }, batchSize: 50 }));

    expect(messages[0].event).toMatchObject({ case: "started", value: { total: 122n, batchSize: 50 } });
    expect(messages.filter((m) => m.event.case === "progress")).toHaveLength(3);
    const last = messages.at(-1)!.event;
    expect(last.case).toBe("summary");
    expect(last.value).toMatchObject({ counters: { completed: 122n, total: 122n, deleted: 120n, notFound: 1n, invalid: 1n, failed: 0n }, deleted: { participants: 240, turns: 1200, traces: 240, spans: 1200, annotations: 240 } });
    const results = resultsOf(messages);
    expect(results.map((r) => r.identifier)).toEqual(ids);
    expect(results[0]).toMatchObject({ outcome: BulkDeleteOutcome.DELETED, id: ids[0], deleted: { participants: 2, turns: 10, traces: 2, spans: 10, annotations: 2 }, memories: 1 });
    expect(results[120]).toMatchObject({ outcome: BulkDeleteOutcome.INVALID_ID, error: "id: not a valid Session id" });
    expect(results[121].outcome).toBe(BulkDeleteOutcome.NOT_FOUND);
    expect(await countContents(ctx.db.dataSource, uuids)).toEqual({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 });
  });

  it("rejects bad requests with invalid_argument before deleting anything", async () => {
    const client = createClient(SessionService, transport());
    const bad: [Req, string][] = [
      [{ namespace: "x" }, "selector: set one of ids, session_ids or filter"],
      [{ selector: { case: "ids", value: { values: [] } } }, "ids.values: must name at least one session"],
      [{ selector: { case: "sessionIds", value: { values: ["a"] } }, batchSize: 9999 }, "batch_size: must be between 1 and 5000"],
    ];
    for (const [req, message] of bad) {
      const err = await consume(client.bulkDeleteSessions(req)).catch((e) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
    }
  });
});

describe("BulkDeleteSessions limits and interruptions", () => {
  it("rejects more than 100,000 ids", async () => {
    const client = createClient(SessionService, grpcTransport(ctx.url));
    const values = Array.from({ length: 100_001 }, () => encodeSessionId(crypto.randomUUID(), crypto.randomUUID()));
    const err = await consume(client.bulkDeleteSessions({ selector: { case: "ids", value: { values } } })).catch((e) => e);
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, "ids.values: at most 100000 per call, got 100001"]);
  });

  it("a client that aborts mid-stream leaves no half-deleted session, and a retry finishes the rest", async () => {
    const ns = "bulk-abort";
    const uuids = await seed(300, ns);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const client = createClient(SessionService, grpcTransport(ctx.url));
    const abort = new AbortController();
    const req: Req = { namespace: ns, selector: { case: "ids", value: { values: uuids.map(gid) } }, batchSize: 10 };
    let operationId = "";
    const err = await consume(client.bulkDeleteSessions(req, { signal: abort.signal, headers: { "x-request-id": "bulk-abort-1" } }), (m) => {
      if (m.event.case === "started") operationId = m.event.value.operationId;
      if (m.event.case === "progress" && m.event.value.counters!.completed >= 50n) abort.abort();
    }).catch((e) => e);
    expect(ConnectError.from(err).code).toBe(Code.Canceled);
    expect(await accessLogOf("bulk-abort-1")).toMatchObject({ method: "BulkDeleteSessions", code: "canceled" });
    // The batch in hand finishes on the server: wait for the operation to have ended there.
    expect(await endOf(ns, operationId)).toBe(OperationState.CANCELLED);
    await expectNoHalfDeleted(uuids);
    const left = (await countContents(ctx.db.dataSource, uuids)).sessions;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(300);

    const retry = resultsOf(await consume(client.bulkDeleteSessions(req)));
    expect(retry.filter((r) => r.outcome === BulkDeleteOutcome.DELETED)).toHaveLength(left);
    expect(retry.filter((r) => r.outcome === BulkDeleteOutcome.NOT_FOUND)).toHaveLength(300 - left);
  });

  it("a deadline ends the stream with deadline_exceeded, never a clean end", async () => {
    const ns = "bulk-deadline";
    const uuids = await seed(600, ns);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const client = createClient(SessionService, grpcTransport(ctx.url));
    let operationId = "";
    const err = await consume(
      client.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: uuids.map(gid) } }, batchSize: 1 }, { timeoutMs: 400, headers: { "x-request-id": "bulk-deadline-1" } }),
      (m) => {
        if (m.event.case === "started") operationId = m.event.value.operationId;
      },
    ).catch((e) => e);
    expect(ConnectError.from(err).code).toBe(Code.DeadlineExceeded);
    // The server sees its own deadline or the client's reset stream first, whichever comes first; either
    // stops the operation after the batch in hand.
    expect((await accessLogOf("bulk-deadline-1")).code).toMatch(/^(deadline_exceeded|canceled)$/);
    expect(await endOf(ns, operationId)).toBe(OperationState.CANCELLED);
    await expectNoHalfDeleted(uuids);
  });

  it("server shutdown ends the stream with unavailable, and hands the operation to another process, which finishes it", async () => {
    const ns = "bulk-shutdown";
    const uuids = await seed(400, ns);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: ctx.db.url, LOG_LEVEL: "silent", SESSIOND_SHUTDOWN_GRACE_MS: "3000", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY });
    const app = await startApp(config, createLogger("silent"));
    const client = createClient(SessionService, grpcTransport(app.url));
    let stopping: Promise<void> | undefined;
    let operationId = "";
    const err = await consume(client.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: uuids.map(gid) } }, batchSize: 5 }), (m) => {
      if (m.event.case === "started") operationId = m.event.value.operationId;
      if (m.event.case === "progress" && !stopping) stopping = app.stop();
    }).catch((e) => e);
    await stopping;
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    // The stopping process gave the operation back (queued, not cancelled): this file's server, which
    // polls for queued work, takes it up and finishes it. Watched there to its end, then checked whole.
    expect(await endOf(ns, operationId)).toBe(OperationState.SUCCEEDED);
    await expectNoHalfDeleted(uuids);
    expect((await countContents(ctx.db.dataSource, uuids)).sessions).toBe(0);
  });

  it("two server processes deleting overlapping ids together report each id DELETED exactly once", async () => {
    const ns = "bulk-two";
    const uuids = await seed(600, ns);
    await seedContents(ctx.db.dataSource, uuids, { participants: 1, turnsPerParticipant: 2, traces: 1, spansPerTrace: 3, annotationsPerTrace: 1 });
    // A second, separate sessiond process on the same database.
    const port = await freePort();
    const child = spawn(path.resolve("node_modules/.bin/tsx"), ["src/main.ts"], { env: { ...process.env, DATABASE_URL: ctx.db.url, PORT: String(port), HOST: "127.0.0.1", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY }, stdio: ["ignore", "pipe", "pipe"] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d) => {
          out += d;
          if (out.includes("sessiond listening")) resolve();
        });
        child.stderr!.on("data", (d) => (out += d));
        child.on("exit", (code) => reject(new Error(`second process exited with ${code}: ${out}`)));
      });
      const ids = uuids.map(gid);
      const a = createClient(SessionService, grpcTransport(ctx.url));
      const b = createClient(SessionService, grpcTransport(`http://127.0.0.1:${port}`));
      const [ra, rb] = await Promise.all([
        consume(a.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids.slice(0, 450) } }, batchSize: 25 })),
        consume(b.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids.slice(150).reverse() } }, batchSize: 40 })),
      ]);
      const deleted = [...resultsOf(ra), ...resultsOf(rb)].filter((r) => r.outcome === BulkDeleteOutcome.DELETED).map((r) => r.identifier);
      expect(deleted).toHaveLength(600);
      expect(new Set(deleted).size).toBe(600);
      expect((await countContents(ctx.db.dataSource, uuids)).sessions).toBe(0);
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("buf curl prints the stream as JSON", async () => {
    const ns = "bulk-curl";
    const uuids = await seed(3, ns);
    const body = JSON.stringify({ namespace: ns, ids: { values: uuids.map(gid) }, batchSize: 2 });
    const { stdout } = await promisify(execFile)(path.resolve("node_modules/.bin/buf"), ["curl", "-H", `Authorization: Bearer ${TEST_ADMIN_KEY}`, "--protocol", "grpc", "-d", body, `${ctx.url}/sessiond.v1.SessionService/BulkDeleteSessions`], { timeout: 30_000 });
    const messages = stdout.trim().split(/\n(?=\{)/).map((m) => JSON.parse(m));
    expect(messages[0]).toEqual({ started: { total: "3", batchSize: 2, operationId: expect.stringMatching(/^[A-Za-z0-9_-]+$/) } });
    expect(messages.slice(1, 3).flatMap((m) => m.progress.results.map((r: any) => r.outcome))).toEqual(Array(3).fill("BULK_DELETE_OUTCOME_DELETED"));
    expect(messages[3].summary.counters).toMatchObject({ completed: "3", total: "3", deleted: "3" });
  });
});
