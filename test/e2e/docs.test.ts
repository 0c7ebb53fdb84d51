/**
 * docs/api-tour.md, run as printed: every ```sh block in order, as one bash script (only the URL is
 * changed to this test server's), with `npx buf`, `node` and `curl`, as a user pasting the blocks
 * would. Any failing command fails the test; the blocks that show an error on purpose check that it is
 * the expected one.
 */
import { readFileSync } from "node:fs";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { OperationService } from "../../gen/sessiond/v1/operation_service_pb.js";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";
import { codeOf, connectAs, TEST_ADMIN_KEY } from "../setup/auth.js";
import { fences, runBash } from "../setup/markdown.js";
import { grpcTransport, useServer } from "../setup/server.js";

const ctx = useServer();
const TOUR = "docs/api-tour.md";
const DOC_URL = "http://localhost:8080";

/** Lines that start a command (not continuations, here-document bodies or comments). */
function commands(script: string, program: RegExp): number {
  return script.split("\n").filter((line) => program.test(line)).length;
}

describe("docs/api-tour.md", () => {
  const markdown = readFileSync(TOUR, "utf8");
  const blocks = fences(markdown);
  const sh = blocks.filter((b) => b.lang === "sh").map((b) => b.body);
  const script = sh.join("\n");

  it("walks through every RPC of the six services, in sh blocks only (other fences are json or text)", () => {
    expect(blocks.filter((b) => !["sh", "json", "text"].includes(b.lang)).map((b) => b.lang)).toEqual([]);
    expect(sh.length).toBeGreaterThanOrEqual(20);
    const bufCurls = commands(script, /^(\S+=\$\(|\()?npx buf curl /);
    expect(bufCurls).toBeGreaterThanOrEqual(20);
    expect(bufCurls).toBeLessThanOrEqual(89);
    const missing = [SessionService, MemoryService, TraceService, AdminService, OperationService, ServerInfoService]
      .flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`))
      .filter((rpc) => !new RegExp(`${DOC_URL}/${rpc.replace(/\./g, "\\.")}(?![A-Za-z])`).test(script));
    expect(missing).toEqual([]);
    for (const extra of ["--list-services", "/grpc.health.v1.Health/Check", "/v1/traces", "/healthz"]) expect(script).toContain(extra);
  });

  it("runs top to bottom as printed, as one bash script", async () => {
    const run = `${script.replaceAll(DOC_URL, ctx.url)}\necho "TOUR_ID=$ID"\necho "TOUR_CLIENT_SECRET=$CLIENT_SECRET"\necho "TOUR_READER_KEY=$READER_KEY"\n`;
    const { stdout } = await runBash(run, { SESSIOND_KEY: TEST_ADMIN_KEY }, 280_000);
    const value = (name: string) => new RegExp(`^${name}=(\\S+)$`, "m").exec(stdout)![1];
    const [id, clientSecret, readerKey] = [value("TOUR_ID"), value("TOUR_CLIENT_SECRET"), value("TOUR_READER_KEY")];
    expect(clientSecret).toMatch(/^cs_/);
    expect(readerKey).toMatch(/^sk_/);

    // What the prose tells the reader to look at.
    expect(stdout).toContain('"sessions.bulk_delete.stream"');
    expect(stdout).toContain("sessiond.v1.AdminService\n");
    expect(stdout).toContain('"status": "SERVING"');
    expect(stdout).toContain('"displayName": "tour dashboard"');
    expect(stdout).toContain('"outcome": "IMPORT_OUTCOME_IMPORTED"');
    expect(stdout).toContain(`"id": "${id}"`);
    expect(stdout).toContain('"etag": "\\"v2\\""');
    expect(stdout).toContain('"replayed": true');
    // The chat in three calls: created with its participants, appended to, its last turns read.
    expect(stdout).toContain('"participantCount": 2');
    expect(stdout).toContain('"model": "small-1"');
    expect(stdout).toContain('"lastSeq": "2"');
    expect(stdout).toContain("2 bot: Noted. Anything else?\n");
    expect(stdout).toContain('"content": "Hi, my name is Alice. I prefer green tea."');
    expect(stdout).toContain('"content": "Remember that I am vegetarian."');
    expect(stdout).toContain('"outcome": "INTEGRATION_OUTCOME_INTEGRATED"');
    expect(stdout).toContain('"summarizer": "rules"');
    expect(stdout).toContain('"archivedTurnCount": 3');
    expect(stdout).toMatch(/"seq": "3",\n\s+"role": "summary"/);
    expect(stdout).toContain('"deletedCount": 1');
    expect(stdout).toContain('"rootSpanName": "embeddings.create"');
    expect(stdout).toContain('"statusCode": "STATUS_CODE_ERROR"');
    expect(stdout).toContain('"label": "permanent"');
    expect(stdout).toContain('"turnsDeleted": 3');
    expect(stdout).toContain('"state": "SESSION_STATE_SOFT_DELETED"');
    expect(stdout).toMatch(/"deleted": \{\n\s+"participants": 2,\n\s+"traces": 1,\n\s+"spans": 3,\n\s+"annotations": 2\n/);
    expect(stdout.match(/"outcome": "BULK_DELETE_OUTCOME_WOULD_DELETE"/g)).toHaveLength(2);
    // Two in the bulk delete's stream, and the second again as WatchOperation replays batch 2.
    expect(stdout.match(/"outcome": "BULK_DELETE_OUTCOME_DELETED"/g)).toHaveLength(3);
    expect(stdout).toContain('"method": "sessiond.v1.SessionService/BulkDeleteSessions"');
    expect(stdout).toContain(`"actor": "session:${id}"`);
    expect(stdout).toContain('"apiKeysDeleted": "1"');
    // Retention: the default first, then the namespace's own, and a bad duration named.
    expect(stdout).toContain('"isDefault": true');
    expect(stdout).toContain('"maxIdle": "2592000s"');
    expect(stdout).toContain("policy.max_idle: must be positive");
    // The bulk delete as an operation: read, listed, watched from its second batch, not cancellable once done.
    expect(stdout).toContain('"state": "OPERATION_STATE_SUCCEEDED"');
    expect(stdout).toContain('"kind": "OPERATION_KIND_BULK_DELETE_SESSIONS"');
    expect(stdout).toMatch(/"batch": \{\n\s+"number": "2"/);
    expect(stdout).not.toMatch(/"batch": \{\n\s+"number": "1"/);
    // The erasure: erin's turn redacted in place, then bob's session deleted with bob.
    expect(stdout).toContain('"participantsRedacted": "1"');
    expect(stdout).toContain('"content": "[redacted]"');
    expect(stdout).toContain('"sessionsDeleted": "1"');
    expect(stdout).toContain("user: is required");
    // The errors shown on purpose, each the expected one.
    for (const code of ["permission_denied", "aborted", "unauthenticated", "invalid_argument", "failed_precondition"]) expect(stdout).toContain(`"code": "${code}"`);
    expect(stdout).toContain("participants[1].kind: is required");

    // The namespace is gone, with its key; the client secret no longer works; no secret reached the log.
    const { namespaces } = await createClient(AdminService, grpcTransport(ctx.url)).listNamespaces({ pageSize: 1000 });
    expect(namespaces.map((n) => n.name)).not.toContain("tour");
    const code = (secret: string) => codeOf(createClient(SessionService, connectAs(ctx.url, secret)).getSession({}));
    expect(await code(readerKey)).toBe(Code.Unauthenticated);
    expect(await code(clientSecret)).toBe(Code.Unauthenticated);
    const logs = ctx.logs.join("");
    for (const secret of [TEST_ADMIN_KEY, clientSecret, readerKey]) expect(logs).not.toContain(secret);
  }, 300_000);
});
