/**
 * TLS and mutual TLS on the one port, with connect-node over HTTP/2 and HTTP/1.1 and raw TLS
 * connections: ALPN, the protocol policy, cleartext beside TLS (and refused when TLS is required),
 * client certificates as credentials (identities, refusals that do not say why, the authorization
 * matrix once more with certificate identities) and certificate rotation while a bulk delete streams.
 * grpcio, buf curl and Chromium over TLS are in the other files of this folder.
 */
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role } from "../../gen/sessiond/v1/auth_pb.js";
import { BulkDeleteOutcome, SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { CERTIFICATE_REFUSED } from "../../src/domain/certificate-identities.js";
import { bearer, codeOf, TEST_ADMIN_KEY } from "../setup/auth.js";
import { runMatrix, EXPECTED, type Caller } from "../setup/authorization-matrix.js";
import { issueServerCert, type IssuedCert, type IssueOptions } from "../setup/certs.js";
import { AGENT_URI, CLIENT_IDENTITIES, useTlsFixtures } from "../setup/tls-fixtures.js";
import { useServer } from "../setup/server.js";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";

const A = "tenant-a";
const B = "tenant-b";
const DAY = 24 * 3600_000;

// Certificates, made before the servers start (their files are in the servers' settings): the shared
// fixtures (test/setup/tls-fixtures.ts) plus the ones only this file needs.
const fx = useTlsFixtures();
const { ca, server: serverCert } = fx;
const spiffe = (ns: string, sa: string) => `spiffe://mesh.test/ns/${ns}/sa/${sa}`;
const client = (name: string, o: Partial<IssueOptions> = {}) => ca.issue({ name, usage: "client", ...o });
const certs = {
  ...fx.clients,
  notYet: client("not-yet", { uris: [AGENT_URI], notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) }),
  serverOnly: ca.issue({ name: "server-only", usage: "server", uris: [AGENT_URI] }),
  // The matrix: each role for all namespaces (by common name) and for namespace A (by SPIFFE id).
  ...Object.fromEntries(
    (["reader", "writer", "admin"] as const).flatMap((role) => [
      [`${role}-all`, client(`${role}-all`, { cn: `${role}-all` })],
      [`${role}-a`, client(`${role}-a`, { uris: [spiffe(A, role)] })],
    ]),
  ),
} as Record<string, IssuedCert>;
// The server reads its certificate from these paths; the rotation test rewrites them.
const liveDir = mkdtempSync(path.join(tmpdir(), "sessiond-tls-live-"));
afterAll(() => rmSync(liveDir, { recursive: true, force: true }));
const live = { certFile: path.join(liveDir, "live.pem"), keyFile: path.join(liveDir, "live.key") };
copyFileSync(serverCert.certFile, live.certFile);
copyFileSync(serverCert.keyFile, live.keyFile);

const identities = [
  ...CLIENT_IDENTITIES,
  ...(["reader", "writer", "admin"] as const).flatMap((role) => [
    { cn: `${role}-all`, role },
    { uri: spiffe(A, role), role, namespace: A },
  ]),
];

const tlsEnv = {
  ...fx.env,
  SESSIOND_TLS_CERT_FILE: live.certFile,
  SESSIOND_TLS_KEY_FILE: live.keyFile,
  SESSIOND_TLS_CLIENT_IDENTITIES: JSON.stringify(identities),
  SESSIOND_TLS_RELOAD_INTERVAL_MS: "200",
};
const ctx = useServer(tlsEnv);
const strict = useServer({ SESSIOND_TLS_CERT_FILE: serverCert.certFile, SESSIOND_TLS_KEY_FILE: serverCert.keyFile, SESSIOND_TLS_REQUIRED: "true" });

/** TLS options trusting the test CA, with a client certificate when given. */
const trust = (cert?: IssuedCert) => ({ ca: ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) });

/** Every protocol over TLS, sending `secret` when given and presenting `cert` when given. */
function tlsTransports(baseUrl: string, o: { secret?: string; cert?: IssuedCert } = {}): Record<string, Transport> {
  const interceptors = o.secret ? [bearer(o.secret)] : [];
  const nodeOptions = trust(o.cert);
  return {
    "grpc/h2": createGrpcTransport({ baseUrl, interceptors, nodeOptions }),
    "connect/h2": createConnectTransport({ baseUrl, httpVersion: "2", interceptors, nodeOptions }),
    "connect/http1.1": createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors, nodeOptions }),
    "grpc-web/http1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors, nodeOptions }),
  };
}

/** Opens a raw TLS connection; resolves with what was negotiated, or the error. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<{ alpn: string | false; protocol: string | null; cipher: string; fingerprint?: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: ca.cert, ...options }, () => {
      const out = { alpn: socket.alpnProtocol ?? false, protocol: socket.getProtocol(), cipher: socket.getCipher().name, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 };
      socket.destroy();
      resolve(out);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** GET over https trusting the test CA. */
