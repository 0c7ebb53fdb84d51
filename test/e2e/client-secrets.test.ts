/**
 * Client secrets, ChatKit's model: what a browser may do with one, expiry, revocation by cancel,
 * refresh, and the per-minute limit, counted in Postgres and shared by two server processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { hashSecret, newSecret, parseSecret } from "../../src/domain/access.js";
import { decodeSessionId } from "../../src/domain/ids.js";
import { freePort } from "../../src/net/free-port.js";
import { bearer, codeOf, connectAs, TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, useServer } from "../setup/server.js";

const ctx = useServer();
const admin = () => createClient(SessionService, grpcTransport(ctx.url));
const asBrowser = (secret: string, baseUrl = ctx.url) => createClient(SessionService, connectAs(baseUrl, secret));
/** The error a call fails with (the test fails if it succeeds). */
const failure = (p: Promise<unknown>) => p.then(() => expect.unreachable("the call succeeded"), (e) => ConnectError.from(e));
/** Every secret this file saw: none may reach a log. */
const secrets = new Set<string>([TEST_ADMIN_KEY]);

async function newSession(over: Record<string, unknown> = {}) {
  const res = await admin().createSession({ namespace: "browser", ...over });
  secrets.add(res.clientSecret!.value);
  return { session: res.session!, secret: res.clientSecret!.value, expireTime: res.clientSecret!.expireTime! };
}

