/**
 * AdminService.ForgetSubject end to end: the subject seeded as the user of sessions (with turns, spans,
 * annotations), as a participant of other users' sessions (turns with tool calls and metadata, a
 * compaction summary, insights of others that quote it, watch-outbox rows), in memories about it; after
 * the erasure every table of the database is read back as text and holds neither the subject's phrase
 * nor its id, while other users' data and another namespace are untouched.
 */
import { createHash } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService, ErasureStep, SubjectKind, type ForgetSubjectResponse } from "../../gen/sessiond/v1/admin_service_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { OperationKind, OperationService, OperationState } from "../../gen/sessiond/v1/operation_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { AnnotatorKind } from "../../gen/sessiond/v1/trace_pb.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer();
const NS = "erasure";
const OTHER_NS = "erasure-other";
const SUBJECT = "subj-erin-4242";
const PHRASE = "quokka-marmalade-7731";

const sessions = () => createClient(SessionService, grpcTransport(ctx.url));
const admin = (name = "grpc/http2") => createClient(AdminService, transports(ctx.url)[name]);

async function forget(req: Parameters<ReturnType<typeof admin>["forgetSubject"]>[0], name?: string): Promise<ForgetSubjectResponse[]> {
  const out: ForgetSubjectResponse[] = [];
  for await (const m of admin(name).forgetSubject(req)) out.push(m);
  return out;
}

const summaryOf = (ms: ForgetSubjectResponse[]) => {
  const last = ms.at(-1)!.event;
  if (last.case !== "summary") throw new Error(`last message is ${last.case}`);
  return last.value.counts!;
};

const q = (sql: string, params: unknown[] = []): Promise<any[]> => ctx.db.dataSource.query(sql, params);

/** A session of `user` in `namespace` with `speakers` bound (id -> kind, display name, metadata). */
async function session(namespace: string, sessionId: string, user: string, speakers: [string, ParticipantKind, string, Record<string, string>][]) {
  const { session: s } = await sessions().createSession({
    namespace,
    sessionId,
    user,
    data: user === SUBJECT ? { note: `about ${PHRASE}` } : {},
    participants: speakers.map(([participantId, kind, displayName, metadata]) => ({ participantId, kind, displayName, metadata })),
  });
  return s!;
}

const subjectSays = (text: string) => ({
  participantId: SUBJECT,
  content: text,
  toolCalls: [{ id: "c1", name: "crm.lookup", arguments: { q: PHRASE } }],
  metadata: { note: PHRASE },
});

