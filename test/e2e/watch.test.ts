/**
 * WatchSession and WatchSessions over the wire: replay then live, every kind of change in order, exact
 * resume from any position, across two servers sharing the database (signals through Postgres, not the
 * poll), a slow consumer's bounded buffer, shutdown with a resumable position, the watcher limit, and
 * bad input.
 */
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import {
  SessionChangeKind,
  SessionService,
  WatchPositionSchema,
  type WatchSessionResponse,
  type WatchSessionsResponse,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

// A long poll: a watcher that sees a change within a second was woken by the signal, not the poll.
const WATCH_ENV = { SESSIOND_WATCH_POLL_MS: "600000", SESSIOND_WATCH_HEARTBEAT_MS: "400", SESSIOND_WATCH_BUFFER: "50" };
const ctx = useServer(WATCH_ENV);
const client = () => createClient(SessionService, grpcTransport(ctx.url));
/** A namespace to watch (a feed names an existing one). */
const namespace = async (name: string) => (await createClient(AdminService, grpcTransport(ctx.url)).createNamespace({ name })).namespace!.name;

/** Another server over the same database (its own watches, its own signal connection). */
async function startPeer(env: Record<string, string> = {}): Promise<App> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: ctx.db.url,
    LOG_LEVEL: "warn",
    SESSIOND_SHUTDOWN_GRACE_MS: "3000",
    SESSIOND_BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
    ...(ctx.db.directUrl !== ctx.db.url ? { SESSIOND_LISTEN_DATABASE_URL: ctx.db.directUrl } : {}),
    ...WATCH_ENV,
    ...env,
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  return startApp(config, createLogger(config.logLevel, sink));
}

/** Pulls messages from a stream one at a time, each within `ms`; heartbeats are skipped unless asked for. */
function reader<T extends { event: { case: string | undefined } }>(stream: AsyncIterable<T>) {
  const it = stream[Symbol.asyncIterator]();
  return {
    async next(opts: { ms?: number; heartbeats?: boolean } = {}): Promise<T | undefined> {
      const ms = opts.ms ?? 5000;
      const deadline = Date.now() + ms;
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), Math.max(0, deadline - Date.now()))));
        const r = await Promise.race([it.next(), late]).finally(() => clearTimeout(timer));
        if (r.done) return undefined;
        if (r.value.event.case === "heartbeat" && !opts.heartbeats) continue;
        return r.value;
      }
    },
    async error(ms = 10_000): Promise<ConnectError> {
      try {
        for (;;) if (!(await this.next({ ms }))) throw new Error("the stream ended without an error");
      } catch (e) {
        if (e instanceof Error && e.message.startsWith("no message within")) throw e;
        return ConnectError.from(e);
      }
    },
    /** Ends the stream (the client cancels it). */
    async stop() {
      await Promise.race([it.return?.(), new Promise((_, reject) => setTimeout(() => reject(new Error("cancelling the stream took over 5 s")), 5000))]);
    },
  };
}

async function newSession(c: Client<typeof SessionService>, namespace: string, sessionId: string) {
  const r = await c.createSession({
    namespace,
    sessionId,
    participants: [
      { participantId: "u", kind: ParticipantKind.USER },
      { participantId: "a", kind: ParticipantKind.AGENT },
    ],
  });
  return r.session!;
}

const say = (c: Client<typeof SessionService>, id: string, ...contents: string[]) => c.appendTurns({ id, turns: contents.map((content, i) => ({ participantId: i % 2 ? "a" : "u", content })) });

/** A message's kind: the event case, with the change kind for changes. */
function kindOf(m: WatchSessionResponse | WatchSessionsResponse): string {
  if (m.event.case === "change") return `change:${SessionChangeKind[m.event.value.kind]}`;
  if (m.event.case === "turn") return `turn:${m.event.value.content}`;
  return m.event.case ?? "";
}

