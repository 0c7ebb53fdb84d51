/**
 * ChatKit's flow across origins, in Chromium: a backend creates a session with its API key and hands
 * the session's client secret to a page served from another origin; the page, with Connect-Web and the
 * generated SessionService client, appends and lists turns with that secret. Authorization makes every
 * call a non-simple cross-origin request, so Chromium sends a real CORS preflight first.
 */
import { createClient } from "@connectrpc/connect";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { freePort } from "../../src/net/free-port.js";
import { bundle, newPage, noBrowser, screenshot, serveStatic, useBrowser } from "../setup/browser.js";
import { PAGE_HTML, PAGE_SCRIPT } from "../setup/chatkit-page.js";
import { grpcTransport, useServer } from "../setup/server.js";

/** A preflight Chromium sent, as the DevTools protocol reports it (headers with lower-case names). */
interface Preflight {
  url: string;
  requestHeaders: Record<string, string>;
  status: number;
  responseHeaders: Record<string, string>;
}

/**
 * Records the CORS preflights of `page` through the DevTools protocol (Playwright's own events do not
 * show them): the OPTIONS request, and the headers that went over the wire (the "ExtraInfo" events).
 * Returns a reader.
 */
async function recordPreflights(page: Page): Promise<() => Preflight[]> {
  const byId = new Map<string, Partial<Preflight> & { method?: string }>();
  const entry = (id: string) => byId.get(id) ?? byId.set(id, {}).get(id)!;
  const cdp = await page.context().newCDPSession(page);
  cdp.on("Network.requestWillBeSent", (e) => Object.assign(entry(e.requestId), { method: e.request.method, url: e.request.url }));
  cdp.on("Network.requestWillBeSentExtraInfo", (e) => Object.assign(entry(e.requestId), { requestHeaders: lower(e.headers) }));
  cdp.on("Network.responseReceivedExtraInfo", (e) => Object.assign(entry(e.requestId), { status: e.statusCode, responseHeaders: lower(e.headers) }));
  await cdp.send("Network.enable");
  return () => [...byId.values()].filter((p): p is Preflight & { method: string } => p.method === "OPTIONS" && p.status !== undefined);
}

const lower = (h: Record<string, string> | undefined) => Object.fromEntries(Object.entries(h ?? {}).map(([k, v]) => [k.toLowerCase(), v]));

// The page's origin must be known before sessiond starts (SESSIOND_CORS_ORIGINS).
const pagePort = await freePort();
const pageOrigin = `http://127.0.0.1:${pagePort}`;

describe.skipIf(noBrowser)("a page on another origin with a session's client secret (ChatKit's flow)", { timeout: 90_000 }, () => {
  const ctx = useServer({ SESSIOND_CORS_ORIGINS: pageOrigin });
  const b = useBrowser();
  let site: Awaited<ReturnType<typeof serveStatic>>;

  beforeAll(async () => {
    const script = await bundle(PAGE_SCRIPT, import.meta.dirname);
    site = await serveStatic({ "/": { type: "text/html; charset=utf-8", body: PAGE_HTML }, "/chat.js": { type: "text/javascript; charset=utf-8", body: script } }, pagePort);
  });
  afterAll(() => site?.close());

  /** The backend's part: a session for alice (bound as USER) and its client secret. */
  async function newChat(sessionId: string) {
    const admin = createClient(SessionService, grpcTransport(ctx.url));
    const { session, clientSecret } = await admin.createSession({ namespace: "web", sessionId, user: "alice", maxRequestsPerMinute: 100 });
    await admin.bindParticipant({ id: session!.id, participantId: "alice", kind: ParticipantKind.USER });
    return { admin, session: session!, secret: clientSecret!.value };
  }

  /** Opens the page at `origin` with the secret in the hash; resolves with what it reports. */
  async function runPage(page: Page, origin: string, secret: string) {
    await page.goto(`${origin}/#${new URLSearchParams({ api: ctx.url, secret })}`);
    // A generous bound (no deadline): the page reports once its calls are done, however busy the machine.
    await page.locator("#result:not(:empty)").waitFor({ timeout: 30_000 });
    return JSON.parse((await page.locator("#result").textContent()) ?? "{}") as { appended?: number[]; turns?: { seq: number; participantId: string; content: string }[]; error?: string; listSessions?: string };
  }

  it("appends and lists turns after a CORS preflight that allows Authorization, and is refused ListSessions", async () => {
    const { admin, session, secret } = await newChat("web-1");
    const { page, errors } = await newPage(b.browser);
    const preflights = await recordPreflights(page);

    const result = await runPage(page, site.origin, secret);
    expect(result).toEqual({
      appended: [1, 2],
      turns: [
        { seq: 1, participantId: "alice", content: "Hello from Chromium" },
        { seq: 2, participantId: "alice", content: "Is anyone there?" },
      ],
      listSessions: "PERMISSION_DENIED: a client secret may not call sessiond.v1.SessionService/ListSessions; it allows GetSession, AppendTurns, ListTurns and RecordSpans on its own session",
    });
    expect(await page.locator("#turns li").allTextContents()).toEqual(["alice: Hello from Chromium", "alice: Is anyone there?"]);
    expect(await page.locator("#list-sessions").textContent()).toMatch(/^ListSessions: PERMISSION_DENIED: /);
    await screenshot(page, "browser-client");

    // The server has the turns, in order.
    const { turns } = await admin.listTurns({ id: session.id });
    expect(turns.map((t) => [Number(t.seq), t.participantId, t.content])).toEqual([
      [1, "alice", "Hello from Chromium"],
      [2, "alice", "Is anyone there?"],
    ]);

    // Chromium asked first, for the Authorization header, and sessiond allowed this origin and that header.
    const appendPreflight = preflights().find((p) => p.url === `${ctx.url}/sessiond.v1.SessionService/AppendTurns`);
    expect(appendPreflight).toBeDefined();
    expect(appendPreflight!.requestHeaders).toMatchObject({ origin: site.origin, "access-control-request-method": "POST" });
    expect(appendPreflight!.requestHeaders["access-control-request-headers"].split(",")).toContain("authorization");
    expect(appendPreflight!.status).toBe(204);
    expect(appendPreflight!.responseHeaders["access-control-allow-origin"]).toBe(site.origin);
    expect(appendPreflight!.responseHeaders["access-control-allow-headers"].toLowerCase().split(/,\s*/)).toContain("authorization");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("gets nothing through from an origin sessiond does not allow", async () => {
    const { admin, session, secret } = await newChat("web-2");
    const { page } = await newPage(b.browser);
    const preflights = await recordPreflights(page);
    // Same page, same port, another origin: localhost instead of 127.0.0.1.
    const result = await runPage(page, `http://localhost:${pagePort}`, secret);
    expect(result.error).toMatch(/^UNKNOWN: Failed to fetch/);
    expect(result.listSessions).toMatch(/^UNKNOWN: Failed to fetch/);
    // The preflight got no CORS headers, so Chromium never sent the calls themselves.
    const appendPreflight = preflights().find((p) => p.url === `${ctx.url}/sessiond.v1.SessionService/AppendTurns`);
    expect(appendPreflight?.requestHeaders.origin).toBe(`http://localhost:${pagePort}`);
    expect(appendPreflight?.responseHeaders["access-control-allow-origin"]).toBeUndefined();
    expect((await admin.listTurns({ id: session.id })).turns).toEqual([]);
    await page.context().close();
  });
});
