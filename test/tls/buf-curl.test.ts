/**
 * `buf curl` (Go's crypto/tls and net/http) against sessiond over https: the server verified with
 * `--cacert`, each RPC protocol with a bearer key, server reflection, and client certificates
 * (`--cert`/`--key`) as the only credential, accepted or refused. Over https ALPN chooses the HTTP
 * version and buf curl always offers h2 first (its `--http2-prior-knowledge` only matters in
 * cleartext), so every call here is HTTP/2; HTTP/1.1 over TLS is covered by the connect-node tests
 * (tls.test.ts) and Chromium (browser.test.ts). The cleartext twin is test/e2e/buf-curl.test.ts.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import type { IssuedCert } from "../setup/certs.js";
import { useServer } from "../setup/server.js";
import { certificateProblems, useTlsFixtures } from "../setup/tls-fixtures.js";

const BUF = path.resolve("node_modules/.bin/buf");
const pki = useTlsFixtures();
const ctx = useServer(pki.env);

/** How buf curl ended. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `buf curl <args>`; never rejects (the exit code is in the result). */
function buf(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(BUF, ["curl", ...args], { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }));
  });
}

/** What a call presents: the CA it trusts (the test CA by default), a bearer secret, a client certificate. */
interface Presents {
  trust?: string;
  bearer?: string;
  cert?: IssuedCert;
  verbose?: boolean;
}

/** Calls sessiond.v1.SessionService/`method` with `body` (schema by server reflection). */
function call(protocol: string, method: string, body: object, p: Presents = {}): Promise<Run> {
  return buf([
    "--cacert", p.trust ?? pki.ca.certFile,
    ...(p.bearer ? ["-H", `Authorization: Bearer ${p.bearer}`] : []),
    ...(p.cert ? ["--cert", p.cert.certFile, "--key", p.cert.keyFile] : []),
    ...(p.verbose ? ["-v"] : []),
    "--protocol", protocol,
    "-d", JSON.stringify(body),
    `${ctx.url}/sessiond.v1.SessionService/${method}`,
  ]);
}

/** The JSON answer of a call that must have succeeded. */
function ok(run: Run): any {
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
}

/** The error buf curl printed for a call that must have failed (stderr is that JSON without -v). */
function failure(run: Run): { code: string; message: string } {
  expect(run.code, run.stdout).not.toBe(0);
  return JSON.parse(run.stderr);
}

const PROTOCOLS = ["grpc", "connect", "grpcweb"];

describe("buf curl over https", { timeout: 120_000 }, () => {
  it.each(PROTOCOLS)("verifies the server with --cacert and manages a session with a bearer key over --protocol %s", async (protocol) => {
    const ns = `tls-curl-${protocol}`;
    const bearer = TEST_ADMIN_KEY;
    const created = await call(protocol, "CreateSession", { namespace: ns, sessionId: "c1", user: "bob" }, { bearer, verbose: true });
    // The transport, as buf curl saw it: a verified TLS connection on which ALPN chose HTTP/2.
    expect(created.stderr).toContain("* ALPN: offering h2,http/1.1");
    expect(created.stderr).toContain("* ALPN: server accepted h2");
    expect(created.stderr).toMatch(/\* TLS connection using TLS 1\.[23] \//);
    expect(created.stderr).toContain("* Server certificate chain verified");
    expect(created.stderr).toContain("* Server certificate is valid for 127.0.0.1");
    expect(created.stderr).toContain("HTTP/2.0 200 OK");
    const { session } = ok(created);
    expect(session).toMatchObject({ namespace: ns, sessionId: "c1", user: "bob", state: "SESSION_STATE_ACTIVE" });
    expect(ok(await call(protocol, "GetSession", { id: session.id }, { bearer })).session).toMatchObject({ id: session.id, user: "bob" });
    expect(ok(await call(protocol, "ListSessions", { namespace: ns }, { bearer })).sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual(["c1"]);
    expect(ok(await call(protocol, "DeleteSession", { id: session.id }, { bearer }))).toMatchObject({ id: session.id, sessionId: "c1" });
  });

  it("lists the services by server reflection over TLS", async () => {
    const run = await buf(["--cacert", pki.ca.certFile, "--list-services", ctx.url]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split("\n").filter(Boolean)).toEqual(expect.arrayContaining(["grpc.reflection.v1.ServerReflection", "sessiond.v1.SessionService", "sessiond.v1.AdminService"]));
  });

  it("refuses a server certificate that does not chain to --cacert", async () => {
    const run = await buf(["-v", "--cacert", pki.otherCa.certFile, "--list-services", ctx.url]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("Server certificate chain could not be verified: x509: certificate signed by unknown authority");
    expect(run.stdout).toBe("");
  });

  it.each(PROTOCOLS)("takes --cert/--key as the only credential over --protocol %s: the agent writes tenant-a and not tenant-b", async (protocol) => {
    const cert = pki.clients.agent;
    const own = ok(await call(protocol, "CreateSession", { namespace: "tenant-a", sessionId: `agent-${protocol}` }, { cert }));
    expect(own.session).toMatchObject({ namespace: "tenant-a", sessionId: `agent-${protocol}` });
    expect(ok(await call(protocol, "GetSession", { id: own.session.id }, { cert })).session.id).toBe(own.session.id);
    expect(failure(await call(protocol, "CreateSession", { namespace: "tenant-b", sessionId: `agent-${protocol}` }, { cert }))).toMatchObject({ code: "permission_denied" });
    // The same call with no certificate and no key is refused: the certificate was the credential.
    expect(failure(await call(protocol, "GetSession", { id: own.session.id }))).toMatchObject({ code: "unauthenticated" });
  });

  it("lets ops's certificate (ADMIN of all namespaces) reach any namespace", async () => {
    const run = await call("grpc", "CreateSession", { namespace: "tenant-b", sessionId: "by-ops" }, { cert: pki.clients.ops });
    expect(ok(run).session).toMatchObject({ namespace: "tenant-b", sessionId: "by-ops" });
  });

  it.each([
    ["expired", /CERT_HAS_EXPIRED/],
    ["otherCa", /does not chain to the client CA/],
    ["unmapped", /maps to no configured identity/],
  ] as const)("answers unauthenticated to a client certificate that is %s", async (which, problem) => {
    const before = certificateProblems(ctx.logs).length;
    const run = await call("grpc", "CreateSession", { namespace: "tenant-a", sessionId: `refused-${which}` }, { cert: pki.clients[which] });
    expect(failure(run)).toEqual({ code: "unauthenticated", message: "the client certificate is not accepted" });
    await expect.poll(() => certificateProblems(ctx.logs).slice(before), { timeout: 10_000 }).toEqual([expect.stringMatching(problem)]);
  });
});