/** Seeds the subject everywhere; returns the sessions of others that must keep their counters and seqs. */
async function seed(namespace: string) {
  // The subject's own sessions: traces, spans and annotations go with them.
  for (const n of [1, 2, 3]) {
    const s = await session(namespace, `own-${n}`, SUBJECT, [
      [SUBJECT, ParticipantKind.USER, `Erin ${PHRASE}`, { secret: PHRASE }],
      ["bot", ParticipantKind.AGENT, "Bot", {}],
    ]);
    await sessions().appendTurns({ id: s.id, turns: [subjectSays(`My name is Erin and I live in ${PHRASE}.`), { participantId: "bot", content: `Hello from ${PHRASE}` }] });
    const traceId = createHash("md5").update(`${namespace}${n}`).digest("hex");
    await createClient(TraceService, grpcTransport(ctx.url)).recordSpans({
      namespace,
      session: s.id,
      spans: [{ traceId, spanId: "0123456789abcdef", name: "llm", startTime: { seconds: 1n }, endTime: { seconds: 2n }, attributes: { prompt: PHRASE } }],
    });
    await createClient(TraceService, grpcTransport(ctx.url)).annotate({ namespace, target: { target: { case: "traceId", value: traceId } }, name: "quality", annotatorKind: AnnotatorKind.HUMAN, explanation: PHRASE });
    if (n === 3) await sessions().softDeleteSession({ id: s.id });
  }
  // Other users' sessions, where the subject speaks.
  const others = [];
  for (const n of [1, 2]) {
    const s = await session(namespace, `bob-${n}`, "bob", [
      ["bob", ParticipantKind.USER, "Bob", { tier: "gold" }],
      [SUBJECT, ParticipantKind.USER, `Erin ${PHRASE}`, { secret: PHRASE }],
      ["bot", ParticipantKind.AGENT, "Bot", {}],
    ]);
    await sessions().appendTurns({
      id: s.id,
      turns: [{ participantId: "bob", content: "I like tea." }, subjectSays(`I live in ${PHRASE}.`), { participantId: "bot", content: "Noted." }, subjectSays(`Remember that ${PHRASE} is mine.`)],
    });
    // The others' integration reads the subject's turns: their insights and memories quote it.
    await sessions().integrateSession({ id: s.id });
    if (n === 2) await sessions().unbindParticipant({ id: s.id, participantId: SUBJECT });
    others.push(s);
  }
  const nsId = (await q("SELECT id FROM namespaces WHERE name = $1", [namespace]))[0].id;
  const bob1 = (await q("SELECT id FROM sessions WHERE namespace_id = $1 AND external_id = 'bob-1'", [nsId]))[0].id;
  await q(
    `INSERT INTO session_compactions (namespace_id, session_id, up_to_seq, first_seq, turns_archived, summary, summarizer) VALUES
     ($1, $2, 2, 1, 2, $3, 'test'), ($1, $2, 1, 1, 1, 'Bob likes tea.', 'test'), ($1, $2, 3, 3, 1, $4, 'test')`,
    [nsId, bob1, `Erin lives in ${PHRASE}`, `Erin lives in ${PHRASE}. The bot noted it.`],
  );
  // What the watch outbox recorded of them: a later summary carries the earlier one (it covers none of
  // the subject's turns), and another participant's recorded insights quote the subject.
  await q(
    `INSERT INTO session_changes (namespace_id, session_id, change, kind, at_seq, external_id, detail) VALUES
     ($1, $2, 1000, 'compacted', 4, 'bob-1', $3::jsonb), ($1, $2, 1001, 'participant_unbound', 4, 'bob-1', $4::jsonb)`,
    [
      nsId,
      bob1,
      JSON.stringify({ first_seq: 3, up_to_seq: 3, turns_archived: 1, summary: `Erin lives in ${PHRASE}. The bot noted it.`, summarizer: "test", memory_ids: [] }),
      JSON.stringify({ participant_id: "bot", kind: "agent", display_name: "", metadata: {}, insights: [`Erin: lives in ${PHRASE}`] }),
    ],
  );
  // Memories about the subject, and one the subject produced about someone else.
  await q(
    `INSERT INTO memories (namespace_id, subject_user, subject_participant_id, content, integrated_by) VALUES
     ($1, $2, '', $3, 'bot'), ($1, '', $2, $3, 'bot'), ($1, 'bob', 'bob', 'likes tea', $2)`,
    [nsId, SUBJECT, `lives in ${PHRASE}`],
  );
  // A bulk delete by the subject's user (a dry run): its operation's stored request names the subject.
  for await (const _ of sessions().bulkDeleteSessions({ namespace, selector: { case: "filter", value: { filter: { user: SUBJECT } } }, dryRun: true }));
  // A session with no trace of the subject.
  await session(namespace, "bob-alone", "bob", [["bob", ParticipantKind.USER, "Bob", {}]]);
  return { nsId, others };
}

/** What must not change in other users' sessions: counters, and every turn's seq, time and speaker row. */
async function othersState(nsId: string) {
  const s = await q(
    `SELECT external_id, participant_count, turn_count, last_turn_seq, change_seq, compacted_seq FROM sessions WHERE namespace_id = $1 AND user_id <> $2 ORDER BY external_id`,
    [nsId, SUBJECT],
  );
  const t = await q(
    `SELECT s.external_id, t.seq, t.participant_ref, t.create_time, t.role FROM turns t JOIN sessions s ON s.namespace_id = t.namespace_id AND s.id = t.session_id
     WHERE t.namespace_id = $1 ORDER BY s.external_id, t.seq`,
    [nsId],
  );
  const untouched = await q(
    `SELECT t.seq, t.content, t.tool_calls, t.metadata FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref
       JOIN sessions s ON s.namespace_id = t.namespace_id AND s.id = t.session_id
     WHERE t.namespace_id = $1 AND s.user_id <> $2 AND p.participant_id <> $2 AND p.participant_id NOT LIKE 'redacted-%' ORDER BY t.session_id, t.seq`,
    [nsId, SUBJECT],
  );
  return { s, t, untouched };
}

