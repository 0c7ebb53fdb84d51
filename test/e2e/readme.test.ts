/**
 * The README's "Keys, roles and client secrets" commands, run as printed (only the URL is changed to
 * this test server's) with bash, `npx buf` and `node`, as a user would copy them.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { useServer } from "../setup/server.js";

const ctx = useServer();

/** The fenced block after `<!-- readme-test: <name> -->`. */
function readmeBlock(name: string): string {
  const readme = readFileSync("README.md", "utf8");
  const at = readme.indexOf(`<!-- readme-test: ${name} -->`);
  expect(at).toBeGreaterThan(0);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  return m![1];
}

describe("the README", () => {
  it("keys, roles and client secrets: every command works as printed", async () => {
    const script = readmeBlock("keys").replaceAll("http://localhost:8080", ctx.url);
    const { stdout } = await promisify(execFile)("bash", ["-euo", "pipefail", "-c", `${script}\necho "CLIENT_SECRET=$CLIENT_SECRET"\necho "ACME_KEY=$ACME_KEY"`], {
      env: { ...process.env, SESSIOND_KEY: TEST_ADMIN_KEY },
      timeout: 90_000,
    });
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
    const code = (secret: string) =>
      createClient(SessionService, createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1", interceptors: [bearer(secret)] }))
        .listSessions({})
        .then(() => undefined, (e) => ConnectError.from(e).code);
    expect(await code(acmeKey)).toBe(Code.Unauthenticated);
    expect(await code(clientSecret)).toBe(Code.Unauthenticated);
  }, 120_000);
});
