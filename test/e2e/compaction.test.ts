/**
 * CompactSession over the real server: archive, summary turn, ListTurns live and with archives (paged
 * both ways), counters, the no-op repeat, bad bounds, truncate and delete counting archives, the
 * integration run before the archive, and the COMPACTED change on a watch.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ParticipantKind, type Turn } from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorKind } from "../../gen/sessiond/v1/memory_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { SessionChangeKind, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { useRemoteIntegrator } from "../setup/integrator.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();

async function expectCode(p: Promise<unknown>, code: Code, message: RegExp) {
  const err = await p.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );
  expect(err, `expected ${Code[code]}`).toBeDefined();
  expect(Code[err!.code]).toBe(Code[code]);
  expect(err!.rawMessage).toMatch(message);
}

/** A session with `n` turns alternating between the user and the agent; returns its id. */
async function chat(sessions: ReturnType<typeof createClient<typeof SessionService>>, namespace: string, sessionId: string, n: number): Promise<string> {
  const { session } = await sessions.createSession({
    namespace,
    sessionId,
    user: "carol",
    participants: [
      { participantId: "carol", kind: ParticipantKind.USER, displayName: "Carol" },
      { participantId: "bot", kind: ParticipantKind.AGENT },
    ],
  });
  const lines = [
    "My name is Carol and I live in Lisbon.",
    "Welcome Carol. How can I help with your order today?",
    "The order of the blue kettle arrived broken. I prefer a refund to a replacement.",
    "A refund for the blue kettle order is on its way.",
  ];
  for (let i = 0; i < n; i += 50) {
    const turns = Array.from({ length: Math.min(50, n - i) }, (_, k) => ({ participantId: (i + k) % 2 ? "bot" : "carol", content: `${lines[(i + k) % 4]} (${i + k + 1})` }));
    await sessions.appendTurns({ id: session!.id, turns });
  }
  return session!.id;
}

const seqs = (turns: Turn[]) => turns.map((t) => `${t.seq}${t.compaction ? "s" : ""}${t.archived ? "a" : ""}`);