/** Every row of every table, as text, that holds `needle` (rows of `exceptNamespace` aside). */
async function rowsHolding(needle: string, exceptNamespace: string): Promise<string[]> {
  const tables: { t: string }[] = await q("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
  const found: string[] = [];
  for (const { t } of tables) {
    const [{ has }] = await q("SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'namespace_id') AS has", [t]);
    const where = has ? `WHERE x.namespace_id IS DISTINCT FROM $2::uuid` : t === "namespaces" ? "WHERE x.id <> $2::uuid" : "WHERE $2::uuid IS NOT NULL";
    const rows: { row: string }[] = await q(`SELECT x::text AS row FROM "${t}" x ${where} AND strpos(x::text, $1) > 0`, [needle, exceptNamespace]);
    found.push(...rows.map((r) => `${t}: ${r.row.slice(0, 300)}`));
  }
  return found;
}

describe("ForgetSubject", () => {
  it("erases a user everywhere in the namespace, leaving others' data and other namespaces as they were", async () => {
    const { nsId, others } = await seed(NS);
    await seed(OTHER_NS);
    const otherNsId = (await q("SELECT id FROM namespaces WHERE name = $1", [OTHER_NS]))[0].id;
    const otherBefore = await q("SELECT count(*)::int AS n FROM turns WHERE namespace_id = $1 AND strpos(content, $2) > 0", [otherNsId, PHRASE]);
    expect(otherBefore[0].n).toBeGreaterThan(0);
    // What the erasure must find, read before it.
    const [expected] = await q(
      `SELECT (SELECT count(*) FROM turns t JOIN participants p ON p.namespace_id = t.namespace_id AND p.id = t.participant_ref JOIN sessions s ON s.namespace_id = t.namespace_id AND s.id = t.session_id
               WHERE t.namespace_id = $1 AND p.participant_id = $2 AND s.user_id <> $2)::int AS turns_redacted,
              (SELECT coalesce(sum(turn_count), 0) FROM sessions WHERE namespace_id = $1 AND user_id = $2)::int AS turns_deleted,
              (SELECT count(*) FROM memories WHERE namespace_id = $1 AND (subject_user = $2 OR subject_participant_id = $2))::int AS memories_about,
              (SELECT count(*) FROM memories WHERE namespace_id = $1 AND integrated_by = $2 AND subject_user <> $2 AND subject_participant_id <> $2)::int AS memories_produced,
              (SELECT count(*) FROM participants p JOIN sessions s ON s.namespace_id = p.namespace_id AND s.id = p.session_id
               WHERE p.namespace_id = $1 AND s.user_id = 'bob' AND p.participant_id <> $2 AND p.insights <> '[]'::jsonb)::int AS insights`,
      [nsId, SUBJECT],
    );
    // The subject's own integration in bob's sessions produced memories about bob, besides the seeded one.
    expect(expected).toMatchObject({ turns_redacted: 4, turns_deleted: 6, memories_produced: 3 });
    expect(expected.insights).toBeGreaterThan(0);
    const before = await othersState(nsId);

    const messages = await forget({ namespace: NS, subject: { case: "user", value: SUBJECT } });
    expect(messages[0].event.case).toBe("started");
    const started = messages[0].event.value as { operationId: string; subjectKind: SubjectKind; subjectSha256: string; namespace: string };
    const digest = createHash("sha256").update(SUBJECT).digest("hex");
    expect(started).toMatchObject({ namespace: NS, subjectKind: SubjectKind.USER, subjectSha256: digest });
    expect(messages.slice(1, -1).every((m) => m.event.case === "progress")).toBe(true);
    expect(messages.slice(1, -1).map((m) => (m.event.value as { step: ErasureStep }).step)).toEqual(
      expect.arrayContaining([ErasureStep.SESSIONS, ErasureStep.MEMORIES, ErasureStep.PARTICIPANTS, ErasureStep.CHANGES, ErasureStep.OPERATIONS]),
    );
    const counts = summaryOf(messages);
    expect(counts).toMatchObject({
      sessionsDeleted: 3n,
      deleted: expect.objectContaining({ participants: 6, turns: expected.turns_deleted, traces: 3, spans: 3, annotations: 3 }),
      memoriesDeleted: BigInt(expected.memories_about),
      memoriesRedacted: BigInt(expected.memories_produced),
      participantsRedacted: 2n,
      turnsRedacted: BigInt(expected.turns_redacted),
      insightsCleared: BigInt(expected.insights),
      summariesRedacted: 2n,
      operationsRedacted: 1n,
    });
    // 3 DELETED snapshots, 2 binds, 1 unbind at least; a COMPACTED summary and another's insights.
    expect(counts.changesRedacted).toBeGreaterThanOrEqual(3n + 2n + 1n + 2n);

    // Nothing of the subject is left anywhere but in the other namespace.
    expect(await rowsHolding(PHRASE, otherNsId)).toEqual([]);
    expect(await rowsHolding(SUBJECT, otherNsId)).toEqual([]);

    // Others' counters, seqs and turns are as they were; the subject's turns kept their place.
    const after = await othersState(nsId);
    expect(after.s).toEqual(before.s);
    expect(after.t).toEqual(before.t.filter((r: { external_id: string }) => !r.external_id.startsWith("own-")));
    expect(after.untouched).toEqual(before.untouched);
    const listed = await sessions().listTurns({ id: others[0].id });
    expect(listed.turns.map((t) => t.seq)).toEqual([1n, 2n, 3n, 4n]);
    const redacted = listed.turns.filter((t) => t.participantId.startsWith("redacted-"));
    expect(redacted).toHaveLength(2);
    for (const t of redacted) expect(t).toMatchObject({ content: "[redacted]", toolCalls: [], role: "user" });
    const participants = (await sessions().listParticipants({ id: others[0].id })).participants;
    expect(participants.find((p) => p.participantId.startsWith("redacted-"))).toMatchObject({ displayName: "", insights: [], kind: ParticipantKind.USER });
    expect(participants.find((p) => p.participantId === "bob")).toMatchObject({ displayName: "Bob", metadata: { tier: "gold" } });
    const [compaction] = await q("SELECT summary FROM session_compactions WHERE namespace_id = $1 AND up_to_seq = 1", [nsId]);
    expect(compaction.summary).toBe("Bob likes tea.");
    expect((await q("SELECT content, integrated_by FROM memories WHERE namespace_id = $1 AND subject_user = 'bob' AND content = 'likes tea'", [nsId]))[0]).toEqual({ content: "likes tea", integrated_by: "" });

    // The other namespace still has everything.
    const otherAfter = await q("SELECT count(*)::int AS n FROM turns WHERE namespace_id = $1 AND strpos(content, $2) > 0", [otherNsId, PHRASE]);
    expect(otherAfter).toEqual(otherBefore);
    expect((await q("SELECT count(*)::int AS n FROM sessions WHERE namespace_id = $1 AND user_id = $2", [otherNsId, SUBJECT]))[0].n).toBe(3);

    // The operation and the audit event say what was done, with the digest only.
    const { operation } = await createClient(OperationService, grpcTransport(ctx.url)).getOperation({ namespace: NS, id: started.operationId });
    expect(operation).toMatchObject({ kind: OperationKind.FORGET_SUBJECT, state: OperationState.SUCCEEDED, erasure: { sessionsDeleted: 3n, turnsRedacted: counts.turnsRedacted } });
    let event;
    for (const end = Date.now() + 10_000; !event && Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      event = (await admin().listAuditEvents({ namespace: NS })).events.find((e) => e.method.endsWith("/ForgetSubject"));
    }
    expect(event).toMatchObject({ code: "ok", namespace: NS, detail: { subject_kind: "user", subject_sha256: digest, sessions_deleted: 3, turns_redacted: Number(counts.turnsRedacted) } });

    // Again: nothing left to do.
    const again = summaryOf(await forget({ namespace: NS, subject: { case: "user", value: SUBJECT } }, "connect/http1.1"));
    expect(Object.values({ ...again, deleted: undefined, $typeName: undefined }).filter((v) => typeof v === "bigint" && v !== 0n)).toEqual([]);
    expect(again.deleted).toMatchObject({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
  });

  it("streams progress step by step for a participant with many turns", async () => {
    const ns = "erasure-big";
    const s = await session(ns, "group", "carol", [
      ["carol", ParticipantKind.USER, "Carol", {}],
      ["dave", ParticipantKind.USER, "Dave", {}],
    ]);
    for (let i = 0; i < 3; i++) {
      await sessions().appendTurns({ id: s.id, turns: Array.from({ length: 10 }, (_, j) => ({ participantId: j % 2 ? "carol" : "dave", content: `dave ${PHRASE} ${i}-${j}` })) });
    }
    const messages = await forget({ namespace: ns, subject: { case: "participantId", value: "dave" }, batchSize: 2 }, "grpc-web/http1.1");
    const progress = messages.filter((m) => m.event.case === "progress").map((m) => (m.event.value as { counts: { turnsRedacted: bigint } }).counts.turnsRedacted);
    expect(progress.length).toBeGreaterThan(8);
    expect(progress).toEqual([...progress].sort((a, b) => Number(a - b)));
    expect(summaryOf(messages)).toMatchObject({ sessionsDeleted: 0n, turnsRedacted: 15n, participantsRedacted: 1n });
    const turns = (await sessions().listTurns({ id: s.id })).turns;
    expect(turns.map((t) => t.seq)).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(i + 1)));
    expect(turns.filter((t) => t.content.includes(PHRASE)).every((t) => t.participantId === "carol")).toBe(true);
    expect((await sessions().getSession({ id: s.id })).session!.stats).toMatchObject({ turnCount: 30, participantCount: 2 });
  });

  it("refuses a missing or empty subject, naming the field", async () => {
    for (const [subject, field] of [
      [{ case: "user", value: "" }, "user"],
      [{ case: "participantId", value: "" }, "participant_id"],
      [{ case: undefined }, "subject"],
    ] as const) {
      const err = await forget({ namespace: NS, subject }).catch((e) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage.startsWith(`${field}:`)).toBe(true);
    }
    const err = await forget({ namespace: "no-such-ns", subject: { case: "user", value: "x" } }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });
});
