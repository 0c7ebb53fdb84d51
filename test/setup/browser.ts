/**
 * Helpers for the tests that drive a real browser: Debian's Chromium through playwright-core (which
 * downloads no browser), screenshots, esbuild bundles of page scripts, and a tiny static file server
 * for pages on another origin.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";

/** Where the tests expect Chromium (Debian's `chromium` package; CI installs it). */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or "" when they can. Under CI a missing Chromium is not a
 * reason to skip: the launch then fails, so a broken install cannot pass silently.
 */
export const noBrowser = existsSync(CHROMIUM) || process.env.CI ? "" : `${CHROMIUM} not found (apt-get install chromium): browser tests skipped`;
if (noBrowser) console.warn(noBrowser);

/** Where screenshots go (git-ignored). */
export const SCREENSHOTS = path.resolve("test/e2e/screenshots");

/**
 * Registers hooks that launch headless Chromium for this file (about a second) and close it; `args` are
 * added to its command line (e.g. `--ignore-certificate-errors-spki-list=...` to trust a test CA).
 */
export function useBrowser(args: string[] = []) {
  const ctx = {} as { browser: Browser };
  beforeAll(async () => {
    ctx.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", ...args],
    });
  });
  afterAll(async () => {
    await ctx.browser?.close();
  });
  return ctx;
}

/** A page in a fresh context (its own storage), 1400×900; `errors` collects uncaught page exceptions. */
export async function newPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  return { page, errors };
}

/** Saves test/e2e/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/**
 * Bundles `source` (TypeScript, an ES module) for Chromium as esbuild does for the console; imports
 * resolve from `resolveDir`.
 */
export async function bundle(source: string, resolveDir: string): Promise<string> {
  const { build } = await import("esbuild");
  const out = await build({
    stdin: { contents: source, loader: "ts", resolveDir, sourcefile: "page.ts" },
    bundle: true,
    write: false,
    format: "esm",
    target: "chrome120",
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

/** A static file: its content type and body. */
export interface StaticFile {
  type: string;
  body: string;
}

/** Serves `files` by exact path on 127.0.0.1:`port` (0: any free port); 404 otherwise. */
export async function serveStatic(files: Record<string, StaticFile>, port = 0): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const file = files[(req.url ?? "/").split("?", 1)[0]];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
