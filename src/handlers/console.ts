/**
 * The admin console: a static browser app (src/console/) served under /console on the service's own
 * port. The page itself is open (static files, no data); every API call it makes from the browser
 * carries the API key the user signs in with, and is authorized like any other call.
 *
 * The build (src/cli/build.mjs, run by `npm run build` and `npm start`) bundles the script and copies
 * the page and style sheet into dist/console/, beside the compiled server, which serves them from there:
 * no bundler runs in production. Dev fallback, only when that prebuilt bundle is missing (the server
 * running from source under tsx or vitest): the script is bundled from src/console/ on its first
 * request, with the build's own options, and esbuild (a dev dependency) is loaded only then. A failed
 * bundle is not cached: the next request tries again.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { HttpHandler } from "../server.js";

/**
 * The prebuilt console: dist/console/ when this code runs from the dist/ bundle (whose modules all
 * sit in dist/ itself). From source this is src/handlers/console/, which never exists.
 */
const BUILT_DIR = fileURLToPath(new URL("./console/", import.meta.url));
/** The console's sources (index.html, app.css, the TypeScript entry main.ts), as seen from src/handlers/. */
const SOURCE_DIR = fileURLToPath(new URL("../console/", import.meta.url));
/** The build script, whose bundleConsole() the dev fallback runs (plain JavaScript, typed below). */
const BUILD_SCRIPT = new URL("../cli/build.mjs", import.meta.url).href;

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

/** The dev fallback: bundles src/console/main.ts as `npm run build` does (see src/cli/build.mjs). */
async function bundle(): Promise<Asset> {
  const { bundleConsole } = (await import(/* @vite-ignore */ BUILD_SCRIPT)) as { bundleConsole(): Promise<Uint8Array> };
  return { type: "text/javascript; charset=utf-8", body: Buffer.from(await bundleConsole()) };
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
 * `/console/app.css`, and `/console/` redirecting to `/console`. Served from dist/console/ when the
 * build made it, else from src/console/ (the dev fallback above). Errors (a missing file, a failed
 * bundle) are thrown to the server, which logs them and answers 500.
 */
export function createConsoleRoutes(): Record<string, HttpHandler> {
  const prebuilt = existsSync(`${BUILT_DIR}app.js`);
  const dir = prebuilt ? BUILT_DIR : SOURCE_DIR;
  const file = (name: string, type: string) => once(async () => ({ type, body: await readFile(`${dir}${name}`) }));
  return {
    "/console": serve(file("index.html", "text/html; charset=utf-8"), HTML_HEADERS),
    "/console/app.js": serve(prebuilt ? file("app.js", "text/javascript; charset=utf-8") : once(bundle)),
    "/console/app.css": serve(file("app.css", "text/css; charset=utf-8")),
    "/console/": (_req, res) => {
      res.writeHead(308, { location: "/console" });
      res.end();
    },
  };
}
