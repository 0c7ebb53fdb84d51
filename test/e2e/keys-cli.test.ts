/**
 * The keys CLI (`npm run keys`) as an operator runs it: a separate process on the server's database,
 * whose keys the running server accepts (and stops accepting once revoked).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { KEY_CACHE_MS } from "../../src/domain/credentials.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { grpcTransport, useServer } from "../setup/server.js";

const ctx = useServer();
const SECRET = /^sk_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$/;

/** Runs the CLI on the test database. */
function keys(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.resolve("node_modules/.bin/tsx"), ["src/cli/keys.ts", ...args], { env: { ...process.env, DATABASE_URL: ctx.db.url }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Creates a key with the CLI; returns its secret and the id it reported. */
async function createKey(...args: string[]) {
  const run = await keys("create", ...args);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.code).toBe(0);
  const secret = run.stdout.trim();
  const id = /API key (\S+):/.exec(run.stderr)?.[1] ?? "";
  return { ...run, secret, id };
}

const sessions = (secret: string) => createClient(SessionService, grpcTransport(ctx.url, secret));
const admin = (secret: string) => createClient(AdminService, grpcTransport(ctx.url, secret));

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

// Each test starts the CLI as a process several times (a few seconds each on a busy 2-core machine,
// where the suite runs three files at a time): more room than the default 30 s.
describe("npm run keys", { timeout: 120_000 }, () => {
  it("create prints only the secret on stdout, and the server accepts it with the key's role", async () => {
    const run = await createKey("--role", "writer", "--name", "ci writer");
    expect(run.secret).toMatch(SECRET);
    expect(run.stdout).toBe(`${run.secret}\n`);
    expect(run.stderr).toContain(run.id);
    expect(run.stderr).toMatch(/role writer, namespace \* \(all\)/);
    expect(run.stderr).not.toContain(run.secret);

    const created = await sessions(run.secret).createSession({ namespace: "cli" });
    expect(created.session?.namespace).toBe("cli");
    expect(await codeOf(admin(run.secret).listApiKeys({}))).toBe(Code.PermissionDenied);
  });

  it("stores only a 32-byte hash of the secret", async () => {
    const { secret, id } = await createKey("--role", "reader");
    const rows = await ctx.db.sql("SELECT * FROM api_keys");
    const row = rows.find((r) => r.secret_hash.equals(createHash("sha256").update(secret).digest()));
    expect(row).toBeDefined();
    expect(row.secret_hash).toHaveLength(32);
    expect(row.created_by).toBe("cli");
    expect(row.display_name).toBe("created by the keys CLI");
    expect(Buffer.from(id, "base64url").toString()).toBe(`ApiKey:${row.id}`);
    for (const r of rows) for (const value of Object.values(r)) expect(String(value)).not.toContain(secret);
  });

  it("list shows keys with their id, role, scope and prefix, never their secrets", async () => {
    const { secret, id } = await createKey("--role", "writer", "--name", "listed key", "--expires-in", "30d");
    const run = await keys("list");
    expect(run.code).toBe(0);
    const line = run.stdout.split("\n").find((l) => l.startsWith(id));
    expect(line).toBeDefined();
    expect(line!.split(/\s{2,}/)).toEqual([id, "writer", "*", "listed key", expect.stringMatching(/^\d{4}-\d\d-\d\dT/), expect.stringMatching(/^\d{4}-\d\d-\d\dT/), "-", secret.slice(0, 11)]);
    expect(run.stdout + run.stderr).not.toContain(secret);
    expect(run.stdout + run.stderr).not.toContain(secret.slice(12));
  });

  it("revoke makes the server refuse the key once KEY_CACHE_MS has passed; list --all still shows it", async () => {
    const { secret, id } = await createKey("--role", "writer");
    expect(await codeOf(sessions(secret).createSession({ namespace: "cli" }))).toBe("ok");
    const run = await keys("revoke", id);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Revoked API key ${id}`);
    // The server (in this process) trusts a key row it read for KEY_CACHE_MS. Once that much time has
    // passed since the revocation, the very next call must be refused: a busy machine only makes the
    // wait longer, never the check weaker.
    await new Promise((r) => setTimeout(r, KEY_CACHE_MS + 1));
    const code = await codeOf(sessions(secret).createSession({ namespace: "cli" }));
    expect(code).toBe(Code.Unauthenticated);
    const [active, all] = await Promise.all([keys("list"), keys("list", "--all")]);
    expect(active.stdout).not.toContain(id);
    expect(all.stdout.split("\n").find((l) => l.startsWith(id))).toMatch(/\d{4}-\d\d-\d\dT\S+Z\s+sk_/);
  });

  it("scopes a key to an existing namespace, and refuses one that does not exist", async () => {
    await admin(TEST_ADMIN_KEY).createNamespace({ name: "cli-team" });
    const scoped = await createKey("--role", "reader", "--namespace", "cli-team");
    expect(scoped.stderr).toContain("namespace cli-team");
    expect((await keys("list", "--namespace", "cli-team")).stdout).toContain(scoped.id);
    expect(await codeOf(sessions(scoped.secret).listSessions({ namespace: "cli-team" }))).toBe("ok");
    expect(await codeOf(sessions(scoped.secret).listSessions({ namespace: "cli" }))).toBe(Code.PermissionDenied);

    const missing = await keys("create", "--role", "reader", "--namespace", "no-such-team");
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toContain('namespace "no-such-team" not found');
  });

  it("exits 2 naming a bad flag, value or command, and 1 for an unknown key id, without stack traces", async () => {
    const cases: [string[], number, string][] = [
      [["create", "--role", "owner"], 2, "--role"],
      [["create"], 2, "--role"],
      [["create", "--role", "reader", "--expires-in", "5s"], 2, "--expires-in"],
      [["create", "--role", "reader", "--colour"], 2, "--colour"],
      [["rotate"], 2, "rotate"],
      [["revoke"], 2, "revoke"],
      [["revoke", "not-an-id"], 1, "key id"],
    ];
    const runs = await Promise.all(cases.map(([args]) => keys(...args)));
    for (const [i, [args, code, named]] of cases.entries()) {
      const run = runs[i];
      expect({ args, code: run.code }).toEqual({ args, code });
      expect(run.stderr).toContain(named);
      expect(run.stdout).toBe("");
      expect(run.stderr).not.toMatch(/\n\s+at |SELECT|INSERT|UPDATE/);
    }
    const help = await keys("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: npm run keys");
  });
});
