/**
 * Builds sessiond into dist/ with esbuild, so that production runs compiled JavaScript with no loader
 * (`npm run build`, then `node dist/main.js`). Plain JavaScript, so plain node runs it.
 *
 *   node src/cli/build.mjs             build now (`npm run build`)
 *   node src/cli/build.mjs --if-stale  build only when dist/ is missing or not built from the current
 *                                      inputs (what `npm start` runs, through src/cli/launch.mjs)
 *
 * What it writes (dist/ is git-ignored):
 *   dist/main.js, dist/keys.js   the server and the keys CLI (src/main.ts, src/cli/keys.ts)
 *   dist/chunk-<hash>.js         code they share, and what keys.ts imports lazily
 *   dist/*.map                   source maps (`node --enable-source-maps` for stacks in src/ terms)
 *   dist/console/                the web console: app.js (bundled, minified), index.html, app.css
 *   dist/build.json              the manifest: a hash of the inputs and the files written
 *
 * Stale means: the manifest's input hash differs from a SHA-256 over the path and content of every file
 * under src/ and gen/ plus package.json and package-lock.json (about 130 files, 1.2 MB: milliseconds),
 * or one of its files is gone. Contents, not mtimes: a checkout or a copy into an image changes mtimes,
 * not what the build would produce.
 *
 * Two builders at once (two `npm start`s, or one and `npm run build`): a builder holds dist/.build.lock
 * (created exclusively, holding its pid; taken over once that pid is gone), checks staleness again once
 * it holds it, writes every file into dist/.tmp-<pid>/ and renames each into place, the entries and the
 * manifest last. A rename is atomic, so a process starting meanwhile reads each file whole, old or new;
 * chunk names carry their content hash, and the previous build's chunks are kept one build longer, for
 * processes still running from it.
 *
 * esbuild is a dev dependency: builds happen in a full install (`npm ci`), and an install without dev
 * dependencies runs a dist/ built elsewhere (see docs/operations.md).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository: this file is src/cli/build.mjs. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DIST = path.join(ROOT, "dist");
const MANIFEST = path.join(DIST, "build.json");
const LOCK = path.join(DIST, ".build.lock");
/** What a build reads: every file of these folders, and these files. */
const INPUT_DIRS = ["src", "gen"];
const INPUT_FILES = ["package.json", "package-lock.json"];
/** The compiled entry points, as dist/<name>.js. */
export const ENTRIES = { main: "src/main.ts", keys: "src/cli/keys.ts", export: "src/cli/export.ts", import: "src/cli/import.ts" };
/** A lock this old is left over, whatever its pid says (pids are reused; a build takes seconds). */
const LOCK_MAX_AGE_MS = 10 * 60_000;

const log = (line) => process.stderr.write(`sessiond build: ${line}\n`);

/** SHA-256 (hex) over the relative path and content of every input file, in a stable order. */
export function inputsHash(root = ROOT) {
  const files = [...INPUT_FILES];
  for (const dir of INPUT_DIRS) {
    if (!existsSync(path.join(root, dir))) continue;
    for (const e of readdirSync(path.join(root, dir), { recursive: true, withFileTypes: true })) {
      if (e.isFile()) files.push(path.relative(root, path.join(e.parentPath, e.name)));
    }
  }
  const hash = createHash("sha256");
  for (const rel of files.sort()) {
    const file = path.join(root, rel);
    hash.update(`${rel}\0`);
    hash.update(existsSync(file) ? readFileSync(file) : "(none)");
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** The manifest of the current build, or undefined. */
function readManifest() {
  try {
    return JSON.parse(readFileSync(MANIFEST, "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether dist/ holds a complete build of the current inputs (`inputs`: their hash, if already known). */
export function isFresh(inputs = inputsHash()) {
  const m = readManifest();
  return m?.inputs === inputs && Array.isArray(m.files) && m.files.every((f) => existsSync(path.join(DIST, f)));
}

/** Whether process `pid` exists (EPERM: it does, as another user's). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** Runs `fn` holding dist/.build.lock; waits while a live builder holds it, takes it over from a dead one. */
async function withLock(fn) {
  mkdirSync(DIST, { recursive: true });
  for (let told = false; ; ) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: "wx" });
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    let owner = 0;
    let age = 0;
    try {
      owner = Number(readFileSync(LOCK, "utf8"));
      age = Date.now() - statSync(LOCK).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // An empty lock is one being written; empty for seconds, its writer died in between.
    if (age > LOCK_MAX_AGE_MS || (owner > 0 ? !alive(owner) : age > 5000)) {
      log(`removing a lock left by a build that did not finish (pid ${owner || "unknown"})`);
      rmSync(LOCK, { force: true });
      continue;
    }
    if (!told) log(`waiting for the build of process ${owner} to finish`);
    told = true;
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

/** Loads esbuild, or says why it is missing. */
async function loadEsbuild() {
  try {
    return await import("esbuild");
  } catch {
    throw new Error("esbuild is not installed: it is a dev dependency, so build in a full install (npm ci; npm run build) and run dist/ from there");
  }
}

/**
 * Bundles the web console (src/console/main.ts and what it imports: connect-web, the generated
 * descriptors) into one minified ES module for browsers. Also what src/handlers/console.ts runs when it
 * serves from source (no prebuilt bundle), so both serve the same script.
 */
export async function bundleConsole(esbuild) {
  esbuild ??= await loadEsbuild();
  const out = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, "src/console/main.ts")],
    outfile: path.join(DIST, "console/app.js"),
    bundle: true,
    write: false,
    format: "esm",
    target: "chrome120",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  return out.outputFiles[0].contents;
}

/** Bundles the entry points for Node: npm packages stay imports of node_modules, our code is inlined. */
async function bundleServer(esbuild) {
  const out = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, path.join(ROOT, src)])),
    outdir: DIST,
    entryNames: "[name]",
    // In dist/ itself, beside the entries: code that finds files relative to its own module
    // (src/handlers/console.ts, via import.meta.url) sees the same folder whichever file it lands in.
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node22",
    packages: "external",
    sourcemap: true,
    // Class names stay as written: TypeORM reads them (migration names carry their timestamp), and so do
    // logged error names. esbuild renames clashing identifiers across a bundle otherwise.
    keepNames: true,
    // esbuild emits no decorator metadata (like tsx): every entity column names its type explicitly.
    tsconfig: path.join(ROOT, "tsconfig.json"),
    write: false,
    logLevel: "warning",
  });
  return out.outputFiles.map((f) => ({ rel: path.relative(DIST, f.path), contents: f.contents }));
}