describe("WatchSession", () => {
  it("opens with a snapshot, replays the turns after after_seq, then delivers every change live, in order, and ends with OK after DELETED", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "life");
    await say(c, s.id, "one", "two", "three");
    const r = reader(c.watchSession({ id: s.id, afterSeq: 1n }));
    const snap = await r.next();
    expect(snap!.event.case).toBe("snapshot");
    if (snap!.event.case !== "snapshot") return;
    expect(snap!.event.value.session!.id).toBe(s.id);
    expect(snap!.event.value.participants.map((p) => p.participantId)).toEqual(["u", "a"]);
    expect(snap!.event.value.lastSeq).toBe(3n);
    expect(snap!.position).toMatchObject({ seq: 1n, change: 1n });
    expect(kindOf((await r.next())!)).toBe("turn:two");
    expect(kindOf((await r.next())!)).toBe("turn:three");
    const caught = (await r.next())!;
    expect(caught.event.case).toBe("caughtUp");
    expect(caught.position).toMatchObject({ seq: 3n, change: 1n });

    await say(c, s.id, "four");
    await c.bindParticipant({ id: s.id, participantId: "b", kind: ParticipantKind.AGENT });
    await c.updateSession({ session: { id: s.id, labels: { topic: "x" } }, updateMask: { paths: ["labels"] } });
    await say(c, s.id, "five");
    await c.unbindParticipant({ id: s.id, participantId: "b" });
    await c.truncateSession({ id: s.id });
    await c.softDeleteSession({ id: s.id });
    await c.undeleteSession({ id: s.id });
    await c.cancelSession({ id: s.id });
    await c.deleteSession({ id: s.id });

    const got: WatchSessionResponse[] = [];
    for (let m = await r.next(); m; m = await r.next()) got.push(m);
    expect(got.map(kindOf)).toEqual([
      "turn:four",
      "change:PARTICIPANT_BOUND",
      "change:UPDATED",
      "turn:five",
      "change:PARTICIPANT_UNBOUND",
      "change:TRUNCATED",
      "change:SOFT_DELETED",
      "change:UNDELETED",
      "change:CANCELLED",
      "change:DELETED",
    ]);
    // Positions grow, and each change names the seq it came after.
    expect(got.map((m) => [Number(m.position!.seq), Number(m.position!.change)])).toEqual([
      [4, 1],
      [4, 2],
      [4, 3],
      [5, 3],
      [5, 4],
      [5, 5],
      [5, 6],
      [5, 7],
      [5, 8],
      [5, 9],
    ]);
    const change = (i: number) => (got[i].event.case === "change" ? got[i].event.value : undefined)!;
    expect(change(1).participant!.participantId).toBe("b");
    expect(change(2).session!.labels).toEqual({ topic: "x" });
    expect(change(5).turnsDeleted).toBe(5);
    expect(change(9).deleted).toMatchObject({ participants: 3, turns: 0 });
    expect(change(9).sessionId).toBe("life");
  });

  it("resumes from any position with exactly what came after it: no gap, no duplicate", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "resume");
    const all: WatchSessionResponse[] = [];
    const r = reader(c.watchSession({ id: s.id }));
    expect((await r.next())!.event.case).toBe("snapshot");
    expect((await r.next())!.event.case).toBe("caughtUp");
    await say(c, s.id, "a1", "a2");
    await c.bindParticipant({ id: s.id, participantId: "x", kind: ParticipantKind.TOOL });
    await say(c, s.id, "a3");
    await c.updateSession({ session: { id: s.id, data: { k: 1 } }, updateMask: { paths: ["data"] } });
    await say(c, s.id, "a4", "a5", "a6");
    for (let i = 0; i < 8; i++) all.push((await r.next())!);
    // A new watch while that one is live (its session's items are in memory): the snapshot, then every
    // turn, and no change the snapshot already holds; positions never go back.
    const fresh = reader(c.watchSession({ id: s.id }));
    const seenFresh: WatchSessionResponse[] = [];
    for (let m = await fresh.next(); m && m.event.case !== "caughtUp"; m = await fresh.next()) seenFresh.push(m);
    await fresh.stop();
    expect(seenFresh.map(kindOf)).toEqual(["snapshot", "turn:a1", "turn:a2", "turn:a3", "turn:a4", "turn:a5", "turn:a6"]);
    expect(seenFresh.map((m) => Number(m.position!.change))).toEqual([3, 3, 3, 3, 3, 3, 3]);
    await r.stop();
    expect(all.map(kindOf)).toEqual(["turn:a1", "turn:a2", "change:PARTICIPANT_BOUND", "turn:a3", "change:UPDATED", "turn:a4", "turn:a5", "turn:a6"]);
    // From every position in the stream, a new watch replays exactly the rest.
    for (let k = 0; k < all.length; k++) {
      const p = all[k].position!;
      const again = reader(c.watchSession({ id: s.id, afterSeq: p.seq, afterChange: p.change }));
      const rest: string[] = [];
      for (let m = await again.next(); m && m.event.case !== "caughtUp"; m = await again.next()) rest.push(kindOf(m));
      await again.stop();
      expect(rest, `after message ${k}`).toEqual(all.slice(k + 1).map(kindOf));
    }
  });

  it("a turn appended through one server reaches a watcher on another at once (a signal through Postgres, not the poll)", async () => {
    const peer = await startPeer();
    try {
      const writer = createClient(SessionService, grpcTransport(peer.url));
      const c = client();
      const s = await newSession(writer, "watch-b", "cross");
      const r = reader(c.watchSession({ id: s.id }));
      expect((await r.next())!.event.case).toBe("snapshot");
      expect((await r.next())!.event.case).toBe("caughtUp");
      for (let i = 1; i <= 5; i++) {
        await say(writer, s.id, `from-peer-${i}`);
        const m = await r.next({ ms: 10_000 });
        expect(kindOf(m!)).toBe(`turn:from-peer-${i}`);
        expect(m!.position!.seq).toBe(BigInt(i));
      }
      await writer.cancelSession({ id: s.id });
      expect(kindOf((await r.next({ ms: 10_000 }))!)).toBe("change:CANCELLED");
      await r.stop();
    } finally {
      await peer.stop();
    }
  });

  it("works on every protocol, and a session's own client secret may watch it (not another's)", async () => {
    const c = client();
    const created = await c.createSession({ namespace: "watch-a", sessionId: "secret", participants: [{ participantId: "u", kind: ParticipantKind.USER }] });
    const other = await c.createSession({ namespace: "watch-a", sessionId: "secret-other" });
    const id = created.session!.id;
    let appended = 0n;
    for (const [name, t] of Object.entries(transports(ctx.url, created.clientSecret!.value))) {
      const r = reader(createClient(SessionService, t).watchSession({ id, afterSeq: appended++ }));
      expect((await r.next())!.event.case, name).toBe("snapshot");
      expect((await r.next())!.event.case, name).toBe("caughtUp");
      await c.appendTurns({ id, turns: [{ participantId: "u", content: name }] });
      expect(kindOf((await r.next())!), name).toBe(`turn:${name}`);
      await r.stop();
    }
    const denied = reader(createClient(SessionService, grpcTransport(ctx.url, created.clientSecret!.value)).watchSession({ id: other.session!.id }));
    expect((await denied.error()).code).toBe(Code.PermissionDenied);
  });

  it("sends heartbeats on an idle stream, with the position", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "idle");
    const r = reader(c.watchSession({ id: s.id }));
    await r.next();
    await r.next();
    const beat = await r.next({ heartbeats: true, ms: 3000 });
    expect(beat!.event.case).toBe("heartbeat");
    expect(beat!.position).toMatchObject({ seq: 0n, change: 1n });
    await r.stop();
  });

  it("a live watcher whose client stops reading ends with RESOURCE_EXHAUSTED and its position once it falls behind; resuming from there misses nothing", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "slow");
    const r = reader(c.watchSession({ id: s.id }));
    await r.next();
    await r.next();
    // The client reads nothing while 400 turns of 4 KiB land, 100 per commit: each commit puts the
    // session more than the 50 items (SESSIOND_WATCH_BUFFER) past the watcher at once, however much of
    // the stream the client's transport takes in meanwhile (with 20 per commit and slow commits, on
    // Citus under load, the client's buffers took every turn as it came and the watcher never lagged).
    const big = "x".repeat(4096);
    for (let i = 0; i < 4; i++) await say(c, s.id, ...Array.from({ length: 100 }, (_, j) => `${i * 100 + j + 1}:${big}`));
    const seen: number[] = [];
    let err: ConnectError | undefined;
    // Patience for each message as the client catches up: on a loaded machine (Citus, other suites
    // running) the server's drained writes and its overflow can take longer than the default 5 s.
    try {
      for (let m = await r.next({ ms: 20_000 }); m; m = await r.next({ ms: 20_000 })) if (m.event.case === "turn") seen.push(Number(m.position!.seq));
    } catch (e) {
      err = ConnectError.from(e);
    }
    // With how far it got, should it end otherwise (all 400 delivered: no overflow; fewer: a stall).
    expect(err && Code[err.code], `ended with ${err?.rawMessage} after ${seen.length} turns`).toBe(Code[Code.ResourceExhausted]);
    expect(err!.message).toMatch(/behind/);
    const [position] = err!.findDetails(WatchPositionSchema);
    expect(position).toBeDefined();
    expect(seen.length).toBeLessThan(400);
    expect(Number(position.seq)).toBe(seen.at(-1) ?? 0);
    const again = reader(c.watchSession({ id: s.id, afterSeq: position.seq, afterChange: position.change }));
    for (let m = await again.next(); m && m.event.case !== "caughtUp"; m = await again.next()) if (m.event.case === "turn") seen.push(Number(m.position!.seq));
    await again.stop();
    expect(seen).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  });

  it("a server shutting down ends its watchers with UNAVAILABLE and their position; resumed on another server, nothing is missed or repeated", async () => {
    const peer = await startPeer();
    const c = client();
    const s = await newSession(c, "watch-b", "shutdown");
    const r = reader(createClient(SessionService, grpcTransport(peer.url)).watchSession({ id: s.id }));
    await r.next();
    await r.next();
    await say(c, s.id, "before-1", "before-2");
    expect(kindOf((await r.next())!)).toBe("turn:before-1");
    expect(kindOf((await r.next())!)).toBe("turn:before-2");
    const stopping = peer.stop();
    const err = await r.error();
    await stopping;
    expect(err.code).toBe(Code.Unavailable);
    const [position] = err.findDetails(WatchPositionSchema);
    expect(position).toMatchObject({ seq: 2n, change: 1n });
    await say(c, s.id, "after-1");
    const again = reader(c.watchSession({ id: s.id, afterSeq: position.seq, afterChange: position.change }));
    expect(kindOf((await again.next())!)).toBe("turn:after-1");
    expect((await again.next())!.event.case).toBe("caughtUp");
    await again.stop();
  });

  it("refuses bad positions and unknown sessions, naming the field", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "bad");
    const code = async (req: Parameters<typeof c.watchSession>[0]) => (await reader(c.watchSession(req)).error()).code;
    expect(await code({ id: s.id, afterSeq: -1n })).toBe(Code.InvalidArgument);
    const e = await reader(c.watchSession({ id: s.id, afterChange: 99n })).error();
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/^after_change/);
    expect((await reader(c.watchSession({ id: s.id, afterSeq: 5n })).error()).rawMessage).toMatch(/^after_seq/);
    expect(await code({ namespace: "watch-a", sessionId: "nope" })).toBe(Code.NotFound);
    expect(await code({})).toBe(Code.InvalidArgument);
  });

  it("beyond SESSIOND_MAX_WATCHERS a watch gets RESOURCE_EXHAUSTED with a retry hint", async () => {
    const peer = await startPeer({ SESSIOND_MAX_WATCHERS: "2" });
    try {
      const c = createClient(SessionService, grpcTransport(peer.url));
      const s = await newSession(c, "watch-b", "limit");
      const open = [reader(c.watchSession({ id: s.id })), reader(c.watchSession({ id: s.id }))];
      for (const r of open) await r.next();
      const err = await reader(c.watchSession({ id: s.id })).error();
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.message).toMatch(/SESSIOND_MAX_WATCHERS/);
      for (const r of open) await r.stop();
    } finally {
      await peer.stop();
    }
  });
});

