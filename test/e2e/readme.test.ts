/**
 * The README's examples, run as printed (only the URL is changed to this test server's) with bash,
 * `npx buf`, `curl` and `node`, as a user would copy them: every block marked `<!-- readme-test: <name> -->`,
 * one after the other in the order the README prints them, on one database. An example that undoes
 * what a later one needs (a bulk delete before a read) fails here.
 */
import { readFileSync } from "node:fs";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { codeOf, connectAs, TEST_ADMIN_KEY } from "../setup/auth.js";
import { fences, runBash } from "../setup/markdown.js";
import { useServer } from "../setup/server.js";

const ctx = useServer();
const README = readFileSync("README.md", "utf8");
const MARKER = /^<!-- readme-test: (\S+) -->\n+/gm;

/** The marked blocks, in the README's order: the fenced block right after each marker. */
function markedBlocks(): { name: string; body: string }[] {
  return [...README.matchAll(MARKER)].map((m) => {
    const [block] = fences(README.slice(m.index + m[0].length));
    expect(block.lang, `the block after the marker "${m[1]}"`).toBe("sh");
    return { name: m[1], body: block.body };
  });
}

/** Runs one block as printed against the test server. */
const run = (body: string, extra = "") => runBash(`${body.replaceAll("http://localhost:8080", ctx.url)}${extra}`, { SESSIOND_KEY: TEST_ADMIN_KEY }, 90_000);

describe("the README", () => {
  it("marks every example that calls the service, so that each one is run", () => {
    const marked = new Set(markedBlocks().map((b) => b.body));
    const calls = fences(README).filter((f) => f.lang === "sh" && /\bcurl\b/.test(f.body));
    expect(calls.length).toBeGreaterThan(0);
    for (const f of calls) expect(marked.has(f.body), `this README example is not marked <!-- readme-test: ... -->:\n${f.body}`).toBe(true);
  });

  it("runs every marked example in the order printed, each one working as printed", async () => {
    const blocks = markedBlocks();
    expect(blocks.map((b) => b.name)).toEqual(["try", "conversation", "plain-http", "bulk-delete", "keys"]);
    const out: Record<string, string> = {};
    for (const { name, body } of blocks) {
      const extra = name === "keys" ? `\necho "CLIENT_SECRET=$CLIENT_SECRET"\necho "ACME_KEY=$ACME_KEY"` : "";
      out[name] = (await run(body, extra).catch((err: Error) => Promise.reject(new Error(`README example "${name}": ${err.message}`)))).stdout;
    }

    // Try it with buf curl: created, read back, listed.
    expect(out.try).toContain('"sessionId": "chat-1"');
    expect(out.try).toContain("sessiond.v1.SessionService");
    // The conversation: turns appended and integrated into memories about alice.
    expect(out.conversation).toContain('"subjectUser": "alice"');
    // Plain HTTP reads the session the first example created (it is still there).
    expect(JSON.parse(out["plain-http"])).toMatchObject({ session: { sessionId: "chat-1", namespace: "demo" } });
    // The bulk delete comes last of these, and takes chat-1 with it.
    expect(out["bulk-delete"]).toContain('"deleted"');
    expect(await codeOf(createClient(SessionService, connectAs(ctx.url, TEST_ADMIN_KEY)).getSession({ namespace: "demo", sessionId: "chat-1" }))).toBe(Code.NotFound);

    // Keys, roles and client secrets.
    const keys = out.keys;
    expect(keys).toContain('"capabilities"');
    expect(keys).toContain('"displayName": "acme backend"');
    expect(keys).toContain('"content": "Hi there"');
    expect(keys).toContain('"state": "SESSION_STATE_CANCELLED"');
    expect(keys).toContain('"method": "sessiond.v1.SessionService/AppendTurns"');
    expect(keys).toContain('"deleted": {');
    const clientSecret = /CLIENT_SECRET=(\S+)/.exec(keys)![1];
    const acmeKey = /ACME_KEY=(\S+)/.exec(keys)![1];
    expect(clientSecret).toMatch(/^cs_/);
    expect(acmeKey).toMatch(/^sk_/);
    // Listing never showed the key's secret; the namespace's deletion took the key with it.
    expect(keys.split(acmeKey).length).toBe(2);
    const code = (secret: string) => codeOf(createClient(SessionService, connectAs(ctx.url, secret)).listSessions({}));
    expect(await code(acmeKey)).toBe(Code.Unauthenticated);
    expect(await code(clientSecret)).toBe(Code.Unauthenticated);
  }, 240_000);
});