/**
 * Builds dist/ (holding the lock); with `ifStale`, only when it is not a build of the current inputs.
 * Returns whether it built.
 */
export async function build({ ifStale = false } = {}) {
  return withLock(async () => {
    // Hashed before reading any source: an edit during the build leaves the result stale, not falsely fresh.
    const inputs = inputsHash();
    if (ifStale && isFresh(inputs)) return false;
    const started = performance.now();
    const esbuild = await loadEsbuild();
    const [server, consoleJs] = await Promise.all([bundleServer(esbuild), bundleConsole(esbuild)]);
    const consoleDir = path.join(ROOT, "src/console");
    const outputs = [
      ...server.filter((f) => !Object.keys(ENTRIES).some((e) => f.rel === `${e}.js`)),
      { rel: "console/app.js", contents: consoleJs },
      { rel: "console/index.html", contents: readFileSync(path.join(consoleDir, "index.html")) },
      { rel: "console/app.css", contents: readFileSync(path.join(consoleDir, "app.css")) },
      // The entries after everything they import.
      ...server.filter((f) => Object.keys(ENTRIES).some((e) => f.rel === `${e}.js`)),
    ];

    // We hold the lock, so any other temp folder is a dead builder's.
    for (const name of readdirSync(DIST)) if (name.startsWith(".tmp-")) rmSync(path.join(DIST, name), { recursive: true, force: true });
    const tmp = path.join(DIST, `.tmp-${process.pid}`);
    const previous = readManifest();
    const files = outputs.map((f) => f.rel);
    try {
      for (const { rel, contents } of outputs) {
        mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
        writeFileSync(path.join(tmp, rel), contents);
      }
      writeFileSync(path.join(tmp, "build.json"), `${JSON.stringify({ inputs, esbuild: esbuild.version, files, previous: previous?.files ?? [] }, null, 2)}\n`);
      for (const rel of [...files, "build.json"]) {
        mkdirSync(path.dirname(path.join(DIST, rel)), { recursive: true });
        renameSync(path.join(tmp, rel), path.join(DIST, rel));
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }

    // Files two builds old go; the last build's stay for processes still running from it. Without a
    // manifest, dist/ holds no build of ours (or an old `tsc` output): everything else goes.
    const keep = new Set([...files, ...(previous?.files ?? []), "build.json", path.basename(LOCK)]);
    const stale = previous ? (previous.previous ?? []).filter((f) => !keep.has(f)) : readdirSync(DIST).filter((f) => !keep.has(f) && f !== "console");
    for (const rel of stale) rmSync(path.join(DIST, rel), { recursive: true, force: true });
    log(`built dist/ (${files.length} files) in ${Math.round(performance.now() - started)} ms`);
    return true;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  if (args.some((a) => a !== "--if-stale")) {
    process.stderr.write("Usage: node src/cli/build.mjs [--if-stale]\n");
    process.exit(2);
  }
  build({ ifStale: args.includes("--if-stale") }).catch((err) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
