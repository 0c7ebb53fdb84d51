/**
 * Chromium over https, trusting the test CA and nothing more: the admin console served by sessiond
 * (sign-in, the sessions list, a streaming bulk delete), and a page on another https origin calling
 * sessiond with a session's client secret through CORS (ChatKit's flow; the cleartext twins are
 * test/e2e/console.test.ts and test/e2e/browser-client.test.ts).
 *
 * Trust: Chromium is told the SHA-256 of the test CA's public key (`--ignore-certificate-errors-spki-list`),
 * which it accepts in place of a root store entry for a chain that contains that key; the servers here
 * send their CA after their certificate for that reason (useTlsFixtures' fullChain). A server whose
 * chain names another CA is refused by the same browser, so the trust is that pin and not a blanket
 * "ignore certificate errors".
 */
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Page, Response } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { freePort } from "../../src/net/free-port.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import type { IssuedCert } from "../setup/certs.js";
import { bundle, newPage, noBrowser, screenshot, useBrowser, type StaticFile } from "../setup/browser.js";
import { PAGE_HTML, PAGE_SCRIPT } from "../setup/chatkit-page.js";
import { useServer } from "../setup/server.js";
import { spkiSha256, useTlsFixtures } from "../setup/tls-fixtures.js";

/** Bound of every wait for the page: generous, since it is no deadline, only a way to fail clearly. */
const PATIENCE_MS = 30_000;

/** Serves `files` by exact path over https with `cert` on 127.0.0.1:`port` (0: any free port). */
async function serveHttps(files: Record<string, StaticFile>, cert: IssuedCert, port = 0): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const file = files[(req.url ?? "/").split("?", 1)[0]];
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** What Chromium reports of the TLS connection of a response. */
async function tlsOf(response: Response) {
  const d = await response.securityDetails();
  return { issuer: d?.issuer, subjectName: d?.subjectName, protocol: d?.protocol };
}

/** The HTTP version Chromium used for the first resource whose URL ends with `suffix` (Resource Timing). */
const nextHopProtocol = (page: Page, suffix: string) =>
  page.evaluate((s) => (performance.getEntriesByType("resource") as unknown as { name: string; nextHopProtocol: string }[]).find((e) => e.name.endsWith(s))?.nextHopProtocol, suffix);

// The page of ChatKit's flow is the one the cleartext browser test serves (test/setup/chatkit-page.ts).

// The page's origin must be known before sessiond starts (SESSIOND_CORS_ORIGINS).
const pagePort = await freePort();
const pageOrigin = `https://127.0.0.1:${pagePort}`;