function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: ca.cert }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
      .on("error", reject);
  });
}

const port = (url: string) => Number(new URL(url).port);
const logLines = () => ctx.logs.flatMap((chunk) => chunk.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));

beforeAll(async () => {
  const admin = createClient(AdminService, tlsTransports(ctx.url, { secret: TEST_ADMIN_KEY })["connect/h2"]);
  await admin.createNamespace({ name: A });
  await admin.createNamespace({ name: B });
});

describe("TLS on the one port", () => {
  it("serves gRPC, Connect and gRPC-Web over TLS on HTTP/2 and HTTP/1.1", async () => {
    expect(ctx.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    for (const [name, transport] of Object.entries(tlsTransports(ctx.url, { secret: TEST_ADMIN_KEY }))) {
      const sessions = createClient(SessionService, transport);
      const { session } = await sessions.createSession({ namespace: A, sessionId: `over-${name}` });
      expect((await sessions.getSession({ id: session!.id })).session?.sessionId, name).toBe(`over-${name}`);
    }
  });

  it("negotiates h2 and http/1.1 by ALPN, with TLS 1.3 by default", async () => {
    expect(await handshake(port(ctx.url), { ALPNProtocols: ["h2", "http/1.1"] })).toMatchObject({ alpn: "h2", protocol: "TLSv1.3" });
    expect(await handshake(port(ctx.url), { ALPNProtocols: ["http/1.1"] })).toMatchObject({ alpn: "http/1.1" });
  });

  it("speaks TLS 1.2 and 1.3 with forward-secret AEAD ciphers only", async () => {
    expect(await handshake(port(ctx.url), { minVersion: "TLSv1", maxVersion: "TLSv1.1" })).toHaveProperty("error");
    // No ECDHE (static RSA key exchange), no AEAD (CBC), and no AEAD-less TLS 1.2 suite.
    expect(await handshake(port(ctx.url), { maxVersion: "TLSv1.2", ciphers: "AES128-GCM-SHA256:AES128-SHA" })).toHaveProperty("error");
    expect(await handshake(port(ctx.url), { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA" })).toHaveProperty("error");
    expect(await handshake(port(ctx.url), { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" })).toMatchObject({ protocol: "TLSv1.2", cipher: "ECDHE-ECDSA-AES128-GCM-SHA256" });
    expect(await handshake(port(ctx.url), { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-CHACHA20-POLY1305" })).toMatchObject({ protocol: "TLSv1.2" });
  });

  it("serves the probes and the console over https", async () => {
    expect(await httpsGet(`${ctx.url}/readyz`)).toEqual({ status: 200, body: "ok" });
    expect(await httpsGet(`${ctx.url}/livez`)).toEqual({ status: 200, body: "ok" });
    const consolePage = await httpsGet(`${ctx.url}/console`);
    expect(consolePage.status).toBe(200);
    expect(consolePage.body).toContain("<html");
  });

  it("takes OTLP/HTTP over https", async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = https.request(`${ctx.url}/v1/traces`, { method: "POST", ca: ca.cert, headers: { "content-type": "application/json", authorization: `Bearer ${TEST_ADMIN_KEY}`, "sessiond-namespace": A } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on("error", reject);
      req.end(JSON.stringify({ resourceSpans: [] }));
    });
    expect(res).toBe(200);
  });

  it("still serves cleartext on the same port unless TLS is required", async () => {
    const cleartext = ctx.url.replace("https:", "http:");
    const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: cleartext, interceptors: [bearer(TEST_ADMIN_KEY)] }));
    expect((await sessions.createSession({ namespace: A, sessionId: "cleartext" })).session?.sessionId).toBe("cleartext");
  });

  it("refuses cleartext altogether with SESSIOND_TLS_REQUIRED: a 400 naming https for HTTP/1.1, a GOAWAY saying so for HTTP/2", async () => {
    const cleartext = strict.url.replace("https:", "http:");
    const res = await fetch(`${cleartext}/livez`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("use https://");
    const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: cleartext, interceptors: [bearer(TEST_ADMIN_KEY)] }));
    expect(await codeOf(grpc.getSession({ id: "x" }))).toBeDefined();
    // What that client was told: the server preface, then GOAWAY (type 7) with INADEQUATE_SECURITY (0xc) and why.
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = net.connect(port(strict.url), "127.0.0.1", () => socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      socket.on("data", (c) => chunks.push(c));
      socket.on("close", () => resolve(Buffer.concat(chunks)));
      socket.on("error", reject);
    });
    expect(answer[9 + 3]).toBe(7);
    expect(answer.readUInt32BE(9 + 9 + 4)).toBe(0xc);
    expect(answer.subarray(9 + 9 + 8).toString()).toBe("this port serves TLS only");
    // The same call over TLS gets through to the method.
    const secure = createClient(SessionService, createGrpcTransport({ baseUrl: strict.url, interceptors: [bearer(TEST_ADMIN_KEY)], nodeOptions: trust() }));
    expect(await codeOf(secure.getSession({ id: "x" }))).toBe(Code.InvalidArgument);
  });
});

describe("TLS settings at start", () => {
  const start = (env: Record<string, string>) =>
    startApp(loadConfig({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: ctx.db.url, LOG_LEVEL: "silent", ...env }), createLogger("silent")).then(async (app) => {
      await app.stop();
      return "started";
    });

  it("refuses to start with a file it cannot read, or a key that does not match the certificate, naming the setting", async () => {
    await expect(start({ SESSIOND_TLS_CERT_FILE: path.join(liveDir, "missing.pem"), SESSIOND_TLS_KEY_FILE: live.keyFile })).rejects.toThrow(/^SESSIOND_TLS_CERT_FILE: cannot read .*missing\.pem: ENOENT$/);
    await expect(start({ ...fx.env, SESSIOND_TLS_CLIENT_CA_FILE: path.join(liveDir, "missing-ca.pem") })).rejects.toThrow(/^SESSIOND_TLS_CLIENT_CA_FILE: cannot read/);
    await expect(start({ SESSIOND_TLS_CERT_FILE: serverCert.certFile, SESSIOND_TLS_KEY_FILE: certs.agent.keyFile })).rejects.toThrow(/^SESSIOND_TLS_CERT_FILE\/SESSIOND_TLS_KEY_FILE: the certificate and key do not make a TLS context/);
    await expect(start({ SESSIOND_TLS_CERT_FILE: serverCert.keyFile, SESSIOND_TLS_KEY_FILE: serverCert.keyFile })).rejects.toThrow(/^SESSIOND_TLS_CERT_FILE/);
    expect(await start({ SESSIOND_TLS_CERT_FILE: serverCert.certFile, SESSIOND_TLS_KEY_FILE: serverCert.keyFile })).toBe("started");
  });
});

describe("mutual TLS: a client certificate is a credential", () => {
  it("acts as the identity it maps to: a WRITER of one namespace, recorded in the audit log", async () => {
    for (const [name, transport] of Object.entries(tlsTransports(ctx.url, { cert: certs.agent }))) {
      const sessions = createClient(SessionService, transport);
      const { session } = await sessions.createSession({ sessionId: `agent-${name}` });
      expect(session!.namespace, name).toBe(A);
      expect(await codeOf(sessions.createSession({ namespace: B, sessionId: "x" })), name).toBe(Code.PermissionDenied);
    }
    const admin = createClient(AdminService, tlsTransports(ctx.url, { cert: certs.ops })["connect/http1.1"]);
    const { events } = await admin.listAuditEvents({ namespace: A, actor: `certificate:uri:${AGENT_URI}` });
    expect(events.filter((e) => e.method === "sessiond.v1.SessionService/CreateSession" && e.code === "ok")).toHaveLength(4);
    // An ADMIN identity for all namespaces manages keys, and is named as their creator.
    const { apiKey: key } = await admin.createApiKey({ displayName: "made over mTLS", role: Role.READER, namespace: A });
    expect(key?.createdBy).toBe("certificate:cn:ops");
  });

  it("is refused with one and the same answer whether it does not chain, is expired or not yet valid, is not for clients, or maps to nothing", async () => {
    for (const which of ["expired", "notYet", "otherCa", "unmapped", "serverOnly"]) {
      for (const [name, transport] of Object.entries(tlsTransports(ctx.url, { cert: certs[which] }))) {
        const err = await createClient(SessionService, transport).getSession({ namespace: A, sessionId: "x" }).then(() => undefined, ConnectError.from);
        expect(err?.code, `${which} over ${name}`).toBe(Code.Unauthenticated);
        expect(err?.rawMessage, `${which} over ${name}`).toBe(CERTIFICATE_REFUSED);
      }
      // The handshake itself succeeded: nothing at the TLS level tells which check failed.
      expect(await handshake(port(ctx.url), { cert: certs[which].cert, key: certs[which].key })).toHaveProperty("alpn");
    }
    // The operator's log says which.
    const problems = new Set(logLines().filter((l) => l.msg === "rpc rejected" && l.certificate_problem).map((l) => String(l.certificate_problem)));
    const chain = (why: string) => `does not chain to the client CA or is out of its validity (${why})`;
    expect([...problems].sort()).toEqual(
      [chain("CERT_HAS_EXPIRED"), chain("CERT_NOT_YET_VALID"), chain("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), chain("INVALID_PURPOSE"), "it maps to no configured identity (SESSIOND_TLS_CLIENT_IDENTITIES)"].sort(),
    );
  });

  it("gives way to an API key sent with it, and asks for one when there is neither", async () => {
    const both = createClient(SessionService, tlsTransports(ctx.url, { cert: certs.agent, secret: TEST_ADMIN_KEY })["grpc/h2"]);
    expect((await both.createSession({ namespace: B, sessionId: "key-wins" })).session?.namespace).toBe(B);
    const neither = createClient(SessionService, tlsTransports(ctx.url)["grpc/h2"]);
    const err = await neither.getSession({ namespace: A, sessionId: "x" }).then(() => undefined, ConnectError.from);
    expect(err?.code).toBe(Code.Unauthenticated);
    expect(err?.rawMessage).toMatch(/missing credentials/);
  });

  it("answers the authorization matrix like API keys of the same role and scope", async () => {
    const callers: (Caller & { cert: IssuedCert })[] = [];
    for (const role of ["reader", "writer", "admin"] as const) {
      callers.push({ name: `${role} certificate of all namespaces`, secret: "", kind: "key", via: "certificate", role, cert: certs[`${role}-all`] });
      callers.push({ name: `${role} certificate of ${A}`, secret: "", kind: "key", via: "certificate", role, namespace: A, cert: certs[`${role}-a`] });
    }
    for (const which of ["expired", "otherCa", "unmapped"]) callers.push({ name: `${which} certificate`, secret: "", kind: "bad", via: "certificate", cert: certs[which] });
    const { mismatches, checked } = await runMatrix(callers, (c) => tlsTransports(ctx.url, { cert: (c as (typeof callers)[number]).cert })["grpc/h2"], A, B);
    expect(mismatches).toEqual([]);
    expect(checked).toBe(callers.length * Object.keys(EXPECTED).length * 2);
  }, 180_000);
});

describe("certificate rotation", () => {
  const fingerprint = async () => {
    const r = await handshake(port(ctx.url), {});
    if ("error" in r) throw new Error(r.error);
    return r.fingerprint;
  };
  const waitFor = async (want: string | undefined) => {
    for (let i = 0; i < 150 && (await fingerprint()) !== want; i++) await sleep(100);
    return fingerprint();
  };
  const install = (cert: IssuedCert, which: "cert" | "key" | "both" = "both") => {
    if (which !== "key") writeFileSync(live.certFile, cert.cert);
    if (which !== "cert") writeFileSync(live.keyFile, cert.key);
  };
  const fp = (cert: IssuedCert) => new X509Certificate(cert.cert).fingerprint256;

  it("serves a new certificate without a restart while a bulk delete streams on, and keeps the old one through a half-written rotation", async () => {
    const sessions = createClient(SessionService, tlsTransports(ctx.url, { secret: TEST_ADMIN_KEY })["grpc/h2"]);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await sessions.createSession({ namespace: A, sessionId: `rot-${i}` })).session!.id);
    expect(await fingerprint()).toBe(fp(serverCert));

    const outcomes = new Map<string, BulkDeleteOutcome>();
    const stream = sessions.bulkDeleteSessions({ namespace: A, selector: { case: "ids", value: { values: ids } }, batchSize: 10 })[Symbol.asyncIterator]();
    const record = (m: Awaited<ReturnType<typeof stream.next>>) => {
      if (!m.done && m.value.event.case === "progress") for (const r of m.value.event.value.results) outcomes.set(r.identifier, r.outcome);
    };
    record(await stream.next());

    // Half-way: a new certificate beside the old key does not load; the old one keeps serving.
    const next = issueServerCert(ca, "server-2");
    install(next, "cert");
    for (let i = 0; i < 100 && !logLines().some((l) => String(l.msg).startsWith("TLS files changed but could not be loaded")); i++) await sleep(50);
    expect(logLines().some((l) => String(l.msg).startsWith("TLS files changed but could not be loaded"))).toBe(true);
    expect(await fingerprint()).toBe(fp(serverCert));
    // Then the key: new handshakes get the new certificate.
    install(next, "key");
    expect(await waitFor(fp(next))).toBe(fp(next));
    expect(logLines().some((l) => l.msg === "TLS certificate reloaded")).toBe(true);

    // The call that started on the old certificate finishes on its connection, every id reported once.
    for (let m = await stream.next(); !m.done; m = await stream.next()) record(m);
    expect(outcomes.size).toBe(ids.length);
    expect([...outcomes.values()].every((o) => o === BulkDeleteOutcome.DELETED)).toBe(true);
    // New clients get the new certificate and work.
    const fresh = createClient(SessionService, tlsTransports(ctx.url, { secret: TEST_ADMIN_KEY })["connect/http1.1"]);
    expect((await fresh.createSession({ namespace: A, sessionId: "after-rotation" })).session?.sessionId).toBe("after-rotation");
  }, 120_000);
});
