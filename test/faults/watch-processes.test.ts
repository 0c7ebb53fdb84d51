/**
 * WatchSession across real server processes sharing one database, with the poll set to ten minutes so
 * that only the LISTEN/NOTIFY signal can deliver in time: turns appended through one process reach a
 * watcher on another, one by one and in order; a watcher whose process gets SIGTERM ends with
 * UNAVAILABLE and the position of the last message it received, and resumed on the other process gets
 * exactly the rest; a watcher whose process is SIGKILLed resumes from its last message with nothing
 * missed or repeated; and a process whose signal connection is cut reconnects and reads again what
 * it watches, so a turn written meanwhile still arrives.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService, WatchPositionSchema, type WatchSessionResponse } from "../../gen/sessiond/v1/session_service_pb.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport } from "../setup/server.js";
import { spawnServer, waitFor, type ServerProcess } from "./harness.js";

/** The poll at its maximum: a watcher served within seconds was woken by a signal. */
const ENV = { LOG_LEVEL: "info", SESSIOND_WATCH_POLL_MS: "600000", SESSIOND_WATCH_HEARTBEAT_MS: "1000" };
/** How soon a turn appended through one process must reach a watcher on another: generous for a busy machine, far below the 600 s poll. */
const SIGNAL_MS = 10_000;
const NS = "watch-procs";

let db: TestDatabase;
/** The writer's process, and the one a watcher resumes on; each test starts (and ends) its own B. */
let a: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
  a = await spawnServer({ databaseUrl: db.url, env: ENV });
}, 60_000);
afterAll(async () => {
  a?.kill("SIGTERM");
  await a?.exited;
  await db?.close();
});

const clientOf = (p: ServerProcess) => createClient(SessionService, grpcTransport(p.url));

async function newSession(sessionId: string): Promise<string> {
  const { session } = await clientOf(a).createSession({ namespace: NS, sessionId, participants: [{ participantId: "u", kind: ParticipantKind.USER }] });
  return session!.id;
}

/** Appends one turn through A; resolves with its seq. */
async function append(id: string, content: string): Promise<number> {
  const { turns } = await clientOf(a).appendTurns({ id, turns: [{ participantId: "u", content }] });
  return Number(turns[0].seq);
}

/**
 * A WatchSession stream read in the background into `messages`, until it ends (`error` says how).
 * Heartbeats are kept too: each carries a position, and the last position received is the last
 * message's, whatever its kind.
 */
function watch(p: ServerProcess, req: Parameters<Client<typeof SessionService>["watchSession"]>[0]) {
  const abort = new AbortController();
  const w = {
    messages: [] as WatchSessionResponse[],
    error: undefined as ConnectError | undefined,
    ended: false,
    /** Seqs of the turns received, in order. */
    seqs: () => w.messages.flatMap((m) => (m.event.case === "turn" ? [Number(m.position!.seq)] : [])),
    last: () => w.messages.at(-1)?.position,
    caughtUp: () => w.messages.some((m) => m.event.case === "caughtUp"),
    stop: () => abort.abort(),
    done: Promise.resolve(),
  };
  w.done = (async () => {
    try {
      for await (const m of clientOf(p).watchSession(req, { signal: abort.signal })) w.messages.push(m);
    } catch (err) {
      w.error = ConnectError.from(err);
    } finally {
      w.ended = true;
    }
  })();
  return w;
}