describe.skipIf(noBrowser)("Chromium over https, trusting the test CA", { timeout: 4 * PATIENCE_MS }, () => {
  const pki = useTlsFixtures({ fullChain: true });
  const ctx = useServer({ ...pki.env, SESSIOND_CORS_ORIGINS: pageOrigin });
  const b = useBrowser([`--ignore-certificate-errors-spki-list=${spkiSha256(pki.ca.cert)}`]);
  /** The admin's SessionService client (connect-node, trusting the test CA). */
  let admin: ReturnType<typeof createClient<typeof SessionService>>;
  let site: Awaited<ReturnType<typeof serveHttps>>;

  beforeAll(async () => {
    admin = createClient(SessionService, createGrpcTransport({ baseUrl: ctx.url, nodeOptions: { ca: pki.ca.cert }, interceptors: [bearer(TEST_ADMIN_KEY)] }));
    const script = await bundle(PAGE_SCRIPT, import.meta.dirname);
    site = await serveHttps({ "/": { type: "text/html; charset=utf-8", body: PAGE_HTML }, "/chat.js": { type: "text/javascript; charset=utf-8", body: script } }, pki.server, pagePort);
  });
  afterAll(() => site?.close());

  it("refuses a server whose certificate chains to a CA it was not told about", async () => {
    const strange = await serveHttps({ "/": { type: "text/plain", body: "should not be shown" } }, pki.strangeServer);
    try {
      const { page } = await newPage(b.browser);
      await expect(page.goto(`${strange.origin}/`)).rejects.toThrow(/net::ERR_CERT_AUTHORITY_INVALID/);
      await page.context().close();
    } finally {
      await strange.close();
    }
  });

  it("signs in to the console over https, lists a namespace's sessions and bulk-deletes them with a stream", async () => {
    for (const [sessionId, user] of [["tls-1", "alice"], ["tls-2", "bob"], ["tls-3", "alice"]]) await admin.createSession({ namespace: "tls-console", sessionId, user });
    const { page, errors } = await newPage(b.browser);
    const listed = page.waitForResponse((r) => r.url().endsWith("/sessiond.v1.SessionService/ListSessions") && r.request().method() === "POST", { timeout: PATIENCE_MS });
    const loaded = await page.goto(`${ctx.url}/console`);
    expect(await tlsOf(loaded!)).toEqual({ issuer: "test-ca", subjectName: "localhost", protocol: expect.stringMatching(/^TLS 1\.[23]$/) });

    await page.getByTestId("api-key").fill(TEST_ADMIN_KEY);
    await page.getByTestId("sign-in").click();
    await page.getByTestId("sessions-table").waitFor({ timeout: PATIENCE_MS });
    const listing = await listed;
    expect(listing.status()).toBe(200);
    expect(await tlsOf(listing)).toMatchObject({ issuer: "test-ca", subjectName: "localhost" });
    // ALPN: Chromium and sessiond agreed on HTTP/2 for the page's Connect calls.
    expect(await nextHopProtocol(page, "/sessiond.v1.SessionService/ListSessions")).toBe("h2");

    await page.getByTestId("namespace").fill("tls-console");
    await page.getByTestId("namespace").press("Enter");
    const ids = () => page.getByTestId("session-row").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-session-id")));
    await expect.poll(ids, { timeout: PATIENCE_MS }).toEqual(["tls-3", "tls-2", "tls-1"]);
    await screenshot(page, "tls-console");

    // BulkDeleteSessions is a server stream: Connect-Web reads it from fetch's body over the TLS connection.
    await page.getByTestId("select-all").check();
    await page.getByTestId("delete-selected").click();
    await page.getByTestId("confirm-dialog").waitFor({ timeout: PATIENCE_MS });
    await page.getByTestId("confirm-delete").click();
    await page.locator('[data-testid="bulk-panel"][data-state="done"]').waitFor({ timeout: PATIENCE_MS });
    expect((await page.getByTestId("bulk-completed").textContent())?.trim()).toBe("3 / 3 (100%)");
    expect((await admin.listSessions({ namespace: "tls-console" })).sessions).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("runs ChatKit's flow from another https origin: a client secret appends and lists turns through CORS", async () => {
    const { session, clientSecret } = await admin.createSession({ namespace: "tls-web", sessionId: "web-1", user: "alice", maxRequestsPerMinute: 100 });
    await admin.bindParticipant({ id: session!.id, participantId: "alice", kind: ParticipantKind.USER });
    const { page, errors } = await newPage(b.browser);
    const appended = page.waitForResponse((r) => r.url() === `${ctx.url}/sessiond.v1.SessionService/AppendTurns` && r.request().method() === "POST", { timeout: PATIENCE_MS });

    const loaded = await page.goto(`${site.origin}/#${new URLSearchParams({ api: ctx.url, secret: clientSecret!.value })}`);
    expect(await tlsOf(loaded!)).toMatchObject({ issuer: "test-ca" });
    await page.locator("#result:not(:empty)").waitFor({ timeout: PATIENCE_MS });
    expect(JSON.parse((await page.locator("#result").textContent()) ?? "{}")).toEqual({
      appended: [1, 2],
      turns: [
        { seq: 1, participantId: "alice", content: "Hello from Chromium" },
        { seq: 2, participantId: "alice", content: "Is anyone there?" },
      ],
      listSessions: expect.stringMatching(/^PERMISSION_DENIED: a client secret may not call sessiond\.v1\.SessionService\/ListSessions/),
    });
    // The call crossed origins to sessiond's https port, and sessiond allowed this origin.
    const response = await appended;
    expect(await tlsOf(response)).toMatchObject({ issuer: "test-ca", subjectName: "localhost" });
    expect(await response.headerValue("access-control-allow-origin")).toBe(site.origin);
    expect(await page.locator("#turns li").allTextContents()).toEqual(["alice: Hello from Chromium", "alice: Is anyone there?"]);
    await screenshot(page, "tls-browser-client");

    const { turns } = await admin.listTurns({ id: session!.id });
    expect(turns.map((t) => [Number(t.seq), t.participantId, t.content])).toEqual([
      [1, "alice", "Hello from Chromium"],
      [2, "alice", "Is anyone there?"],
    ]);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
