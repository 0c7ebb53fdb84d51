/**
 * The admin console: a static browser app (src/console/) served under /console on the service's own
 * port. The page itself is open (static files, no data); every API call it makes from the browser
 * carries the API key the user signs in with, and is authorized like any other call.
 *
 * The script is bundled with esbuild (a dev dependency, imported only when needed) once, on the first
 * request for it, so `npm start` needs no build step and servers that never serve the console never
 * load esbuild. A failed build is not cached: the next request tries again.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { HttpHandler } from "../server.js";

/** The console's sources: index.html, app.css and the TypeScript entry main.ts. */
const CONSOLE_DIR = fileURLToPath(new URL("../console/", import.meta.url));

/** A file as served. */
interface Asset {
  type: string;
  body: Buffer;
}

/**
 * The page may only load its own script and style sheet and talk to its own origin (the API), and may
 * not be framed: a page holding an admin key must not be embeddable by another site.
 */
const HTML_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** Bundles main.ts and what it imports (connect-web, the generated descriptors) into one ES module. */
async function bundle(): Promise<Asset> {
  const { build } = await import("esbuild");
  const out = await build({
    entryPoints: [`${CONSOLE_DIR}main.ts`],
    bundle: true,
    write: false,
    format: "esm",
    target: "chrome120",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  return { type: "text/javascript; charset=utf-8", body: Buffer.from(out.outputFiles[0].contents) };
}

/** Memoizes `load` until it fails (a failure is retried by the next request). */
function once(load: () => Promise<Asset>): () => Promise<Asset> {
  let pending: Promise<Asset> | undefined;
  return () => {
    pending ??= load().catch((err) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** Answers GET and HEAD with the asset (no caching: a new server version is picked up at once); 405 otherwise. */
function serve(asset: () => Promise<Asset>, extra: Record<string, string> = {}): HttpHandler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    const { type, body } = await asset();
    res.writeHead(200, {
      "content-type": type,
      "content-length": body.length,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...extra,
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

/**
 * The console's plain HTTP routes: `/console` (the page), `/console/app.js` (the bundled script),
 * `/console/app.css`, and `/console/` redirecting to `/console`. Errors (a missing file, a failed
 * build) are thrown to the server, which logs them and answers 500.
 */
export function createConsoleRoutes(): Record<string, HttpHandler> {
  const file = (name: string, type: string) => once(async () => ({ type, body: await readFile(`${CONSOLE_DIR}${name}`) }));
  return {
    "/console": serve(file("index.html", "text/html; charset=utf-8"), HTML_HEADERS),
    "/console/app.js": serve(once(bundle)),
    "/console/app.css": serve(file("app.css", "text/css; charset=utf-8")),
    "/console/": (_req, res) => {
      res.writeHead(308, { location: "/console" });
      res.end();
    },
  };
}
