/**
 * What `npm start` and `npm run keys` run: makes sure dist/ is a build of the current sources (building
 * it, in seconds, when it is missing or stale; see src/cli/build.mjs), then runs the compiled entry,
 * dist/main.js or dist/keys.js, in this same process. So the Node flags given to this script
 * (`npm start` passes --max-semi-space-size=4) apply to the service, no wrapper process sits between
 * a signal and the service, and nothing transpiles at run time.
 *
 *   node [node flags] src/cli/launch.mjs main|keys [arguments for the entry]
 *
 * Checking takes milliseconds (a hash of src/, gen/ and the package files) and loads no esbuild. The
 * build runs in a child process, so esbuild never sits in the service's memory; its messages go to
 * stderr, since stdout is the keys CLI's result. Without src/ (a deployment of dist/ alone) there is
 * nothing to check, and dist/ runs as it is.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DIST, ENTRIES, isFresh, ROOT } from "./build.mjs";

const [entry, ...args] = process.argv.slice(2);
if (!Object.hasOwn(ENTRIES, entry ?? "")) {
  process.stderr.write(`Usage: node src/cli/launch.mjs ${Object.keys(ENTRIES).join("|")} [arguments]\n`);
  process.exit(2);
}
if (existsSync(path.join(ROOT, ENTRIES[entry])) && !isFresh()) {
  const built = spawnSync(process.execPath, [fileURLToPath(new URL("./build.mjs", import.meta.url)), "--if-stale"], { stdio: ["ignore", 2, 2] });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
const compiled = path.join(DIST, `${entry}.js`);
// As if `node dist/<entry>.js [arguments]` had been run: the entries read their arguments from argv.
process.argv = [process.argv[0], compiled, ...args];
await import(pathToFileURL(compiled).href);
