/**
 * ExportSessions and ImportSessions through the real server and the CLIs (`npm run export` and
 * `npm run import` as separate processes): a round trip gives the same file and the same counters;
 * conflict modes, bad lines and records of another namespace get their own outcome while the rest go
 * in; an export moves into another namespace; roles and namespaces are kept apart.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { SessionRecordSchema } from "../../gen/sessiond/v1/session_record_pb.js";
import { ImportOutcome, ImportSessionsRequestSchema, SessionChangeKind, SessionService, type ImportSessionsRequest } from "../../gen/sessiond/v1/session_service_pb.js";
import { AnnotatorKind } from "../../gen/sessiond/v1/trace_pb.js";
import { TraceService as TraceApi } from "../../gen/sessiond/v1/trace_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, transports, useServer } from "../setup/server.js";

const ctx = useServer();

/** Runs `npm run export` or `npm run import` (their tsx entry) against the test server. */
function cli(name: "export" | "import", args: string[], stdin = "", key = TEST_ADMIN_KEY): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.resolve("node_modules/.bin/tsx"), [`src/cli/${name}.ts`, ...args], {
      env: { ...process.env, SESSIOND_URL: ctx.url, SESSIOND_API_KEY: key },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const sessions = () => createClient(SessionService, grpcTransport(ctx.url));
const traces = () => createClient(TraceApi, grpcTransport(ctx.url));

const hex = (n: number, len: number) => n.toString(16).padStart(len, "0");

/**
 * Seeds `n` sessions in `namespace` through the API: two participants (one left), turns with tool
 * calls and a request id, a trace with three spans, annotations on the session, the trace and a span,
 * memories by the rules integrator; the first is compacted (rows written directly, as CompactSession
 * would), the second cancelled, the third soft-deleted. Returns their session ids.
 */
async function seed(namespace: string, n: number, tag: string): Promise<string[]> {
  const c = sessions();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const sessionId = `${tag}-${i}`;
    ids.push(sessionId);
    await c.createSession({
      namespace,
      sessionId,
      user: `user-${i}`,
      workflow: { id: "wf", version: "1" },
      data: { step: i, nested: { ok: true } },
      labels: { env: "test", tag },
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER, displayName: "Alice", metadata: { lang: "en" } },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    await c.appendTurns({
      namespace,
      sessionId,
      requestId: `req-${i}`,
      turns: [
        { participantId: "alice", content: "Hello, my name is Alice. I prefer tea." },
        { participantId: "bot", content: "Noted.", toolCalls: [{ id: "c1", name: "lookup", arguments: { q: "tea" } }], metadata: { model: "m" } },
        { participantId: "alice", content: "Remember that I live in Paris." },
        { participantId: "bot", content: "Sure." },
      ],
    });
    await c.integrateSession({ namespace, sessionId });
    const tid = `${hex(0xabc000 + i, 8)}${tag.padEnd(24, "0").replace(/[^0-9a-f]/g, "e").slice(0, 24)}`;
    const t0 = Date.UTC(2026, 0, 1, 0, 0, i);
    const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
    await traces().recordSpans({
      namespace,
      sessionId,
      spans: [
        { traceId: tid, spanId: hex(1, 16), name: "root", kind: 2, startTime: ts(t0), endTime: ts(t0 + 900), statusCode: 1, attributes: { "http.method": "POST" } },
        { traceId: tid, spanId: hex(2, 16), parentSpanId: hex(1, 16), name: "llm", startTime: ts(t0 + 10), endTime: ts(t0 + 500), events: [{ name: "token", time: ts(t0 + 20), attributes: { n: 1 } }] },
        { traceId: tid, spanId: hex(3, 16), parentSpanId: hex(1, 16), name: "tool", startTime: ts(t0 + 510), endTime: ts(t0 + 800), statusCode: 2, statusMessage: "boom" },
      ],
    });
    await traces().annotate({ namespace, target: { target: { case: "sessionId", value: sessionId } }, name: "quality", annotatorKind: AnnotatorKind.HUMAN, label: "good", score: 0.9 });
    await traces().annotate({ namespace, target: { target: { case: "traceId", value: tid } }, name: "latency", annotatorKind: AnnotatorKind.CODE, identifier: "lat" });
    await traces().annotate({ namespace, target: { target: { case: "span", value: { traceId: tid, spanId: hex(3, 16) } } }, name: "error", annotatorKind: AnnotatorKind.LLM, explanation: "tool failed", metadata: { judge: "x" } });
    await c.unbindParticipant({ namespace, sessionId, participantId: "bot" });
  }
  const ds = ctx.db.dataSource;
  const [{ id: nsId }] = await ds.query("SELECT id FROM namespaces WHERE name = $1", [namespace]);
  const [{ id: first }] = await ds.query("SELECT id FROM sessions WHERE namespace_id = $1 AND external_id = $2", [nsId, ids[0]]);
  // A compaction of turns 1..2, as CompactSession leaves it.
  await ds.query(
    `INSERT INTO session_compactions (namespace_id, session_id, up_to_seq, first_seq, turns_archived, summary, summarizer, memory_ids)
     SELECT $1, $2, 2, 1, 2, 'Alice introduced herself.', 'caller', coalesce(array_agg(m.id), '{}') FROM memories m WHERE m.namespace_id = $1 AND m.source_session_id = $2`,
    [nsId, first],
  );
  await ds.query("UPDATE sessions SET compacted_seq = 2, compaction_count = 1, archived_turn_count = 2 WHERE namespace_id = $1 AND id = $2", [nsId, first]);
  if (n > 1) await c.cancelSession({ namespace, sessionId: ids[1] });
  if (n > 2) await c.softDeleteSession({ namespace, sessionId: ids[2] });
  return ids;
}

/** Each session's stats, by session id (soft-deleted ones included). */
async function statsOf(namespace: string, ids: string[]) {
  const out: Record<string, unknown> = {};
  for (const sessionId of ids) {
    const { session } = await sessions().getSession({ namespace, sessionId, showDeleted: true });
    out[sessionId] = { stats: session!.stats, state: session!.state, data: session!.data, labels: session!.labels, createTime: session!.createTime };
  }
  return out;
}

async function deleteAll(namespace: string, ids: string[]) {
  for (const sessionId of ids) await sessions().deleteSession({ namespace, sessionId });
}

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("ExportSessions and ImportSessions", { timeout: 180_000 }, () => {
  it("round-trips: export, delete, import, export again gives the same file and the same counters", async () => {
    const ids = await seed("demo", 3, "rt");
    const before = await statsOf("demo", ids);
    const first = await cli("export", ["--namespace", "demo", "--include-deleted"]);
    expect(first.stderr).toContain("export: 3 records exported, 0 missing");
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split("\n");
    expect(lines).toHaveLength(3);
    const record = fromJsonString(SessionRecordSchema, lines[0]);
    expect(record.session?.sessionId).toBe("rt-0");
    expect(record.participants.map((p) => p.participantId)).toEqual(["alice", "bot"]);
    expect(record.participants[1].leaveTime).toBeDefined();
    expect(record.turns.map((t) => [Number(t.seq), t.archived])).toEqual([[1, true], [2, true], [3, false], [4, false]]);
    expect(record.compactions).toHaveLength(1);
    expect(record.compactions[0].memoryIds.length).toBeGreaterThan(0);
    expect(record.traces[0].spans.map((s) => s.name).sort()).toEqual(["llm", "root", "tool"]);
    expect(record.annotations.map((a) => a.target?.target.case).sort()).toEqual(["session", "span", "traceId"]);
    expect(record.memories.length).toBeGreaterThan(0);
    expect(lines[0]).not.toMatch(/clientSecret|etag/);

    await deleteAll("demo", ids);
    const imported = await cli("import", ["--namespace", "demo"], first.stdout);
    expect(imported.stderr).toContain("import: 3 records: 3 imported, 0 replaced, 0 skipped, 0 failed");
    expect(imported.code).toBe(0);

    const again = await cli("export", ["--namespace", "demo", "--include-deleted"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    expect(await statsOf("demo", ids)).toEqual(before);

    // Imported sessions are seen by the change feed, and work as any other: turns go on from the last seq.
    const ds = ctx.db.dataSource;
    const created = await ds.query(
      "SELECT count(*)::int AS n FROM session_changes c JOIN namespaces n ON n.id = c.namespace_id WHERE n.name = 'demo' AND c.kind = 'created' AND c.external_id = ANY($1)",
      [ids],
    );
    expect(created[0].n).toBe(6);
    const appended = await sessions().appendTurns({ namespace: "demo", sessionId: "rt-0", turns: [{ participantId: "alice", content: "again" }] });
    expect(Number(appended.lastSeq)).toBe(5);
  });

  it("moves an export into another namespace, keeping its content and counters", async () => {
    const ids = await seed("src1", 2, "mv");
    const before = await statsOf("src1", ids);
    const out = await cli("export", ["--namespace", "src1", "--session-ids", ids.join(",")]);
    expect(out.code).toBe(0);
    const moved = await cli("import", ["--namespace", "dst1"], out.stdout);
    expect(moved.stderr).toContain("2 imported");
    expect(moved.code).toBe(0);
    expect(await statsOf("dst1", ids)).toEqual(before);
    const there = await cli("export", ["--namespace", "dst1"]);
    const strip = (s: string) => s.replace(/"(id|session|sourceSession)":"[^"]*"/g, "").replaceAll('"namespace":"src1"', '"namespace":"dst1"');
    expect(strip(there.stdout)).toBe(strip(out.stdout));
    const memories = await createClient(MemoryService, grpcTransport(ctx.url)).listMemories({ namespace: "dst1" });
    expect(memories.memories.length).toBeGreaterThan(0);
  });

  it("applies the conflict mode to each record whose session exists", async () => {
    const ids = await seed("conf", 2, "cf");
    const out = await cli("export", ["--namespace", "conf"]);
    expect(out.code).toBe(0);

    const failed = await cli("import", ["--namespace", "conf"], out.stdout);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/line 1 \(session_id "cf-\d"\): FAILED: a session with session_id/);
    expect(failed.stderr).toContain("0 imported, 0 replaced, 0 skipped, 2 failed");

    const skipped = await cli("import", ["--namespace", "conf", "--on-conflict", "skip"], out.stdout);
    expect(skipped.code).toBe(0);
    expect(skipped.stderr).toContain("0 imported, 0 replaced, 2 skipped, 0 failed");

    await sessions().appendTurns({ namespace: "conf", sessionId: ids[0], turns: [{ participantId: "alice", content: "later" }] });
    const replaced = await cli("import", ["--namespace", "conf", "--on-conflict", "replace"], out.stdout);
    expect(replaced.stderr).toContain("0 imported, 2 replaced, 0 skipped, 0 failed");
    expect(replaced.code).toBe(0);
    // The turn appended after the export went with the replaced session.
    expect((await cli("export", ["--namespace", "conf"])).stdout).toBe(out.stdout);
  });

  it("reports a malformed line, an invalid record and a record of another namespace, and imports the rest", async () => {
    await seed("bad", 1, "ok");
    const out = await cli("export", ["--namespace", "bad"]);
    const good = fromJsonString(SessionRecordSchema, out.stdout.trim());
    await deleteAll("bad", ["ok-0"]);
    const other = fromJsonString(SessionRecordSchema, out.stdout.trim());
    other.session!.namespace = "third";
    other.session!.sessionId = "elsewhere";
    const invalid = fromJsonString(SessionRecordSchema, out.stdout.trim());
    invalid.session!.sessionId = "bad-role";
    invalid.turns[1].role = "Not A Role";
    const file = [toJsonString(SessionRecordSchema, good), "{not json", toJsonString(SessionRecordSchema, other), toJsonString(SessionRecordSchema, invalid), ""].join("\n");
    const run = await cli("import", ["--namespace", "bad"], file);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/line 2: INVALID: not a SessionRecord/);
    expect(run.stderr).toMatch(/line 3 \(session_id "elsewhere"\): INVALID: record\.session\.namespace: is "third", not the source namespace "bad"/);
    expect(run.stderr).toMatch(/line 4 \(session_id "bad-role"\): INVALID: record\.turns\[1\]\.role/);
    expect(run.stderr).toContain("import: 4 records: 1 imported, 0 replaced, 0 skipped, 3 failed");
    // Nothing of the refused records was written.
    expect(await codeOf(sessions().getSession({ namespace: "bad", sessionId: "bad-role" }))).toBe(Code.NotFound);
    expect((await sessions().getSession({ namespace: "bad", sessionId: "ok-0" })).session?.stats?.turnCount).toBe(4);
  });

  it("shows an imported session to the namespace's change feed, as CREATED with the session as imported", async () => {
    await seed("feed", 1, "fd");
    const out = await cli("export", ["--namespace", "feed"]);
    await deleteAll("feed", ["fd-0"]);
    const ac = new AbortController();
    const feed = sessions().watchSessions({ namespace: "feed" }, { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await feed.next()).value?.event.case).toBe("caughtUp");
    const imported = cli("import", ["--namespace", "feed"], out.stdout);
    let change;
    for (let m = await feed.next(); !m.done; m = await feed.next()) {
      if (m.value.event.case === "change") {
        change = m.value.event.value;
        break;
      }
    }
    ac.abort();
    expect((await imported).code).toBe(0);
    expect(change?.kind).toBe(SessionChangeKind.CREATED);
    expect(change?.sessionId).toBe("fd-0");
    expect(change?.session?.stats?.turnCount).toBe(4);
  });

  it("reports each record's outcome over the RPC, over every transport", async () => {
    await seed("rpc", 1, "rp");
    const records = [];
    for await (const m of sessions().exportSessions({ namespace: "rpc", selector: { case: "sessionIds", value: { values: ["rp-0", "missing"] } } })) records.push(m.event);
    expect(records.map((e) => e.case)).toEqual(["started", "record", "summary"]);
    expect(records[2].case === "summary" && records[2].value.notFound).toEqual(["missing"]);
    const record = records[1].case === "record" ? records[1].value : undefined;
    for (const [name, transport] of Object.entries(transports(ctx.url))) {
      if (name === "grpc-web" || name.includes("1.1")) continue; // client streaming needs HTTP/2 or Connect over HTTP/2
      async function* msgs(): AsyncGenerator<ImportSessionsRequest> {
        yield create(ImportSessionsRequestSchema, { namespace: `rpc-${name.replace(/[^a-z0-9]/g, "")}`, sourceNamespace: "rpc", onConflict: 1 });
        yield create(ImportSessionsRequestSchema, { record });
        yield create(ImportSessionsRequestSchema, { record });
      }
      const res = await createClient(SessionService, transport).importSessions(msgs());
      expect(res.results.map((r) => r.outcome), name).toEqual([ImportOutcome.IMPORTED, ImportOutcome.SKIPPED]);
      // The copy is another namespace's: its global id names no session of "rpc".
      const elsewhere = [];
      for await (const m of sessions().exportSessions({ namespace: "rpc", selector: { case: "ids", value: { values: [res.results[0].id, "not-an-id"] } } })) elsewhere.push(m.event);
      expect(elsewhere.map((e) => e.case)).toEqual(["started", "summary"]);
      expect(elsewhere[1].case === "summary" && elsewhere[1].value.notFound).toEqual([res.results[0].id, "not-an-id"]);
    }
  });

  it("needs READER to export and WRITER to import, each in the key's own namespaces", async () => {
    await seed("iso", 1, "is");
    const admin = createClient(AdminService, grpcTransport(ctx.url));
    const key = async (role: Role, namespace?: string) => (await admin.createApiKey({ displayName: "export test", role, namespace })).secret;
    await admin.createNamespace({ name: "elsewhere" });
    const reader = await key(Role.READER, "iso");
    const foreignWriter = await key(Role.WRITER, "elsewhere");

    const exported = await cli("export", ["--namespace", "iso"], "", reader);
    expect(exported.code).toBe(0);
    const denied = await cli("import", ["--namespace", "iso", "--on-conflict", "skip"], exported.stdout, reader);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/permission_denied|PERMISSION_DENIED|permission/i);
    const foreign = await cli("export", ["--namespace", "iso"], "", foreignWriter);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/permission/i);
    // A key of one namespace imports into its own, wherever the records came from.
    const ownImport = await cli("import", ["--namespace", "elsewhere"], exported.stdout, foreignWriter);
    expect(ownImport.stderr).toContain("1 imported");
    expect(ownImport.code).toBe(0);
  });
});