describe("WatchSession and its caller", () => {
  it("a soft-deleted session's watch resumes (and sees it undeleted)", async () => {
    const c = client();
    const s = await newSession(c, "watch-a", "soft");
    const r = reader(c.watchSession({ id: s.id }));
    await r.next();
    await r.next();
    await c.softDeleteSession({ id: s.id });
    const soft = (await r.next())!;
    expect(kindOf(soft)).toBe("change:SOFT_DELETED");
    await r.stop();
    await c.undeleteSession({ id: s.id });
    const again = reader(c.watchSession({ id: s.id, afterSeq: soft.position!.seq, afterChange: soft.position!.change }));
    expect(kindOf((await again.next())!)).toBe("change:UNDELETED");
    await again.stop();
  });

  it("a client secret sees participants without their metadata, and its stream ends once the secret is revoked", async () => {
    const c = client();
    const created = await c.createSession({
      namespace: "watch-a",
      sessionId: "secret-scope",
      participants: [{ participantId: "u", kind: ParticipantKind.USER, metadata: { email: "u@example.com" } }],
    });
    const id = created.session!.id;
    const r = reader(createClient(SessionService, grpcTransport(ctx.url, created.clientSecret!.value)).watchSession({ id }));
    const snap = (await r.next())!;
    expect(snap.event.case === "snapshot" && snap.event.value.participants.map((p) => [p.participantId, p.metadata ?? {}])).toEqual([["u", {}]]);
    expect((await r.next())!.event.case).toBe("caughtUp");
    await c.bindParticipant({ id, participantId: "bot", kind: ParticipantKind.AGENT, metadata: { secret: "x" } });
    const bound = (await r.next())!;
    expect(bound.event.case === "change" && [bound.event.value.participant!.participantId, Object.keys(bound.event.value.participant!.metadata ?? {})]).toEqual(["bot", []]);
    // An API key's watch of the same session sees the metadata.
    const k = reader(c.watchSession({ id }));
    const full = (await k.next())!;
    expect(full.event.case === "snapshot" && full.event.value.participants.find((p) => p.participantId === "bot")!.metadata).toEqual({ secret: "x" });
    await k.stop();
    await c.cancelSession({ id });
    expect(kindOf((await r.next())!)).toBe("change:CANCELLED");
    expect((await r.error()).code).toBe(Code.Unauthenticated);
  });
});

