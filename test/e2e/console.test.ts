/**
 * The admin console at /console, in Chromium against a real server: sign-in, the sessions list with
 * filters and pages, a session in detail, and bulk deletes (by filter, cancelled midway, by selection)
 * whose counters must agree with the database.
 */
import { randomBytes } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { AnnotatorKind, SpanKind, StatusCode } from "../../gen/sessiond/v1/trace_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { newPage, noBrowser, screenshot, useBrowser } from "../setup/browser.js";
import { countContents, seedContents, seedSessions } from "../setup/seed.js";
import { grpcTransport, useServer } from "../setup/server.js";

/** What every seeded session of the bulk namespace holds, to check that none is half-deleted. */
const SHAPE = { participants: 2, turnsPerParticipant: 2, traces: 1, spansPerTrace: 3, annotationsPerTrace: 1 };
const WHOLE = { sessions: 1, participants: 2, turns: 4, traces: 1, spans: 3, annotations: 1 };
const BULK_NS = "bulk";
/** A session with more turns than the detail shows (it shows the last 100), in a namespace of its own. */
const LONG = { namespace: "long", sessionId: "long-chat", turns: 130 };
/** Bound of every wait for the page: generous, since it is no deadline, only a way to fail clearly. */
const PATIENCE_MS = 30_000;

/** Text of an element by test id. */
const text = async (page: Page, testId: string) => (await page.getByTestId(testId).textContent())?.trim() ?? "";
/** "1,234" -> 1234; the first number of a text like "1,240 / 2,000 (62%)". */
const firstNumber = (s: string) => Number(/[\d,]+/.exec(s)?.[0].replaceAll(",", "") ?? NaN);
const rows = (page: Page) => page.getByTestId("session-row");
/**
 * Polls until the expectation holds. Vitest's default gives up after 1 s, which a browser on a busy
 * machine can miss; this bound only turns a hang into a failure.
 */
const poll = <T>(actual: () => T | Promise<T>) => expect.poll(actual, { timeout: PATIENCE_MS });

/** Fills the namespace field and commits it (Enter), which reloads the list. */
async function openNamespace(page: Page, ns: string) {
  await page.getByTestId("namespace").fill(ns);
  await page.getByTestId("namespace").press("Enter");
}

/** Starts a bulk delete from a toolbar button and confirms it in the dialog; returns the dialog's text. */
async function deleteAndConfirm(page: Page, button: "delete-matching" | "delete-selected") {
  await page.getByTestId(button).click();
  const dialog = page.getByTestId("confirm-dialog");
  await dialog.waitFor();
  const question = await text(page, "confirm-text");
  await page.getByTestId("confirm-delete").click();
  return question;
}

/** Waits for the bulk-delete panel to reach `state` (done, cancelled, failed). */
const bulkState = (page: Page, state: string, timeout = PATIENCE_MS) => page.locator(`[data-testid="bulk-panel"][data-state="${state}"]`).waitFor({ timeout });

/** The counters the panel shows. */
async function counters(page: Page) {
  const bar = page.getByTestId("bulk-progress");
  return {
    completed: await text(page, "bulk-completed"),
    deleted: firstNumber(await text(page, "bulk-deleted")),
    notFound: firstNumber(await text(page, "bulk-not-found")),
    failed: firstNumber(await text(page, "bulk-failed")),
    bar: [Number(await bar.getAttribute("value")), Number(await bar.getAttribute("max"))],
  };
}

