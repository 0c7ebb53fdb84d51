/**
 * SearchTurns over a real server (Connect over HTTP/1.1, gRPC over HTTP/2): ranking, the web-search
 * syntax, every filter, keyset paging, archived turns, namespace isolation and bad input.
 */
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService, type SearchTurnsRequestSchema, type TurnHit } from "../../gen/sessiond/v1/session_service_pb.js";
import { transports, useServer } from "../setup/server.js";

const ctx = useServer();
type Req = Omit<Exclude<MessageInitShape<typeof SearchTurnsRequestSchema>, { $typeName: string }>, "namespace">;

/** Hits as "session/seq". */
const keys = (hits: TurnHit[]) => hits.map((h) => `${h.sessionId}/${h.seq}`);

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

describe.each(["connect/http1.1", "grpc/http2"])("SearchTurns over %s", (name) => {
  const ns = `search-${name.replace(/[^a-z0-9]/g, "")}`;
  const client = () => createClient(SessionService, transports(ctx.url)[name]);
  const search = (req: Req, namespace = ns) => client().searchTurns({ namespace, ...req });
  let between: Date;
  let s1: string;

  /** A session with alice (user) and bot (agent) that says `lines` in turn, alice first. */
  async function chat(sessionId: string, labels: Record<string, string>, lines: string[], namespace = ns) {
    const sessions = client();
    const { session } = await sessions.createSession({
      namespace,
      sessionId,
      labels,
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    const r = await sessions.appendTurns({ id: session!.id, turns: lines.map((content, i) => ({ participantId: i % 2 ? "bot" : "alice", content })) });
    return { id: session!.id, createTime: timestampDate(r.turns[0].createTime!) };
  }

  it("seeds two conversations", async () => {
    ({ id: s1 } = await chat("s1", { team: "infra" }, ["The deployment failed with a timeout error", "Deploying again: the deploy of this deployment raised its timeout", "Thanks, 2 < 3 & 4 > 1: connection refused earlier <b>today</b>"]));
    // Turns of s2 are created strictly after every turn of s1 (each append is its own transaction, later).
    const s2 = await chat("s2", { team: "web" }, ["refused connection to the database", "The payment went through", "Ask for a refund of the payment"]);
    between = s2.createTime;
    await chat("elsewhere", { team: "infra" }, ["deploy deploy deploy"], `${ns}-other`);
  });

  it("ranks the turns that say it more first, with highlighted snippets and their sessions", async () => {
    const { hits, nextPageToken } = await search({ query: "deploy" });
    expect(keys(hits)).toEqual(["s1/2", "s1/1"]);
    expect(hits[0].rank).toBeGreaterThan(hits[1].rank);
    expect(nextPageToken).toBe("");
    expect(hits[0]).toMatchObject({ sessionId: "s1", participantId: "bot", role: "assistant", archived: false });
    expect(hits.map((h) => h.id)).toEqual([s1, s1]);
    // Stemmed: "deploy" finds "Deploying" and "deployment"; each matched word between U+E000 and U+E001.
    expect(hits[0].snippet).toContain("\uE000Deploying\uE001");
    expect(hits[0].snippet).toContain("\uE000deployment\uE001");
    expect(hits[1].snippet).toBe("The \uE000deployment\uE001 failed with a timeout error");
  });

  it("leaves HTML-like tags out of snippets and keeps other text as it is (for the caller to escape)", async () => {
    const { hits } = await search({ query: "refused earlier" });
    expect(hits).toHaveLength(1);
    expect(hits[0].snippet).toMatch(/^Thanks, 2 < 3 & 4 > 1: connection \uE000refused\uE001 \uE000earlier\uE001 +today$/);
  });

  it("takes web-search syntax: all words, quoted phrases, OR and -negation", async () => {
    expect(keys((await search({ query: "connection refused" })).hits).sort()).toEqual(["s1/3", "s2/1"]);
    expect(keys((await search({ query: '"connection refused"' })).hits)).toEqual(["s1/3"]);
    expect(keys((await search({ query: "payment" })).hits).sort()).toEqual(["s2/2", "s2/3"]);
    expect(keys((await search({ query: "payment -refund" })).hits)).toEqual(["s2/2"]);
    expect(keys((await search({ query: "timeout or refund" })).hits).sort()).toEqual(["s1/1", "s1/2", "s2/3"]);
  });

  it("filters by the sessions' labels, participant, role and time range", async () => {
    expect(keys((await search({ query: "connection", labels: { team: "web" } })).hits)).toEqual(["s2/1"]);
    expect(keys((await search({ query: "connection", labels: { team: "nobody" } })).hits)).toEqual([]);
    expect(keys((await search({ query: "deploy", participantId: "bot" })).hits)).toEqual(["s1/2"]);
    expect(keys((await search({ query: "deploy", role: "user" })).hits)).toEqual(["s1/1"]);
    expect(keys((await search({ query: "connection", createTimeAfter: timestampFromDate(between) })).hits)).toEqual(["s2/1"]);
    expect(keys((await search({ query: "connection", createTimeBefore: timestampFromDate(between) })).hits)).toEqual(["s1/3"]);
  });

  it("pages through every hit in rank order, without gaps or duplicates", async () => {
    // Turns that say "alpha" 1 to 5 times (ranks tie within each group: the order is then session, seq).
    const lines = Array.from({ length: 25 }, (_, i) => `${Array(1 + (i % 5)).fill("alpha").join(" ")} line ${i}`);
    await chat("pages-a", {}, lines.slice(0, 12));
    await chat("pages-b", {}, lines.slice(12));
    const all = (await search({ query: "alpha", pageSize: 100 })).hits;
    expect(all).toHaveLength(25);
    for (let i = 1; i < all.length; i++) expect(all[i - 1].rank).toBeGreaterThanOrEqual(all[i].rank);
    const paged: TurnHit[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await search({ query: "alpha", pageSize: 7, pageToken });
      paged.push(...page.hits);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBe(4);
    expect(keys(paged)).toEqual(keys(all));
  });

  it("refuses a page token of another query, naming page_token", async () => {
    const { nextPageToken } = await search({ query: "alpha", pageSize: 2 });
    expect(nextPageToken).not.toBe("");
    for (const other of [{ query: "line" }, { query: "alpha", role: "user" }, { query: "alpha", includeArchived: true }]) {
      const e = await codeOf(search({ ...other, pageSize: 2, pageToken: nextPageToken }));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.message).toMatch(/^page_token: .*different request/);
    }
    expect((await codeOf(search({ query: "alpha", pageToken: "x.y" }))).message).toMatch(/^page_token: malformed/);
  });

  it("hides archived turns unless include_archived, and turns of soft-deleted sessions", async () => {
    await chat("archive", {}, ["needle one", "needle two", "needle three"]);
    // CompactSession archives up to compacted_seq; set the state it leaves directly.
    await ctx.db.sql("UPDATE sessions SET compacted_seq = 2 WHERE external_id = 'archive' AND namespace_id = (SELECT id FROM namespaces WHERE name = $1)", [ns]);
    const live = (await search({ query: "needle" })).hits;
    expect(live.map((h) => [h.seq, h.archived])).toEqual([[3n, false]]);
    const all = (await search({ query: "needle", includeArchived: true })).hits;
    expect(all.map((h) => [h.seq, h.archived])).toEqual([
      [1n, true],
      [2n, true],
      [3n, false],
    ]);
    await client().softDeleteSession({ namespace: ns, sessionId: "archive" });
    expect((await search({ query: "needle", includeArchived: true })).hits).toEqual([]);
  });

  it("searches one namespace only", async () => {
    expect(keys((await search({ query: "deploy" }, `${ns}-other`)).hits)).toEqual(["elsewhere/1"]);
    expect(keys((await search({ query: "deploy" })).hits)).not.toContain("elsewhere/1");
    expect((await search({ query: "deploy" }, `${ns}-never-made`)).hits).toEqual([]);
  });

  it("finds nothing, without an error, for a query of stop words or punctuation only", async () => {
    for (const query of ["the and of", "!!! ---", "-the"]) expect((await search({ query })).hits).toEqual([]);
  });

  it("refuses an empty, blank or oversized query, and other bad input, naming the field", async () => {
    const refused = async (req: Req, field: string) => {
      const e = await codeOf(search(req));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.message.startsWith(`${field}: `)).toBe(true);
    };
    await refused({ query: "" }, "query");
    await refused({ query: " \t\n " }, "query");
    await refused({ query: "é".repeat(513) }, "query");
    await refused({ query: "ok\u0000" }, "query");
    await refused({ query: "ok", pageSize: 101 }, "page_size");
    await refused({ query: "ok", pageSize: -1 }, "page_size");
    await refused({ query: "ok", labels: { "bad key": "x" } }, 'labels["bad key"]');
    await refused({ query: "ok", createTimeAfter: timestampFromDate(between), createTimeBefore: timestampFromDate(between) }, "create_time_before");
    await refused({ query: "ok", role: "r".repeat(33) }, "role");
    // 1,024 bytes exactly is accepted.
    expect((await search({ query: "é".repeat(512) })).hits).toEqual([]);
  });
});