describe("WatchSessions", () => {
  it("starts now, delivers the namespace's session changes in order with their cursors, and resumes exactly from any of them", async () => {
    const c = client();
    const ns = await namespace("feed-a");
    const r = reader(c.watchSessions({ namespace: ns }));
    const start = (await r.next())!;
    expect(start.event.case).toBe("caughtUp");
    const one = await c.createSession({ namespace: ns, sessionId: "f1" });
    const two = await c.createSession({ namespace: ns, sessionId: "f2", labels: { team: "red" } });
    await c.bindParticipant({ id: one.session!.id, participantId: "p", kind: ParticipantKind.USER });
    await c.updateSession({ session: { id: one.session!.id, user: "ann" }, updateMask: { paths: ["user"] } });
    await c.cancelSession({ id: two.session!.id });
    await c.deleteSession({ id: one.session!.id });
    await c.createSession({ namespace: "feed-other", sessionId: "elsewhere" });
    const got: WatchSessionsResponse[] = [];
    for (let i = 0; i < 5; i++) got.push((await r.next())!);
    const names = got.map((m) => (m.event.case === "change" ? `${SessionChangeKind[m.event.value.kind]}:${m.event.value.sessionId}` : m.event.case));
    expect(names).toEqual(["CREATED:f1", "CREATED:f2", "UPDATED:f1", "CANCELLED:f2", "DELETED:f1"]);
    const cursors = got.map((m) => BigInt(m.position!.cursor));
    expect([...cursors].sort((a, b) => (a < b ? -1 : 1))).toEqual(cursors);
    expect(got[3].event.case === "change" && got[3].event.value.session!.labels).toEqual({ team: "red" });
    await r.stop();

    for (let k = -1; k < got.length; k++) {
      const after = k < 0 ? start.position!.cursor : got[k].position!.cursor;
      const again = reader(c.watchSessions({ namespace: ns, after }));
      const rest: string[] = [];
      for (let m = await again.next(); m && m.event.case !== "caughtUp"; m = await again.next()) {
        rest.push(m.event.case === "change" ? `${SessionChangeKind[m.event.value.kind]}:${m.event.value.sessionId}` : "");
      }
      await again.stop();
      expect(rest, `after message ${k}`).toEqual(names.slice(k + 1));
    }
  });

  it("filters by the session as the change left it and by kind (participant changes when asked for)", async () => {
    const c = client();
    const ns = await namespace("feed-b");
    const r = reader(c.watchSessions({ namespace: ns, filter: { labels: { team: "blue" } }, kinds: [SessionChangeKind.CREATED, SessionChangeKind.PARTICIPANT_BOUND] }));
    await r.next();
    const red = await c.createSession({ namespace: ns, sessionId: "red", labels: { team: "red" } });
    const blue = await c.createSession({ namespace: ns, sessionId: "blue", labels: { team: "blue" } });
    await c.bindParticipant({ id: red.session!.id, participantId: "p", kind: ParticipantKind.USER });
    await c.bindParticipant({ id: blue.session!.id, participantId: "p", kind: ParticipantKind.USER });
    await c.cancelSession({ id: blue.session!.id });
    const first = (await r.next())!;
    expect(first.event.case === "change" && [SessionChangeKind[first.event.value.kind], first.event.value.sessionId]).toEqual(["CREATED", "blue"]);
    // Participant changes carry no session: a filter on the session does not select them.
    const beat = (await r.next({ heartbeats: true, ms: 3000 }))!;
    expect(beat.event.case).toBe("heartbeat");
    await r.stop();

    // Without the filter, both bindings, each with its participant (the feed resumes from the first message's cursor).
    const all = reader(c.watchSessions({ namespace: ns, kinds: [SessionChangeKind.PARTICIPANT_BOUND], after: first.position!.cursor }));
    for (const sessionId of ["red", "blue"]) {
      const bound = (await all.next())!;
      expect(bound.event.case === "change" && [bound.event.value.sessionId, bound.event.value.participant!.participantId]).toEqual([sessionId, "p"]);
    }
    expect((await all.next())!.event.case).toBe("caughtUp");
    await all.stop();
  });

  it("a change made through one server reaches a feed on another", async () => {
    const peer = await startPeer();
    try {
      const r = reader(client().watchSessions({ namespace: await namespace("feed-c") }));
      await r.next();
      await createClient(SessionService, grpcTransport(peer.url)).createSession({ namespace: "feed-c", sessionId: "peer-made" });
      const m = (await r.next({ ms: 3000 }))!;
      expect(m.event.case === "change" && m.event.value.sessionId).toBe("peer-made");
      await r.stop();
    } finally {
      await peer.stop();
    }
  });

  it("refuses a malformed cursor (INVALID_ARGUMENT) and one older than the changes kept (OUT_OF_RANGE)", async () => {
    const c = client();
    const bad = await reader(c.watchSessions({ namespace: "feed-a", after: "not-a-cursor" })).error();
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toMatch(/^after:/);
    const old = await reader(c.watchSessions({ namespace: "feed-a", after: String(BigInt(Date.now() - 2 * 86_400_000) * 1000n) })).error();
    expect(old.code).toBe(Code.OutOfRange);
    expect((await reader(c.watchSessions({ namespace: "Bad Name" })).error()).code).toBe(Code.InvalidArgument);
    // A feed names a namespace that exists (a reader does not create one by watching).
    const missing = await reader(c.watchSessions({ namespace: "feed-nowhere" })).error();
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, 'namespace "feed-nowhere" not found']);
    expect((await reader(c.watchSessions({ namespace: "feed-a", kinds: [99 as SessionChangeKind] })).error()).rawMessage).toMatch(/^kinds\[0\]/);
  });
});

describe("the change outbox", () => {
  it("keeps a DELETED change for every session a bulk delete removes, and the feed reports them", async () => {
    const c = client();
    const ns = await namespace("feed-bulk");
    const r = reader(c.watchSessions({ namespace: ns, kinds: [SessionChangeKind.DELETED] }));
    await r.next();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await c.createSession({ namespace: ns, sessionId: `b${i}` })).session!.id);
    for await (const _ of c.bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: ids } }, batchSize: 5 })) {
      // drained
    }
    const deleted = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const m = (await r.next())!;
      if (m.event.case === "change") deleted.add(m.event.value.id);
    }
    expect([...deleted].sort()).toEqual([...ids].sort());
    await r.stop();
  });
});

beforeAll(() => {
  expect(inject("database")).toBeDefined();
});
afterAll(() => {});