describe.skipIf(noBrowser)("the admin console", { timeout: 4 * PATIENCE_MS }, () => {
  const ctx = useServer();
  const b = useBrowser();
  let page: Page;
  let errors: string[];

  /**
   * chat-1: two participants, three turns, a trace of four spans and an annotation; chat-2, chat-3 plain.
   * long-chat (namespace long): created with its two participants, and LONG.turns turns.
   */
  beforeAll(async () => {
    const sessions = createClient(SessionService, grpcTransport(ctx.url));
    const traces = createClient(TraceService, grpcTransport(ctx.url));
    const ns = "demo";
    const { session } = await sessions.createSession({ namespace: ns, sessionId: "chat-1", user: "alice", labels: { env: "dev", team: "support" }, workflow: { id: "support-bot", version: "3" }, data: { topic: "refund" } });
    await sessions.bindParticipant({ id: session!.id, participantId: "alice", kind: ParticipantKind.USER, displayName: "Alice" });
    await sessions.bindParticipant({ id: session!.id, participantId: "bot", kind: ParticipantKind.AGENT, displayName: "Support bot" });
    await sessions.appendTurns({
      id: session!.id,
      turns: [
        { participantId: "alice", content: "Hi, I'd like a refund for order 1042." },
        { participantId: "bot", content: "Sure. Which email is on the order?" },
        { participantId: "alice", content: "alice@example.com" },
      ],
    });
    const traceId = randomBytes(16).toString("hex");
    const [root, llm, tool, db] = Array.from({ length: 4 }, () => randomBytes(8).toString("hex"));
    const t0 = Date.now() - 60_000;
    const at = (ms: number) => timestampFromDate(new Date(t0 + ms));
    await traces.recordSpans({
      namespace: ns,
      session: session!.id,
      spans: [
        { traceId, spanId: root, name: "agent.run", kind: SpanKind.SERVER, startTime: at(0), endTime: at(900), statusCode: StatusCode.OK },
        { traceId, spanId: llm, parentSpanId: root, name: "llm.chat", kind: SpanKind.CLIENT, startTime: at(20), endTime: at(400) },
        { traceId, spanId: tool, parentSpanId: root, name: "tool.lookup_order", kind: SpanKind.CLIENT, startTime: at(420), endTime: at(800), statusCode: StatusCode.ERROR, statusMessage: "order 1042 not found" },
        { traceId, spanId: db, parentSpanId: tool, name: "db.query", kind: SpanKind.CLIENT, startTime: at(430), endTime: at(780) },
      ],
    });
    await traces.annotate({ namespace: ns, target: { target: { case: "session", value: session!.id } }, name: "helpfulness", annotatorKind: AnnotatorKind.HUMAN, label: "good", score: 0.9, explanation: "Asked for the one missing detail." });
    await sessions.createSession({ namespace: ns, sessionId: "chat-2", user: "bob", labels: { env: "prod" } });
    await sessions.createSession({ namespace: ns, sessionId: "chat-3", user: "alice", labels: { env: "dev" } });
    await sessions.cancelSession({ namespace: ns, sessionId: "chat-3" });
    const long = await sessions.createSession({
      namespace: LONG.namespace,
      sessionId: LONG.sessionId,
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    for (let from = 1; from <= LONG.turns; from += 100) {
      const n = Math.min(100, LONG.turns - from + 1);
      await sessions.appendTurns({ id: long.session!.id, turns: Array.from({ length: n }, (_, i) => ({ participantId: (from + i) % 2 ? "alice" : "bot", content: `message ${from + i}` })) });
    }

    ({ page, errors } = await newPage(b.browser));
  });

  it("serves the page and its assets without caching, and refuses other methods", async () => {
    for (const [path, type] of [["/console", "text/html"], ["/console/app.js", "text/javascript"], ["/console/app.css", "text/css"]]) {
      const res = await fetch(ctx.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toContain(type);
      expect(res.headers.get("cache-control"), path).toBe("no-store");
    }
    expect((await fetch(`${ctx.url}/console`)).headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect((await fetch(`${ctx.url}/console/`, { redirect: "manual" })).headers.get("location")).toBe("/console");
    expect((await fetch(`${ctx.url}/console`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${ctx.url}/console`, { method: "HEAD" })).status).toBe(200);
  });

  it("shows the server's UNAUTHENTICATED for a wrong key, then signs in with a good one", async () => {
    await page.goto(`${ctx.url}/console`);
    await page.getByTestId("api-key").waitFor();
    await screenshot(page, "sign-in");

    await page.getByTestId("api-key").fill("sk_not_a_real_key");
    await page.getByTestId("sign-in").click();
    await poll(() => text(page, "signin-error")).toBe("UNAUTHENTICATED: the credential is unknown, revoked or expired");
    expect(await page.getByTestId("session-rows").isVisible()).toBe(false);

    await page.getByTestId("api-key").fill(TEST_ADMIN_KEY);
    await page.getByTestId("sign-in").click();
    await page.getByTestId("sessions-table").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('sessiond.console.key')")).toBe(TEST_ADMIN_KEY);
  });

  it("lists a namespace's sessions with their counts, and filters them by user, state and label", async () => {
    await openNamespace(page, "demo");
    await poll(() => rows(page).count()).toBe(3);
    expect(await rows(page).evaluateAll((trs) => trs.map((tr) => (tr as unknown as { innerText: string }).innerText.split("\t").map((c) => c.trim())))).toEqual([
      ["", "chat-3", "alice", "cancelled", expect.any(String), "0", "0", "0"],
      ["", "chat-2", "bob", "active", expect.any(String), "0", "0", "0"],
      ["", "chat-1", "alice", "active", expect.any(String), "2", "3", "1"],
    ]);
    const ids = () => rows(page).evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-session-id")));

    await page.getByTestId("filter-user").fill("alice");
    await page.getByTestId("apply-filters").click();
    await poll(ids).toEqual(["chat-3", "chat-1"]);
    await page.getByTestId("filter-state").selectOption({ label: "Active" });
    await page.getByTestId("apply-filters").click();
    await poll(ids).toEqual(["chat-1"]);
    await page.getByTestId("clear-filters").click();
    await poll(ids).toEqual(["chat-3", "chat-2", "chat-1"]);
    await page.getByTestId("filter-labels").fill("env=prod");
    await page.getByTestId("apply-filters").click();
    await poll(ids).toEqual(["chat-2"]);
    await page.getByTestId("filter-labels").fill("env");
    await page.getByTestId("apply-filters").click();
    await poll(() => text(page, "list-error")).toBe('labels: "env" is not key=value');
    await page.getByTestId("clear-filters").click();
    await poll(ids).toEqual(["chat-3", "chat-2", "chat-1"]);
    await screenshot(page, "list");
  });

  it("opens a session: fields, participants, turns, the trace as a span tree, and its annotation", async () => {
    await page.locator('[data-session-id="chat-1"]').click();
    const detail = page.getByTestId("session-detail");
    await poll(() => text(page, "detail-title")).toBe("chat-1");
    await poll(() => detail.getByTestId("span").count()).toBe(4);
    // The detail follows the session live: read it once its watch has caught up (it may draw again until then).
    await page.locator('[data-testid="detail-live"][data-state="live"]').waitFor({ timeout: 20_000 });

    const fields = await detail.getByTestId("detail-fields").innerText();
    for (const s of ["demo", "alice", "active", "support-bot @ 3", "env=dev", "team=support", "2 participants · 3 turns · 1 trace · 4 spans · 0 memories"]) expect(fields).toContain(s);
    expect(await detail.getByTestId("participant").allInnerTexts()).toEqual([expect.stringMatching(/^alice\s+user\s+Alice/), expect.stringMatching(/^bot\s+agent\s+Support bot/)]);
    expect(await detail.getByTestId("turn").allInnerTexts()).toEqual([
      expect.stringMatching(/^#1 alice \(user\)\s+Hi, I'd like a refund for order 1042\.$/),
      expect.stringMatching(/^#2 bot \(assistant\)\s+Sure\. Which email is on the order\?$/),
      expect.stringMatching(/^#3 alice \(user\)\s+alice@example\.com$/),
    ]);
    expect(await detail.getByTestId("trace").locator("summary").innerText()).toMatch(/^agent\.run · 4 spans · 900 ms error [0-9a-f]{32}$/);
    const spans = await detail.getByTestId("span").evaluateAll((els) => els.map((el) => [Number(el.getAttribute("data-depth")), (el.textContent ?? "").replace("└ ", "")]));
    expect(spans).toEqual([
      [0, "agent.run server · 900 ms"],
      [1, "llm.chat client · 380 ms"],
      [1, "tool.lookup_order client · 380 ms · error: order 1042 not found"],
      [2, "db.query client · 350 ms"],
    ]);
    expect(await detail.getByTestId("annotation").innerText()).toMatch(/^helpfulness\s*good score 0\.9 · human · .+\nAsked for the one missing detail\.$/);
    await screenshot(page, "session-detail");
    await detail.getByTestId("detail-traces").scrollIntoViewIfNeeded();
    await screenshot(page, "session-detail-traces");
    await detail.getByTestId("detail-close").click();
    expect(await detail.isVisible()).toBe(false);
  });

  it("shows the latest turns of a long session, oldest of them first, and says how many it shows", async () => {
    await openNamespace(page, LONG.namespace);
    await poll(() => rows(page).count()).toBe(1);
    await page.locator(`[data-session-id="${LONG.sessionId}"]`).click();
    const detail = page.getByTestId("session-detail");
    await poll(() => text(page, "detail-title")).toBe(LONG.sessionId);
    await poll(() => detail.getByTestId("turn").count()).toBe(100);
    const turns = await detail.getByTestId("turn").allInnerTexts();
    expect(turns[0]).toMatch(new RegExp(`^#${LONG.turns - 99} \\S+ \\(\\w+\\)\\s+message ${LONG.turns - 99}$`));
    expect(turns[99]).toMatch(new RegExp(`^#${LONG.turns} bot \\(assistant\\)\\s+message ${LONG.turns}$`));
    expect(await text(page, "turns-shown")).toBe(`Showing the last 100 of ${LONG.turns} turns.`);
    expect(await detail.getByTestId("detail-turns").locator("h3").textContent()).toBe(`Turns (${LONG.turns})`);
    expect(await detail.getByTestId("participant").count()).toBe(2);
    await detail.getByTestId("detail-turns").scrollIntoViewIfNeeded();
    await screenshot(page, "session-detail-last-turns");
    await detail.getByTestId("detail-close").click();
  });

  it("folds archived turns under their summary, and folds them live when the open session is compacted", async () => {
    const sessions = createClient(SessionService, grpcTransport(ctx.url));
    const { session } = await sessions.createSession({
      namespace: "archive",
      sessionId: "compacted",
      participants: [
        { participantId: "alice", kind: ParticipantKind.USER },
        { participantId: "bot", kind: ParticipantKind.AGENT },
      ],
    });
    const id = session!.id;
    await sessions.appendTurns({ id, turns: Array.from({ length: 8 }, (_, i) => ({ participantId: i % 2 ? "bot" : "alice", content: `message ${i + 1}` })) });
    await sessions.compactSession({ id, upToSeq: 4n, summary: "the first four" });

    await openNamespace(page, "archive");
    await poll(() => rows(page).count()).toBe(1);
    await page.locator('[data-session-id="compacted"]').click();
    const detail = page.getByTestId("session-detail");
    await poll(() => text(page, "detail-title")).toBe("compacted");
    await page.locator('[data-testid="detail-live"][data-state="live"]').waitFor({ timeout: 20_000 });
    const list = detail.getByTestId("detail-turns");
    const seqsShown = () => list.locator(":scope > ol > li").evaluateAll((els) => els.map((el) => `${el.getAttribute("data-testid")}:${el.getAttribute("data-seq")}`));
    expect(await seqsShown()).toEqual(["summary-turn:4", "turn:5", "turn:6", "turn:7", "turn:8"]);
    expect(await list.getByTestId("summary-turn").innerText()).toMatch(/^#4 summary \(caller\) of turns up to #4\s+the first four/);
    expect(await detail.getByTestId("detail-fields").innerText()).toContain("4 turns archived up to #4 by 1 compaction");
    expect(await text(page, "turns-shown")).toBe("Showing 4 of 4 live turns; 4 archived under the summary.");
    // Folded until opened; opened, the archived turns in order.
    expect(await list.getByTestId("archived-turns").isVisible()).toBe(false);
    await list.getByTestId("summary-fold").locator("summary").click();
    await poll(() => list.getByTestId("archived-turns").getByTestId("turn").allInnerTexts()).toEqual([1, 2, 3, 4].map((n) => expect.stringMatching(new RegExp(`^#${n} \\S+ \\(\\w+\\)\\s+message ${n}$`))));
    await screenshot(page, "session-detail-compacted");

    // Compacted while open: the watch folds turns 5 and 6 (and the first summary) under the new summary.
    await sessions.compactSession({ id, upToSeq: 6n, summary: "the first six" });
    await poll(seqsShown).toEqual(["summary-turn:6", "turn:7", "turn:8"]);
    expect(await list.getByTestId("summary-turn").innerText()).toContain("the first six");
    await poll(() => text(page, "turns-shown")).toBe("Showing 2 of 2 live turns; 6 archived under the summary.");
    await list.getByTestId("summary-fold").locator("summary").click();
    await poll(() => list.getByTestId("archived-turns").locator(":scope > li").evaluateAll((els) => els.map((el) => `${el.getAttribute("data-testid")}:${el.getAttribute("data-seq")}`))).toEqual([
      "turn:1",
      "turn:2",
      "turn:3",
      "turn:4",
      "archived-summary:4",
      "turn:5",
      "turn:6",
    ]);
    await detail.getByTestId("detail-close").click();
  });

  it("bulk-deletes 2,000 sessions matching the filter, with the bar at 100% and 2,000 deleted", async () => {
    const uuids = await seedSessions(ctx.db.dataSource, 2000, BULK_NS);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    await openNamespace(page, BULK_NS);
    await poll(() => rows(page).count()).toBe(50);
    expect(await text(page, "page-info")).toBe("Page 1 · sessions 1–50");
    const firstOnPage1 = await rows(page).first().getAttribute("data-id");
    await page.getByTestId("next-page").click();
    await poll(() => text(page, "page-info")).toBe("Page 2 · sessions 51–100");
    expect(await rows(page).first().getAttribute("data-id")).not.toBe(firstOnPage1);

    const question = await deleteAndConfirm(page, "delete-matching");
    expect(question).toBe('Delete ALL sessions of namespace "bulk" (no filter is set)?');
    await bulkState(page, "done");
    expect(await counters(page)).toEqual({ completed: "2,000 / 2,000 (100%)", deleted: 2000, notFound: 0, failed: 0, bar: [2000, 2000] });
    expect(await text(page, "bulk-status")).toMatch(/^Done in .+ With the sessions went 4,000 participants, 8,000 turns, 2,000 traces, 6,000 spans and 2,000 annotations\.$/);
    await poll(() => page.getByTestId("empty").isVisible()).toBe(true);
    await screenshot(page, "bulk-delete-done");
    expect(await countContents(ctx.db.dataSource, uuids)).toEqual({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 });
  });

  it("cancels a bulk delete midway, and the counters it ends with agree with the database", async () => {
    const uuids = await seedSessions(ctx.db.dataSource, 2000, BULK_NS);
    await seedContents(ctx.db.dataSource, uuids, SHAPE);
    await page.getByTestId("refresh").click();
    await poll(() => rows(page).count()).toBe(50);
    await page.getByTestId("bulk-close").click();

    const batch = 2;
    await page.getByTestId("batch-size").fill(String(batch));
    await deleteAndConfirm(page, "delete-matching");
    await poll(async () => firstNumber(await text(page, "bulk-completed"))).toBeGreaterThan(0);
    await screenshot(page, "bulk-delete-in-progress");
    await page.getByTestId("bulk-cancel").click();
    await bulkState(page, "cancelled");
    await screenshot(page, "bulk-delete-cancelled");

    const shown = await counters(page);
    const status = await text(page, "bulk-status");
    const left = (await countContents(ctx.db.dataSource, uuids)).sessions;
    expect(left).toBeGreaterThan(0); // the cancel stopped it
    // The operation's own counters, read with its end: exact, whatever was in flight when the cancel came.
    expect(shown.deleted).toBe(2000 - left);
    expect(shown.deleted % batch).toBe(0);
    expect(status).toBe(`Cancelled: ${shown.deleted.toLocaleString("en-US")} deleted, ${left.toLocaleString("en-US")} left untouched.`);
    expect(shown).toMatchObject({ completed: `${(2000 - left).toLocaleString("en-US")} / 2,000 (${Math.floor(((2000 - left) / 2000) * 100)}%)`, notFound: 0, failed: 0 });

    // Nothing is half-deleted: each session is whole or gone with everything under it.
    const [{ ids }] = await ctx.db.dataSource.query("SELECT coalesce(array_agg(id), '{}') AS ids FROM sessions WHERE id = ANY($1)", [uuids]);
    const gone = uuids.filter((u) => !(ids as string[]).includes(u));
    expect(await countContents(ctx.db.dataSource, gone)).toEqual({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 });
    const kept = await countContents(ctx.db.dataSource, ids);
    expect(kept).toEqual({ sessions: left, participants: left * WHOLE.participants, turns: left * WHOLE.turns, traces: left * WHOLE.traces, spans: left * WHOLE.spans, annotations: left * WHOLE.annotations, memories: 0 });

    // The list was refreshed: it shows what is left.
    await poll(() => rows(page).count()).toBe(Math.min(50, left));
  });

  it("re-attaches the bulk-delete panel after a reload: 5,000 sessions, the bar goes on to 100% with exact counts", async () => {
    const uuids = await seedSessions(ctx.db.dataSource, 5000, "reload");
    await openNamespace(page, "reload");
    await poll(() => rows(page).count()).toBe(50);
    await page.getByTestId("bulk-close").click();
    await page.getByTestId("batch-size").fill("10");
    await deleteAndConfirm(page, "delete-matching");
    await poll(async () => firstNumber(await text(page, "bulk-completed"))).toBeGreaterThan(0);
    const operationId = await page.getByTestId("bulk-panel").getAttribute("data-operation-id");
    const before = firstNumber(await text(page, "bulk-completed"));
    expect(before).toBeLessThan(5000);
    await page.reload();
    // The same tab keeps its key and the operation it followed: the panel is back, following it.
    await page.locator('[data-testid="bulk-panel"][data-state="running"], [data-testid="bulk-panel"][data-state="done"]').waitFor({ timeout: PATIENCE_MS });
    expect(await page.getByTestId("bulk-panel").getAttribute("data-operation-id")).toBe(operationId);
    await bulkState(page, "done", 120_000);
    await screenshot(page, "bulk-delete-reattached");
    expect(await counters(page)).toEqual({ completed: "5,000 / 5,000 (100%)", deleted: 5000, notFound: 0, failed: 0, bar: [5000, 5000] });
    expect((await countContents(ctx.db.dataSource, uuids)).sessions).toBe(0);
    await openNamespace(page, BULK_NS);
  }, 180_000);

  it("deletes the sessions selected with 'select all on this page'", async () => {
    const before = Number((await ctx.db.dataSource.query("SELECT count(*)::int AS n FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1", [BULK_NS]))[0].n);
    expect(before).toBeGreaterThan(0);
    await page.getByTestId("bulk-close").click();
    await page.getByTestId("batch-size").fill("500");
    await page.getByTestId("select-all").check();
    const onPage = Math.min(50, before);
    await poll(() => text(page, "delete-selected")).toBe(`Delete selected (${onPage})`);
    const question = await deleteAndConfirm(page, "delete-selected");
    expect(question).toBe(`Delete the ${onPage} selected sessions of namespace "bulk"?`);
    await bulkState(page, "done");
    expect(await counters(page)).toMatchObject({ completed: `${onPage} / ${onPage} (100%)`, deleted: onPage, notFound: 0, failed: 0 });
    const after = Number((await ctx.db.dataSource.query("SELECT count(*)::int AS n FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = $1", [BULK_NS]))[0].n);
    expect(after).toBe(before - onPage);
    expect(errors).toEqual([]);
  });

  it("lists the namespace's operations with their state and progress, and offers its namespaces to pick from", async () => {
    await page.getByTestId("operations-refresh").click();
    const states = () => page.getByTestId("operation-row").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-state")));
    // Newest first: the selection deleted last, the cancelled one, the 2,000 of the first test.
    await poll(states).toEqual(["succeeded", "cancelled", "succeeded"]);
    expect(await page.getByTestId("operation-progress").first().textContent()).toMatch(/^\d+ \/ \d+$/);
    expect(await page.getByTestId("namespace-list").locator("option").evaluateAll((os) => os.map((o) => o.getAttribute("value")))).toEqual(expect.arrayContaining(["bulk", "reload", "long"]));
  });

  it("shows the namespace's retention policy (the default first) and saves one", async () => {
    await poll(() => text(page, "retention-status")).toBe("The server's default (this namespace has no policy of its own).");
    await page.getByTestId("retention-max-idle").fill("30");
    await page.getByTestId("retention-hold-labels").fill("legal-hold, audit");
    await page.getByTestId("retention-save").click();
    await poll(() => text(page, "retention-status")).toMatch(/^This namespace's own policy, set /);
    const { policy } = await createClient(AdminService, grpcTransport(ctx.url)).getRetentionPolicy({ namespace: BULK_NS });
    expect(policy).toMatchObject({ maxIdle: { seconds: 30n * 86_400n }, holdLabels: ["legal-hold", "audit"], purgeMemories: false });
    expect(policy?.maxAge).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it("signs out and forgets the key", async () => {
    await page.getByTestId("sign-out").click();
    await page.getByTestId("api-key").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('sessiond.console.key')")).toBeNull();
  });
});