/** Waits until `check` holds, failing with `what` after `ms`. */
async function until(what: string, check: () => boolean, ms: number) {
  await waitFor(check, ms, 10).catch(() => {
    throw new Error(`${what}: not within ${ms} ms`);
  });
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/**
 * A writer appending turns through A one at a time until told to stop; `acked` counts the turns
 * acknowledged (each one's seq is checked: the session has no other writer).
 */
function writer(id: string) {
  const w = { acked: 0, stopping: false, done: Promise.resolve() };
  w.done = (async () => {
    while (!w.stopping) {
      const seq = await append(id, `t${w.acked + 1}`);
      expect(seq).toBe(w.acked + 1);
      w.acked = seq;
    }
  })();
  return w;
}

/** Resumes on A from `position` once every turn is written; resolves with the turn seqs before caught_up. */
async function resumeOnA(id: string, position: { seq: bigint; change: bigint }) {
  const again = watch(a, { id, afterSeq: position.seq, afterChange: position.change });
  await until("the resumed watch on A caught up", () => again.caughtUp() || again.ended, 30_000);
  again.stop();
  await again.done;
  const upTo = again.messages.findIndex((m) => m.event.case === "caughtUp");
  expect(upTo, `the resumed stream ended before caught_up: ${again.error?.message}`).toBeGreaterThanOrEqual(0);
  const before = again.messages.slice(0, upTo);
  expect(before.every((m) => m.event.case === "turn" || m.event.case === "heartbeat")).toBe(true);
  return before.flatMap((m) => (m.event.case === "turn" ? [Number(m.position!.seq)] : []));
}

describe("WatchSession across server processes", () => {
  it("delivers each turn appended through A to a watcher on B within seconds, in order, positions 1..20 (the signal, not the poll)", async () => {
    const b = await spawnServer({ databaseUrl: db.url, env: ENV });
    const id = await newSession("cross");
    const w = watch(b, { id });
    await until("snapshot and caught_up on B", () => w.caughtUp() || w.ended, 15_000);
    expect(w.messages.map((m) => m.event.case).slice(0, 2)).toEqual(["snapshot", "caughtUp"]);
    for (let i = 1; i <= 20; i++) {
      expect(await append(id, `t${i}`)).toBe(i);
      await until(`turn ${i} on B`, () => w.seqs().length >= i || w.ended, SIGNAL_MS);
      expect(w.seqs(), `after turn ${i} (stream error: ${w.error?.message})`).toEqual(range(1, i));
    }
    const turns = w.messages.filter((m) => m.event.case === "turn");
    expect(turns.map((m) => (m.event.case === "turn" ? m.event.value.content : ""))).toEqual(range(1, 20).map((i) => `t${i}`));
    expect(turns.map((m) => m.position)).toEqual(range(1, 20).map((i) => expect.objectContaining({ seq: BigInt(i), change: 1n })));
    w.stop();
    await w.done;
    b.kill("SIGTERM");
    expect((await b.exited).code).toBe(0);
  });

  it("SIGTERM on B ends its watcher with UNAVAILABLE and the last position it received; resumed on A it gets exactly the rest, then caught_up", async () => {
    const b = await spawnServer({ databaseUrl: db.url, env: ENV });
    const id = await newSession("sigterm");
    const w = watch(b, { id });
    await until("caught_up on B", () => w.caughtUp() || w.ended, 15_000);
    const turns = writer(id);
    await until("10 turns on B", () => w.seqs().length >= 10 || w.ended, 30_000);
    b.kill("SIGTERM");
    // The writer goes on through A while B shuts down.
    await w.done;
    expect((await b.exited).code).toBe(0);
    // More turns after the stream ended, then the writer stops.
    const endedAt = turns.acked;
    await until("5 more turns through A", () => turns.acked >= endedAt + 5, 30_000);
    turns.stopping = true;
    await turns.done;

    expect(w.error?.code, `the stream ended with ${w.error ? Code[w.error.code] + ": " + w.error.rawMessage : "no error"}`).toBe(Code.Unavailable);
    const [position] = w.error!.findDetails(WatchPositionSchema);
    expect(position, "a WatchPosition detail").toBeDefined();
    const last = w.last()!;
    expect({ seq: position.seq, change: position.change }).toEqual({ seq: last.seq, change: last.change });
    const seen = w.seqs();
    expect(seen).toEqual(range(1, Number(last.seq)));
    expect(seen.length).toBeGreaterThanOrEqual(10);
    expect(seen.length).toBeLessThan(turns.acked);

    const rest = await resumeOnA(id, position);
    expect(rest).toEqual(range(seen.length + 1, turns.acked));
    expect([...seen, ...rest]).toEqual(range(1, turns.acked));
  });

  it("SIGKILL on B mid-stream: the stream errors; resumed on A from the last position received, every turn arrives exactly once", async () => {
    const b = await spawnServer({ databaseUrl: db.url, env: ENV });
    const id = await newSession("sigkill");
    const w = watch(b, { id });
    await until("caught_up on B", () => w.caughtUp() || w.ended, 15_000);
    const turns = writer(id);
    await until("10 turns on B", () => w.seqs().length >= 10 || w.ended, 30_000);
    b.kill("SIGKILL");
    await until("the stream on B ended", () => w.ended, 30_000);
    expect((await b.exited).signal).toBe("SIGKILL");
    expect(w.error, "the stream must not end cleanly when its server dies").toBeInstanceOf(ConnectError);
    const endedAt = turns.acked;
    await until("5 more turns through A", () => turns.acked >= endedAt + 5, 30_000);
    turns.stopping = true;
    await turns.done;

    const seen = w.seqs();
    expect(seen).toEqual(range(1, seen.length));
    expect(seen.length).toBeLessThan(turns.acked);
    const rest = await resumeOnA(id, w.last()!);
    expect([...seen, ...rest]).toEqual(range(1, turns.acked));
  });

  it("B's signal connection terminated: B connects again and reads what it watches, so a turn written meanwhile and one after both arrive", async () => {
    const signalBackends = async () => (await db.sql<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sessiond-signals'")).map((r) => r.pid);
    const before = new Set(await waitFor(async () => ((await signalBackends()).length ? signalBackends() : undefined), 15_000));
    const b = await spawnServer({ databaseUrl: db.url, env: ENV });
    const bBackend = await waitFor(async () => (await signalBackends()).find((pid) => !before.has(pid)), 15_000);
    const id = await newSession("relisten");
    const w = watch(b, { id });
    await until("caught_up on B", () => w.caughtUp() || w.ended, 15_000);
    expect(await append(id, "t1")).toBe(1);
    await until("turn 1 on B", () => w.seqs().length >= 1 || w.ended, SIGNAL_MS);

    const [{ terminated }] = await db.sql<{ terminated: boolean }>("SELECT pg_terminate_backend($1) AS terminated", [bBackend]);
    expect(terminated).toBe(true);
    await b.waitForLog((l) => l.msg?.startsWith("watch signals: connection lost"), 15_000);
    // Written while B has no signal connection (it tries again after 500 ms): only B's read on
    // reconnecting can deliver it before the ten-minute poll.
    expect(await append(id, "t2")).toBe(2);
    await b.waitForLog((l) => l.msg === "watch signals: listening again", 30_000);
    await until("turn 2 on B after reconnecting", () => w.seqs().length >= 2 || w.ended, 15_000);
    // And signals flow again.
    expect(await append(id, "t3")).toBe(3);
    await until("turn 3 on B", () => w.seqs().length >= 3 || w.ended, SIGNAL_MS);
    expect(w.seqs(), `stream error: ${w.error?.message}`).toEqual([1, 2, 3]);
    expect(await signalBackends()).not.toContain(bBackend);
    w.stop();
    await w.done;
    b.kill("SIGTERM");
    expect((await b.exited).code).toBe(0);
  });
});
