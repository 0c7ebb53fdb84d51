/**
 * Error mapping through every route and interceptor: each domain error reaches the client as its code
 * with its message (triggered by real requests where one can trigger it), an unexpected error as a
 * generic INTERNAL carrying the request id only, and every call carries its request id.
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { translateDatabaseError } from "../../src/db/errors.js";
import type { Services } from "../../src/domain/services.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { useDatabase } from "../setup/context.js";
import { rpcAs, type Rpc, type RpcOptions } from "../setup/rpc.js";

const ctx = useDatabase();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let rpc: Rpc;

beforeAll(async () => {
  await ctx.services.apiKeys.ensureBootstrap(TEST_ADMIN_KEY);
  rpc = rpcAs(ctx.services, TEST_ADMIN_KEY);
  await rpc.admin.createNamespace({ name: "errs" });
});

/** The error a call fails with (the test fails when it succeeds). */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const result = await call.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );
  if (!result) throw new Error("expected the call to fail");
  return result;
}

/** Services whose session store's `get` throws what `raise` makes: a fault no request can cause. */
function withFailingGet(raise: () => unknown): Services {
  return { ...ctx.services, sessions: { ...ctx.services.sessions, get: async () => { throw raise(); } } } as Services;
}

/** A raw error as a driver would throw it: SQL, a SQLSTATE, details, a stack. */
const cause = () => Object.assign(new Error('relation "sessions" does not exist: SELECT secret_column FROM sessions WHERE id = $1'), { code: "XX999", detail: "private detail" });

/** Sends `x-request-id: id` on every call. */
const sendingRequestId = (id: string): RpcOptions => ({ interceptors: [(next) => (req) => (req.header.set("x-request-id", id), next(req))] });

describe("domain errors", () => {
  it("reports invalid input as INVALID_ARGUMENT, the message starting with the field path", async () => {
    expect(await failure(rpc.sessions.createSession({ namespace: "Bad Name!" }))).toMatchObject({ code: Code.InvalidArgument, rawMessage: "namespace: must be 1 to 63 characters of [a-z0-9_.-], starting with a letter or digit" });
    expect(await failure(rpc.sessions.getSession({ id: "not-a-global-id" }))).toMatchObject({ code: Code.InvalidArgument, rawMessage: "id: not a valid Session id" });
    const { session } = await rpc.sessions.createSession({ namespace: "errs" });
    await rpc.sessions.bindParticipant({ id: session!.id, participantId: "p", kind: ParticipantKind.USER });
    const turn = { participantId: "p", role: "user", content: "fine" };
    expect(await failure(rpc.sessions.appendTurns({ id: session!.id, turns: [turn, { ...turn, content: "" }] }))).toMatchObject({ code: Code.InvalidArgument, rawMessage: "turns[1].content: must not be empty" });
  });

  it("reports invalid input found inside a server stream as INVALID_ARGUMENT too, with the request id", async () => {
    let header: string | null = null;
    const err = await failure((async () => {
      for await (const _ of rpc.sessions.bulkDeleteSessions({ namespace: "errs" }, { onHeader: (h) => (header = h.get("x-request-id")) }));
    })());
    expect(err).toMatchObject({ code: Code.InvalidArgument, rawMessage: "selector: set one of ids, session_ids or filter" });
    expect(header).toMatch(UUID);
    // The id travels once, in the response header (the client merges headers into the error's metadata).
    expect(err.metadata.get("x-request-id")).toBe(header);
  });

  it("reports a missing session as NOT_FOUND, naming what was asked for", async () => {
    expect(await failure(rpc.sessions.getSession({ namespace: "errs", sessionId: "nope" }))).toMatchObject({ code: Code.NotFound, rawMessage: 'session "nope" not found in namespace "errs"' });
    expect(await failure(rpc.sessions.deleteSession({ namespace: "errs", sessionId: "nope" }))).toMatchObject({ code: Code.NotFound, rawMessage: 'session "nope" not found in namespace "errs"' });
  });

  it("reports a taken session_id as ALREADY_EXISTS", async () => {
    await rpc.sessions.createSession({ namespace: "errs", sessionId: "taken" });
    expect(await failure(rpc.sessions.createSession({ namespace: "errs", sessionId: "taken" }))).toMatchObject({ code: Code.AlreadyExists, rawMessage: 'session_id "taken" already exists in this namespace' });
  });

  it("reports a stale etag as ABORTED, telling the client to read again", async () => {
    const { session } = await rpc.sessions.createSession({ namespace: "errs" });
    expect(session!.etag).toBe('"v1"');
    const err = await failure(rpc.sessions.updateSession({ session: { id: session!.id, etag: '"v9"', user: "x" }, updateMask: { paths: ["user"] } }));
    expect(err).toMatchObject({ code: Code.Aborted, rawMessage: 'session.etag: the session changed since (etag "v9", now "v1"); read it again and retry' });
  });

  it("reports work on a cancelled session as FAILED_PRECONDITION", async () => {
    const { session } = await rpc.sessions.createSession({ namespace: "errs" });
    await rpc.sessions.bindParticipant({ id: session!.id, participantId: "p", kind: ParticipantKind.USER });
    await rpc.sessions.cancelSession({ id: session!.id });
    expect(await failure(rpc.sessions.refreshClientSecret({ id: session!.id }))).toMatchObject({ code: Code.FailedPrecondition, rawMessage: `session ${session!.id} is cancelled; its client secret cannot be refreshed` });
    expect(await failure(rpc.sessions.appendTurns({ id: session!.id, turns: [{ participantId: "p", role: "user", content: "x" }] }))).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: `session ${session!.id} is cancelled; appending turns is not allowed`,
    });
  });

  it("reports a client secret over its session's rate as RESOURCE_EXHAUSTED with retry-after and a RetryInfo detail that agree", async () => {
    const { clientSecret } = await rpc.sessions.createSession({ namespace: "errs", maxRequestsPerMinute: 1 });
    const browser = rpcAs(ctx.services, clientSecret!.value);
    await browser.sessions.getSession({});
    const err = await failure(browser.sessions.getSession({}));
    expect(err.code).toBe(Code.ResourceExhausted);
    const m = /^this session's client secret is over its limit of 1 requests per minute; retry in (\d+) s$/.exec(err.rawMessage);
    expect(m).not.toBeNull();
    const seconds = Number(m![1]);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(err.metadata.get("retry-after")).toBe(String(seconds));
    const [info] = err.findDetails(RetryInfoSchema);
    expect(Math.max(1, Math.ceil(durationMs(info.retryDelay!) / 1000))).toBe(seconds);
  });

  it("reports an unreachable database as UNAVAILABLE with a retry hint and the request id, without its details", async () => {
    const down = rpcAs(withFailingGet(() => translateDatabaseError(Object.assign(new Error("connect ECONNREFUSED 10.1.2.3:5432"), { code: "ECONNREFUSED" }))), TEST_ADMIN_KEY);
    const err = await failure(down.sessions.getSession({ namespace: "errs", sessionId: "any" }));
    const requestId = err.metadata.get("x-request-id");
    expect(requestId).toMatch(UUID);
    expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: `the database is unavailable (request id ${requestId}); retry in 1 s` });
    expect(err.metadata.get("retry-after")).toBe("1");
    expect(durationMs(err.findDetails(RetryInfoSchema)[0].retryDelay!)).toBe(1000);
    expect(down.logged()).toContainEqual(expect.objectContaining({ level: 40, msg: "database unavailable", request_id: requestId }));
  });
});