describe.each(["connect/http1.1", "grpc/http2"])("CompactSession over %s", (name) => {
  const ns = `compact-${name.replace(/[^a-z0-9]/g, "")}`;

  it("archives turns behind one summary turn, integrates first, counts, lists live and archived, and does nothing the second time", async () => {
    const sessions = createClient(SessionService, transports(ctx.url)[name]);
    const memories = createClient(MemoryService, transports(ctx.url)[name]);
    const id = await chat(sessions, ns, "c1", 10);

    const r = await sessions.compactSession({ id, upToSeq: 6n });
    expect(r.alreadyCompacted).toBe(false);
    expect(r.compaction).toMatchObject({ firstSeq: 1n, upToSeq: 6n, turnsArchived: 6, summarizer: "rules" });
    // The rules' extractive summary: its heading and sentences of the archived turns, by speaker.
    const [heading, ...lines] = r.compaction!.summary.split("\n");
    expect(heading).toBe("Turns 1–6:");
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(/^- (Carol|bot): (My name|Welcome|How can|The order|I prefer|A refund)/);
    // A sentence said again is kept once.
    expect(new Set(lines).size).toBe(lines.length);
    // The integration ran first: memories of the archived turns exist, and the compaction names them.
    expect(r.integration.map((i) => i.participantId).sort()).toEqual(["bot", "carol"]);
    const stored = await memories.listMemories({ namespace: ns });
    expect(stored.memories.map((m) => m.content)).toEqual(expect.arrayContaining(["name: Carol", "lives in Lisbon"]));
    expect([...r.compaction!.memoryIds].sort()).toEqual(stored.memories.map((m) => m.id).sort());
    expect(r.summaryTurn).toMatchObject({ seq: 6n, role: "summary", participantId: "", content: r.compaction!.summary, archived: false });
    expect(r.session!.stats).toMatchObject({ turnCount: 10, compactionCount: 1, archivedTurnCount: 6, compactedSeq: 6n });

    // The live list: the summary where the archived turns were, then the live turns; seqs unchanged.
    expect(seqs((await sessions.listTurns({ id })).turns)).toEqual(["6s", "7", "8", "9", "10"]);
    expect(seqs((await sessions.listTurns({ id, newestFirst: true })).turns)).toEqual(["10", "9", "8", "7", "6s"]);
    expect(seqs((await sessions.listTurns({ id, afterSeq: 6n })).turns)).toEqual(["7", "8", "9", "10"]);
    expect(seqs((await sessions.listTurns({ id, includeArchived: true })).turns)).toEqual(["1a", "2a", "3a", "4a", "5a", "6a", "6s", "7", "8", "9", "10"]);
    // A participant's turns: no summary (it has no speaker), archived ones only on request.
    expect(seqs((await sessions.listTurns({ id, participantId: "carol" })).turns)).toEqual(["7", "9"]);
    expect(seqs((await sessions.listTurns({ id, participantId: "carol", includeArchived: true })).turns)).toEqual(["1a", "3a", "5a", "7", "9"]);

    // The same point again: nothing done, the same compaction.
    const again = await sessions.compactSession({ id, upToSeq: 6n, summary: "ignored" });
    expect(again.alreadyCompacted).toBe(true);
    expect(again.compaction).toEqual(r.compaction);
    expect((await sessions.getSession({ id })).session!.stats).toMatchObject({ compactionCount: 1, archivedTurnCount: 6 });

    // A second compaction with the caller's summary: the first summary is archived with the turns.
    const second = await sessions.compactSession({ id, upToSeq: 8n, summary: "Carol got a refund for a broken kettle." });
    expect(second.compaction).toMatchObject({ firstSeq: 7n, upToSeq: 8n, turnsArchived: 2, summarizer: "caller", summary: "Carol got a refund for a broken kettle." });
    expect(seqs((await sessions.listTurns({ id })).turns)).toEqual(["8s", "9", "10"]);
    expect(seqs((await sessions.listTurns({ id, includeArchived: true })).turns)).toEqual(["1a", "2a", "3a", "4a", "5a", "6a", "6sa", "7a", "8a", "8s", "9", "10"]);
    expect((await sessions.getSession({ id })).session!.stats).toMatchObject({ turnCount: 10, compactionCount: 2, archivedTurnCount: 8, compactedSeq: 8n });
  });

  it("pages through archives and summaries both ways without a gap or a duplicate", async () => {
    const sessions = createClient(SessionService, transports(ctx.url)[name]);
    const id = await chat(sessions, ns, "paged", 30);
    for (const [up, summary] of [
      [10n, "first ten"],
      [20n, "first twenty"],
    ] as const)
      await sessions.compactSession({ id, upToSeq: up, summary });
    for (const newestFirst of [false, true]) {
      for (const includeArchived of [false, true]) {
        const all = seqs((await sessions.listTurns({ id, newestFirst, includeArchived, pageSize: 1000 })).turns);
        for (const pageSize of [1, 3, 7]) {
          const got: string[] = [];
          let pageToken = "";
          do {
            const page = await sessions.listTurns({ id, newestFirst, includeArchived, pageSize, pageToken });
            got.push(...seqs(page.turns));
            pageToken = page.nextPageToken;
          } while (pageToken);
          expect(got, `newestFirst ${newestFirst}, includeArchived ${includeArchived}, pageSize ${pageSize}`).toEqual(all);
        }
        expect(all.length).toBe(includeArchived ? 32 : 11);
      }
    }
    // A token of the live list is refused with include_archived.
    const { nextPageToken } = await sessions.listTurns({ id, pageSize: 2 });
    await expectCode(sessions.listTurns({ id, pageSize: 2, pageToken: nextPageToken, includeArchived: true }), Code.InvalidArgument, /^page_token:/);
  });

  it("refuses bad bounds, and truncate and delete count the archives they remove", async () => {
    const sessions = createClient(SessionService, transports(ctx.url)[name]);
    const id = await chat(sessions, ns, "bounds", 6);
    await expectCode(sessions.compactSession({ id, upToSeq: 0n }), Code.InvalidArgument, /^up_to_seq:/);
    await expectCode(sessions.compactSession({ id, upToSeq: 7n }), Code.FailedPrecondition, /^up_to_seq: .* has no turn 7/);
    await expectCode(sessions.compactSession({ id, upToSeq: 2n, summary: "a\u0000b" }), Code.InvalidArgument, /^summary:/);
    await expectCode(sessions.compactSession({ id, upToSeq: 2n, summary: "x".repeat(64 * 1024 + 1) }), Code.InvalidArgument, /^summary:/);
    await expectCode(sessions.compactSession({ namespace: ns, sessionId: "nope", upToSeq: 1n }), Code.NotFound, /not found/);
    await sessions.compactSession({ id, upToSeq: 4n, summary: "s" });
    await expectCode(sessions.compactSession({ id, upToSeq: 3n }), Code.FailedPrecondition, /already compacted up to 4/);
    // Only an active session is compacted.
    const cancelled = await chat(sessions, ns, "bounds-cancelled", 2);
    await sessions.cancelSession({ id: cancelled });
    await expectCode(sessions.compactSession({ id: cancelled, upToSeq: 1n, summary: "s" }), Code.FailedPrecondition, /is cancelled; compacting it is not allowed/);
    // Nothing was written by the refused calls.
    expect((await sessions.getSession({ id })).session!.stats).toMatchObject({ compactionCount: 1, archivedTurnCount: 4, compactedSeq: 4n });

    const truncated = await sessions.truncateSession({ id });
    expect(truncated).toMatchObject({ turnsDeleted: 6, archivedTurnsDeleted: 4, compactionsDeleted: 1 });
    expect(truncated.session!.stats).toMatchObject({ turnCount: 0, compactionCount: 0, archivedTurnCount: 0, compactedSeq: 4n });
    expect((await sessions.listTurns({ id, includeArchived: true })).turns).toEqual([]);
    // The numbering goes on; the next compaction starts after the old mark.
    await sessions.appendTurns({ id, turns: [{ participantId: "carol", content: "Back again." }, { participantId: "bot", content: "Hello again." }] });
    await expectCode(sessions.compactSession({ id, upToSeq: 4n }), Code.FailedPrecondition, /truncated away/);
    const after = await sessions.compactSession({ id, upToSeq: 7n, summary: "back" });
    expect(after.compaction).toMatchObject({ firstSeq: 7n, upToSeq: 7n, turnsArchived: 1 });

    const count = async () => (await ctx.db.sql("SELECT count(*)::int AS n FROM session_compactions"))[0].n as number;
    const before = await count();
    const deleted = await sessions.deleteSession({ id });
    expect(deleted.deleted).toMatchObject({ turns: 2, archivedTurns: 1, compactions: 1 });
    // The cascade took its compaction.
    expect(await count()).toBe(before - 1);
  });
});

