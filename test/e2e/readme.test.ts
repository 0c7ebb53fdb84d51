/**
 * The README's "Keys, roles and client secrets" commands, run as printed (only the URL is changed to
 * this test server's) with bash, `npx buf` and `node`, as a user would copy them.
 */
import { readFileSync } from "node:fs";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { codeOf, connectAs, TEST_ADMIN_KEY } from "../setup/auth.js";
import { fences, runBash } from "../setup/markdown.js";
import { useServer } from "../setup/server.js";

const ctx = useServer();

/** The fenced block after `<!-- readme-test: <name> -->`. */
function readmeBlock(name: string): string {
  const readme = readFileSync("README.md", "utf8");
  const at = readme.indexOf(`<!-- readme-test: ${name} -->`);
  expect(at).toBeGreaterThan(0);
  const [block] = fences(readme.slice(at));
  expect(block.lang).toBe("sh");
  return block.body;
}

describe("the README", () => {
  it("keys, roles and client secrets: every command works as printed", async () => {
    const script = readmeBlock("keys").replaceAll("http://localhost:8080", ctx.url);
    const { stdout } = await runBash(`${script}\necho "CLIENT_SECRET=$CLIENT_SECRET"\necho "ACME_KEY=$ACME_KEY"`, { SESSIOND_KEY: TEST_ADMIN_KEY }, 90_000);
    expect(stdout).toContain('"capabilities"');
    expect(stdout).toContain('"displayName": "acme backend"');
    expect(stdout).toContain('"content": "Hi there"');
    expect(stdout).toContain('"state": "SESSION_STATE_CANCELLED"');
    expect(stdout).toContain('"method": "sessiond.v1.SessionService/AppendTurns"');
    expect(stdout).toContain('"deleted": {');
    const clientSecret = /CLIENT_SECRET=(\S+)/.exec(stdout)![1];
    const acmeKey = /ACME_KEY=(\S+)/.exec(stdout)![1];
    expect(clientSecret).toMatch(/^cs_/);
    expect(acmeKey).toMatch(/^sk_/);
    // Listing never showed the key's secret; the namespace's deletion took the key with it.
    expect(stdout.split(acmeKey).length).toBe(2);
    const code = (secret: string) => codeOf(createClient(SessionService, connectAs(ctx.url, secret)).listSessions({}));
    expect(await code(acmeKey)).toBe(Code.Unauthenticated);
    expect(await code(clientSecret)).toBe(Code.Unauthenticated);
  }, 120_000);
});