describe("a client secret", () => {
  it("is returned once by CreateSession, expires with the session, and lets a browser read, append and list on its session", async () => {
    const { session, secret, expireTime } = await newSession({ sessionId: "chat-1", maxRequestsPerMinute: 100 });
    // cs_ <the session's namespace uuid and uuid, 32 bytes> _ <32 random bytes>, each base64url.
    expect(secret).toMatch(/^cs_[A-Za-z0-9_-]{43}_[A-Za-z0-9_-]{43}$/);
    expect(parseSecret(secret)).toEqual({ kind: "cs", ...decodeSessionId(session.id) });
    expect(expireTime).toEqual(session.expireTime);
    await admin().bindParticipant({ id: session.id, participantId: "alice", kind: ParticipantKind.USER });

    for (const transport of [
      connectAs(ctx.url, secret),
      createGrpcWebTransport({ baseUrl: ctx.url, httpVersion: "1.1", interceptors: [bearer(secret)] }),
      createGrpcTransport({ baseUrl: ctx.url, interceptors: [bearer(secret)] }),
    ]) {
      const browser = createClient(SessionService, transport);
      // No address: the secret's own session.
      expect((await browser.getSession({})).session?.id).toBe(session.id);
      expect((await browser.getSession({ namespace: "browser", sessionId: "chat-1" })).session?.id).toBe(session.id);
      await browser.appendTurns({ turns: [{ participantId: "alice", content: "hi" }] });
      expect((await browser.listTurns({ id: session.id })).turns.length).toBeGreaterThan(0);
    }
    const spans = createClient(TraceService, connectAs(ctx.url, secret));
    const recorded = await spans.recordSpans({ spans: [{ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", name: "click", startTime: { seconds: 1n }, endTime: { seconds: 2n } }] });
    expect(recorded.spansRecorded).toBe(1);
    expect((await admin().getSession({ id: session.id })).session?.stats?.traceCount).toBe(1);
  });

  it("reaches nothing else: other sessions, other RPCs, other namespaces", async () => {
    const { secret } = await newSession({ sessionId: "mine" });
    const { session: other } = await newSession({ sessionId: "theirs" });
    const browser = asBrowser(secret);
    expect(await codeOf(browser.getSession({ id: other.id }))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.getSession({ namespace: "browser", sessionId: "theirs" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.getSession({ namespace: "elsewhere", sessionId: "mine" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.listSessions({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.cancelSession({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.refreshClientSecret({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(browser.deleteSession({}))).toBe(Code.PermissionDenied);
  });

  it("stops working when its session is cancelled, at once", async () => {
    const { session, secret } = await newSession();
    const browser = asBrowser(secret);
    await browser.getSession({});
    await admin().cancelSession({ id: session.id });
    const err = await failure(browser.getSession({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).not.toContain(secret);
    expect(await codeOf(admin().refreshClientSecret({ id: session.id }))).toBe(Code.FailedPrecondition);
  });

  it("stops working when its session is soft-deleted, and after expire_time", async () => {
    const { session, secret } = await newSession();
    await admin().softDeleteSession({ id: session.id });
    expect(await codeOf(asBrowser(secret).getSession({}))).toBe(Code.Unauthenticated);

    const short = await newSession({ expiresAfter: { seconds: 1n, nanos: 0 } });
    expect(await codeOf(asBrowser(short.secret).getSession({}))).toBeUndefined();
    await new Promise((r) => setTimeout(r, Math.max(0, Number(short.expireTime.seconds) * 1000 + short.expireTime.nanos / 1e6 - Date.now()) + 100));
    expect(await codeOf(asBrowser(short.secret).getSession({}))).toBe(Code.Unauthenticated);
  });

  it("is replaced by RefreshClientSecret: the old one stops, the new one works until the new expire_time", async () => {
    const { session, secret } = await newSession({ expiresAfter: { seconds: 60n, nanos: 0 } });
    const before = Date.now();
    const refreshed = await admin().refreshClientSecret({ id: session.id, expiresAfter: { seconds: 3600n, nanos: 0 } });
    const after = Date.now();
    const fresh = refreshed.clientSecret!.value;
    secrets.add(fresh);
    expect(fresh).not.toBe(secret);
    expect(parseSecret(fresh)).toEqual({ kind: "cs", ...decodeSessionId(session.id) });
    expect(refreshed.clientSecret!.expireTime).toEqual(refreshed.session!.expireTime);
    // expire_time is the refresh's own time plus 3600 s: between the call's start and its answer, on
    // this machine's clock (to the millisecond), however long the call took.
    const expireMs = Number(refreshed.session!.expireTime!.seconds) * 1000 + refreshed.session!.expireTime!.nanos / 1e6;
    expect(expireMs).toBeGreaterThanOrEqual(before + 3600_000);
    expect(expireMs).toBeLessThanOrEqual(after + 1 + 3600_000);
    expect(await codeOf(asBrowser(secret).getSession({}))).toBe(Code.Unauthenticated);
    expect((await asBrowser(fresh).getSession({})).session?.id).toBe(session.id);
    expect(await codeOf(admin().refreshClientSecret({ id: session.id, expiresAfter: { seconds: 2n * 86400n, nanos: 0 } }))).toBe(Code.InvalidArgument);
  });

  it("still works when of the old form (the session's uuid alone), with an id of either form", async () => {
    const { session, secret } = await newSession({ sessionId: "old-form", maxRequestsPerMinute: 100 });
    const { namespaceId, uuid } = decodeSessionId(session.id);
    await admin().bindParticipant({ id: session.id, participantId: "alice", kind: ParticipantKind.USER });
    // A secret issued before secrets carried the namespace: cs_ <16-byte session uuid> _ <32 random bytes>.
    const old = `cs_${Buffer.from(uuid.replaceAll("-", ""), "hex").toString("base64url")}_${randomBytes(32).toString("base64url")}`;
    secrets.add(old);
    expect(parseSecret(old)).toEqual({ kind: "cs", uuid });
    await ctx.db.sql("UPDATE sessions SET client_secret_hash = $1 WHERE namespace_id = $2 AND id = $3", [hashSecret(old), namespaceId, uuid]);
    const browser = asBrowser(old);
    expect((await browser.getSession({})).session?.id).toBe(session.id);
    await browser.appendTurns({ turns: [{ participantId: "alice", content: "hi" }] });
    await browser.appendTurns({ id: Buffer.from(`Session:${uuid}`).toString("base64url"), turns: [{ participantId: "alice", content: "again" }] });
    expect((await browser.listTurns({ id: session.id })).turns.map((t) => t.content)).toEqual(["hi", "again"]);
    // The secret it replaced stops working; cancelling the session stops the old-form one too.
    expect(await codeOf(asBrowser(secret).getSession({}))).toBe(Code.Unauthenticated);
    await admin().cancelSession({ id: session.id });
    expect(await codeOf(browser.getSession({}))).toBe(Code.Unauthenticated);
  });

  it("is looked up in the namespace it names: its session's uuid under another namespace's uuid is refused", async () => {
    const { session } = await newSession({ sessionId: "namespaced" });
    const other = (await admin().createSession({ namespace: "browser-other" })).session!;
    const { namespaceId, uuid } = decodeSessionId(session.id);
    const misnamed = newSecret("cs", uuid, decodeSessionId(other.id).namespaceId!);
    secrets.add(misnamed);
    await ctx.db.sql("UPDATE sessions SET client_secret_hash = $1 WHERE namespace_id = $2 AND id = $3", [hashSecret(misnamed), namespaceId, uuid]);
    const err = await failure(asBrowser(misnamed).getSession({}));
    expect([err.code, err.rawMessage]).toEqual([Code.Unauthenticated, "the credential is unknown, revoked or expired"]);
    // A secret naming the session's own namespace works: the namespace decided it.
    const right = newSecret("cs", uuid, namespaceId!);
    secrets.add(right);
    await ctx.db.sql("UPDATE sessions SET client_secret_hash = $1 WHERE namespace_id = $2 AND id = $3", [hashSecret(right), namespaceId, uuid]);
    expect((await asBrowser(right).getSession({})).session?.id).toBe(session.id);
  });

  it("gets RESOURCE_EXHAUSTED past max_requests_per_minute, with a RetryInfo detail and a retry-after header", async () => {
    const { session, secret } = await newSession({ maxRequestsPerMinute: 3 });
    const browser = asBrowser(secret);
    for (let i = 0; i < 3; i++) await browser.getSession({});
    const err = await failure(browser.getSession({}));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/limit of 3 requests per minute; retry in \d+ s/);
    const retryAfter = Number(err.metadata.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const [info] = err.findDetails(RetryInfoSchema);
    expect(Number(info.retryDelay!.seconds)).toBeLessThanOrEqual(60);
    // The limit is the client secret's: API keys reading the same session are not held back.
    for (let i = 0; i < 5; i++) expect((await admin().getSession({ id: session.id })).session?.id).toBe(session.id);
  });
});

describe("two server processes on one database", () => {
  let child: ChildProcess | undefined;
  let output = "";
  afterAll(() => void child?.kill("SIGTERM"));

  it("together let no more requests through than the limit", async () => {
    const port = await freePort();
    child = spawn(path.resolve("node_modules/.bin/tsx"), ["src/main.ts"], {
      env: { ...process.env, DATABASE_URL: ctx.db.url, PORT: String(port), HOST: "127.0.0.1", SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY, LOG_LEVEL: "debug" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr!.on("data", (d) => (output += d));
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on("data", (d) => {
        output += d;
        if (output.includes("sessiond listening")) resolve();
      });
      child!.on("exit", (code) => reject(new Error(`second process exited with ${code}: ${output}`)));
    });
    const { secret } = await newSession({ maxRequestsPerMinute: 5 });
    const one = asBrowser(secret);
    const two = asBrowser(secret, `http://127.0.0.1:${port}`);
    // 20 requests, alternating and concurrent, half to each process.
    const codes = await Promise.all(Array.from({ length: 20 }, (_, i) => codeOf((i % 2 ? two : one).getSession({}))));
    expect(codes.filter((c) => c === undefined)).toHaveLength(5);
    expect(codes.filter((c) => c === Code.ResourceExhausted)).toHaveLength(15);
    // The second process's log reaches us through a pipe, after its answers: give it a moment.
    for (let i = 0; i < 100 && !output.includes("rpc rejected"); i++) await new Promise((r) => setTimeout(r, 50));
    expect(output).toContain("rpc rejected");
    for (const s of secrets) expect(output).not.toContain(s);
  }, 60_000);
});

describe("logs", () => {
  it("never contain a secret: API keys, bootstrap key, client secrets", () => {
    const logs = ctx.logs.join("");
    expect(logs).toContain('"msg":"rpc"');
    expect(secrets.size).toBeGreaterThan(5);
    for (const s of secrets) expect(logs).not.toContain(s);
    expect(logs.toLowerCase()).not.toContain("bearer");
  });
});
