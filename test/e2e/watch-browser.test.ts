/**
 * WatchSession in Chromium, through Connect-Web: the console's session detail follows a session live
 * while a backend appends turns over gRPC, and after a reload resumes from the position it kept in
 * sessionStorage, with every turn shown exactly once, in order; and the ChatKit-style page on another
 * origin watches its own session with the session's client secret.
 */
import { createClient, type Client } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { freePort } from "../../src/net/free-port.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { bundle, newPage, noBrowser, screenshot, serveStatic, useBrowser } from "../setup/browser.js";
import { PAGE_HTML, PAGE_SCRIPT } from "../setup/chatkit-page.js";
import { grpcTransport, useServer } from "../setup/server.js";

/** Bound of every wait for the page: generous, since it is no deadline, only a way to fail clearly. */
const PATIENCE_MS = 30_000;
const poll = <T>(actual: () => T | Promise<T>) => expect.poll(actual, { timeout: PATIENCE_MS });

// The ChatKit-style page's origin must be known before sessiond starts (SESSIOND_CORS_ORIGINS).
const pagePort = await freePort();

describe.skipIf(noBrowser)("WatchSession in Chromium", { timeout: 4 * PATIENCE_MS }, () => {
  const ctx = useServer({ SESSIOND_CORS_ORIGINS: `http://127.0.0.1:${pagePort}` });
  const b = useBrowser();
  let backend: Client<typeof SessionService>;

  beforeAll(() => {
    backend = createClient(SessionService, grpcTransport(ctx.url));
  });

  /** The backend appends one turn per line, one call each: "bot: text" as bot, any other as alice. */
  async function append(id: string, ...lines: string[]) {
    for (const line of lines) {
      const bot = line.startsWith("bot: ");
      const { turns } = await backend.appendTurns({ id, turns: [{ participantId: bot ? "bot" : "alice", content: bot ? line.slice(5) : line }] });
      expect(turns).toHaveLength(1);
    }
  }

  describe("the console's session detail", () => {
    let page: Page;
    let errors: string[];
    let id: string;

    /** The turns the detail shows: [seq, text] in page order. */
    const shownTurns = () =>
      page.getByTestId("session-detail").getByTestId("turn").evaluateAll((lis) => lis.map((li) => [Number(li.getAttribute("data-seq")), li.querySelector(".turn-text")?.textContent ?? ""]));
    const live = () => page.getByTestId("detail-live");
    /** Waits until the detail's watch has caught up and is live. */
    const isLive = () => page.locator('[data-testid="detail-live"][data-state="live"]').waitFor({ timeout: PATIENCE_MS });
    /** The position the page keeps for the session. */
    const stored = () => page.evaluate((key) => sessionStorage.getItem(key), `sessiond.console.watch.${id}`);
    /** Every turn the session holds, as the page shows them: [seq, content]. */
    const held = async () => (await backend.listTurns({ id, pageSize: 1000 })).turns.map((t) => [Number(t.seq), t.content]);

    beforeAll(async () => {
      const { session } = await backend.createSession({
        namespace: "live",
        sessionId: "live-chat",
        user: "alice",
        participants: [
          { participantId: "alice", kind: ParticipantKind.USER },
          { participantId: "bot", kind: ParticipantKind.AGENT },
        ],
      });
      id = session!.id;
      await append(id, "hello", "bot: hi, how can I help?");
      ({ page, errors } = await newPage(b.browser));
    });
    afterAll(() => page?.context().close());

    it("shows each turn a backend appends over gRPC as it lands, and changes of the session", async () => {
      await page.goto(`${ctx.url}/console`);
      await page.getByTestId("api-key").fill(TEST_ADMIN_KEY);
      await page.getByTestId("sign-in").click();
      await page.getByTestId("sessions-table").waitFor();
      await page.getByTestId("namespace").fill("live");
      await page.getByTestId("namespace").press("Enter");
      await page.locator('[data-session-id="live-chat"]').click();
      await isLive();
      expect(await shownTurns()).toEqual([
        [1, "hello"],
        [2, "hi, how can I help?"],
      ]);

      for (const [i, content] of ["my order is late", "bot: which order?", "order 1042"].entries()) {
        await append(id, content);
        await poll(shownTurns).toEqual(await held());
        expect(await shownTurns()).toHaveLength(3 + i);
      }
      expect(await page.getByTestId("detail-turns").locator("h3").textContent()).toBe("Turns (5)");
      await poll(() => page.getByTestId("detail-fields").innerText()).toContain("2 participants · 5 turns");

      // Changes other than turns: a participant bound, labels set.
      await backend.bindParticipant({ id, participantId: "carol", kind: ParticipantKind.USER, displayName: "Carol" });
      await backend.updateSession({ session: { id, labels: { priority: "high" } }, updateMask: { paths: ["labels"] } });
      await poll(() => page.getByTestId("participant").allInnerTexts()).toEqual([expect.stringMatching(/^alice\s/), expect.stringMatching(/^bot\s/), expect.stringMatching(/^carol\s+user\s+Carol/)]);
      await poll(() => page.getByTestId("detail-fields").innerText()).toMatch(/priority=high[\s\S]*3 participants · 5 turns/);
      await screenshot(page, "session-detail-live");

      // What the page keeps is where its watch stands.
      const position = await live().getAttribute("data-position");
      expect(JSON.parse((await stored()) ?? "{}")).toEqual({ seq: "5", change: position!.split(":")[1] });
      expect(position).toMatch(/^5:\d+$/);
    });

    it("resumes after a reload from the position it kept: turns appended meanwhile appear once, none missing", async () => {
      const before = await live().getAttribute("data-position");
      // Turns that land after the reloaded page listed the turns and before its watch starts: only the
      // watch, resumed from the kept position, can bring them.
      let heldBack: Promise<void> | undefined;
      await page.route(`${ctx.url}/sessiond.v1.SessionService/WatchSession`, async (route) => {
        heldBack ??= append(id, "sent during the reload", "bot: also during the reload");
        // Its failure fails the test below; the page's call goes on either way.
        await heldBack.catch(() => undefined);
        await route.continue();
      });
      await page.reload();
      await isLive();
      await page.unroute(`${ctx.url}/sessiond.v1.SessionService/WatchSession`);
      expect(heldBack).toBeDefined();
      await heldBack;
      expect(await live().getAttribute("data-from")).toBe(before);
      await poll(shownTurns).toEqual(await held());
      expect(await shownTurns()).toHaveLength(7);

      await append(id, "after the reload");
      await poll(shownTurns).toEqual(await held());

      // Away from the page (its watch closed), turns and a participant land; back, the page lists the
      // turns and its watch replays them from the kept position: shown once each, the participant too.
      const left = await live().getAttribute("data-position");
      await page.goto("about:blank");
      await append(id, "while away", "bot: still away");
      await backend.bindParticipant({ id, participantId: "dave", kind: ParticipantKind.USER });
      await page.goto(`${ctx.url}/console`);
      await isLive();
      expect(await live().getAttribute("data-from")).toBe(left);
      await poll(() => page.getByTestId("participant").count()).toBe(4);
      await append(id, "bot: back live");
      await poll(shownTurns).toEqual(await held());

      const turns = await shownTurns();
      expect(turns.map(([seq]) => seq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
      expect(await page.getByTestId("detail-turns").locator("h3").textContent()).toBe("Turns (11)");
      await screenshot(page, "session-detail-resumed");
      expect(errors).toEqual([]);
    });

    it("shows the session cancelled, then says that it was deleted, and stops watching", async () => {
      await backend.cancelSession({ id });
      await poll(() => page.getByTestId("detail-fields").innerText()).toMatch(/State\s+cancelled/);
      await backend.deleteSession({ id });
      await page.locator('[data-testid="detail-live"][data-state="deleted"]').waitFor({ timeout: PATIENCE_MS });
      expect(await page.getByTestId("detail-deleted").textContent()).toMatch(/^This session was deleted \(.+\), with everything it held\.$/);
      expect(await stored()).toBeNull();
      expect(errors).toEqual([]);
    });
  });

  describe("the ChatKit-style page on another origin", () => {
    let site: Awaited<ReturnType<typeof serveStatic>>;

    beforeAll(async () => {
      const script = await bundle(PAGE_SCRIPT, import.meta.dirname);
      site = await serveStatic({ "/": { type: "text/html; charset=utf-8", body: PAGE_HTML }, "/chat.js": { type: "text/javascript; charset=utf-8", body: script } }, pagePort);
    });
    afterAll(() => site?.close());

    it("watches its own session with its client secret and shows a turn the backend appends", async () => {
      const { session, clientSecret } = await backend.createSession({
        namespace: "web",
        sessionId: "web-live",
        user: "alice",
        maxRequestsPerMinute: 100,
        participants: [
          { participantId: "alice", kind: ParticipantKind.USER },
          { participantId: "bot", kind: ParticipantKind.AGENT },
        ],
      });
      const { page, errors } = await newPage(b.browser);
      await page.goto(`${site.origin}/#${new URLSearchParams({ api: ctx.url, secret: clientSecret!.value, watch: "1" })}`);
      await page.locator("#result:not(:empty)").waitFor({ timeout: PATIENCE_MS });
      await page.locator('#watch[data-state="live"]').waitFor({ timeout: PATIENCE_MS });
      expect(await page.locator("#turns li").allTextContents()).toEqual(["alice: Hello from Chromium", "alice: Is anyone there?"]);

      await append(session!.id, "bot: Yes, I am here.");
      await poll(() => page.locator("#turns li").allTextContents()).toEqual(["alice: Hello from Chromium", "alice: Is anyone there?", "bot: Yes, I am here."]);
      expect(await page.locator("#turns li").last().getAttribute("data-seq")).toBe("3");
      await screenshot(page, "browser-client-live");
      expect(errors).toEqual([]);
      await page.context().close();
    });
  });
});