describe("CompactSession with a remote integrator", () => {
  const remote = useRemoteIntegrator();

  it("asks for the summary 200 turns at a time with the summary so far; without one, or failing, nothing is archived", async () => {
    const sessions = ctx.client();
    const memories = createClient(MemoryService, transports(ctx.url)["grpc/http2"]);
    await sessions.createSession({ namespace: "remote-compact", sessionId: "setup" });
    await memories.updateIntegratorConfig({ namespace: "remote-compact", config: { kind: IntegratorKind.REMOTE, url: remote.url, timeout: { seconds: 5n } } });
    const id = await chat(sessions, "remote-compact", "long", 450);

    // An integrator that makes no summary: FAILED_PRECONDITION, and nothing archived.
    remote.behave = async () => ({ insights: [], memories: [] });
    await expectCode(sessions.compactSession({ id, upToSeq: 450n }), Code.FailedPrecondition, /^summary: .*makes no summary/);
    expect((await sessions.getSession({ id })).session!.stats).toMatchObject({ compactionCount: 0, archivedTurnCount: 0 });

    // One that fails to integrate: UNAVAILABLE before any summary is asked for.
    remote.calls = [];
    remote.behave = async () => {
      throw new ConnectError("model overloaded", Code.Unavailable);
    };
    const fresh = await chat(sessions, "remote-compact", "failing", 4);
    await expectCode(sessions.compactSession({ id: fresh, upToSeq: 4n }), Code.Unavailable, /integrating participant .* failed.*nothing was archived/);
    expect(remote.calls.some((c) => c.summarize)).toBe(false);

    // One that summarizes: chunks of at most 200 turns, each with the summary so far.
    remote.calls = [];
    remote.behave = async (req) => (req.summarize ? { insights: [], memories: [], summary: `${req.previousSummary}[${req.turns[0].seq}-${req.turns[req.turns.length - 1].seq}]` } : { insights: [], memories: [] });
    const r = await sessions.compactSession({ id, upToSeq: 450n });
    const asked = remote.calls.filter((c) => c.summarize);
    expect(asked.map((c) => [c.turns.length, c.previousSummary])).toEqual([
      [200, ""],
      [200, "[1-200]"],
      [50, "[1-200][201-400]"],
    ]);
    expect(asked.every((c) => c.participant === undefined)).toBe(true);
    expect(r.compaction).toMatchObject({ upToSeq: 450n, turnsArchived: 450, summarizer: "remote", summary: "[1-200][201-400][401-450]" });
  });
});

describe("a watch of a compacted session", () => {
  it("gets a COMPACTED change with the compaction", async () => {
    const sessions = ctx.client();
    const id = await chat(sessions, "compact-watch", "w", 4);
    const stop = new AbortController();
    const seen: SessionChangeKind[] = [];
    let compaction: unknown;
    const watching = (async () => {
      try {
        for await (const m of sessions.watchSession({ id, afterSeq: 4n }, { signal: stop.signal })) {
          if (m.event.case === "caughtUp") await sessions.compactSession({ id, upToSeq: 3n, summary: "three" });
          if (m.event.case === "change") {
            seen.push(m.event.value.kind);
            compaction = m.event.value.compaction;
            if (m.event.value.kind === SessionChangeKind.COMPACTED) stop.abort();
          }
        }
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
    })();
    await watching;
    expect(seen).toEqual([SessionChangeKind.COMPACTED]);
    expect(compaction).toMatchObject({ firstSeq: 1n, upToSeq: 3n, turnsArchived: 3, summary: "three", summarizer: "caller" });
  });
});