describe("unexpected errors", () => {
  it("become INTERNAL with a generic message carrying the request id and nothing of the cause", async () => {
    const broken = rpcAs(withFailingGet(cause), TEST_ADMIN_KEY);
    const err = await failure(broken.sessions.getSession({ namespace: "errs", sessionId: "any" }));
    const requestId = err.metadata.get("x-request-id");
    expect(requestId).toMatch(UUID);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe(`internal error (request id ${requestId})`);
    expect(err.details).toEqual([]);
    const sent = JSON.stringify([err.rawMessage, [...err.metadata.entries()]]);
    for (const secret of ["SELECT", "secret_column", "private detail", "XX999", "    at "]) expect(sent).not.toContain(secret);
  });

  it("are logged at error level with the request id and the cause, and the call's log line says internal", async () => {
    const broken = rpcAs(withFailingGet(cause), TEST_ADMIN_KEY);
    const requestId = (await failure(broken.sessions.getSession({ namespace: "errs", sessionId: "any" }))).metadata.get("x-request-id");
    const lines = broken.logged();
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: "internal error", request_id: requestId, err: expect.objectContaining({ message: expect.stringContaining("secret_column") }) }));
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: "rpc", method: "GetSession", code: "internal", request_id: requestId }));
  });
});

describe("request ids", () => {
  it("returns a fresh x-request-id on every response, the one in the call's log line", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) await rpc.sessions.listSessions({ namespace: "errs" }, { onHeader: (h) => ids.push(h.get("x-request-id")!) });
    expect(ids[0]).toMatch(UUID);
    expect(ids[1]).toMatch(UUID);
    expect(ids[0]).not.toBe(ids[1]);
    expect(rpc.logged().filter((l) => l.msg === "rpc" && ids.includes(l.request_id))).toHaveLength(2);
  });

  it("keeps a valid client-supplied x-request-id, in the response, the log and an internal error's message", async () => {
    const mine = "client-req_42.A";
    const ok = rpcAs(ctx.services, TEST_ADMIN_KEY, sendingRequestId(mine));
    let echoed: string | null = null;
    await ok.sessions.listSessions({ namespace: "errs" }, { onHeader: (h) => (echoed = h.get("x-request-id")) });
    expect(echoed).toBe(mine);
    expect(ok.logged()).toContainEqual(expect.objectContaining({ msg: "rpc", method: "ListSessions", request_id: mine }));
    const broken = rpcAs(withFailingGet(cause), TEST_ADMIN_KEY, sendingRequestId(mine));
    const err = await failure(broken.sessions.getSession({ namespace: "errs", sessionId: "any" }));
    expect(err.rawMessage).toBe(`internal error (request id ${mine})`);
    expect(err.metadata.get("x-request-id")).toBe(mine);
  });

  it("replaces a client-supplied x-request-id that is not short and plain with its own", async () => {
    for (const bad of ["has spaces in it", "x".repeat(129), "semi;colon"]) {
      let echoed: string | null = null;
      await rpcAs(ctx.services, TEST_ADMIN_KEY, sendingRequestId(bad)).sessions.listSessions({ namespace: "errs" }, { onHeader: (h) => (echoed = h.get("x-request-id")) });
      expect(echoed).toMatch(UUID);
    }
  });
});
