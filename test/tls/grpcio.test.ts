/**
 * grpcio (Debian's python3-grpcio, gRPC's C core on the system OpenSSL) against sessiond over TLS: server
 * verification against the test CA, a bearer API key, client certificates as the only credential (the
 * identity they map to, its namespace scope and its audit actor), refused client certificates, and a
 * server stream. The Python side (grpcio_client.py) has no generated stubs: this file encodes requests
 * and decodes answers with the generated TypeScript schemas, and grpcio carries the raw bytes.
 */
import { execFile, spawnSync } from "node:child_process";
import path from "node:path";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodServerStreaming, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AdminService, type ListAuditEventsResponse } from "../../gen/sessiond/v1/admin_service_pb.js";
import { BulkDeleteOutcome, SessionService, type BulkDeleteSessionsResponse, type CreateSessionResponse, type GetSessionResponse } from "../../gen/sessiond/v1/session_service_pb.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import type { IssuedCert } from "../setup/certs.js";
import { useServer } from "../setup/server.js";
import { AGENT_URI, certificateProblems, useTlsFixtures } from "../setup/tls-fixtures.js";

/** Debian's interpreter, where python3-grpcio is (a python3 earlier on PATH, e.g. pyenv's, lacks it). */
const PYTHON = "/usr/bin/python3";
const CLIENT = path.join(import.meta.dirname, "grpcio_client.py");

/**
 * Why the grpcio tests cannot run here, or "" when they can. Under CI a missing grpcio is no reason to
 * skip (as for Chromium, test/setup/browser.ts): the client then fails, so a broken install cannot pass.
 */
const noGrpcio =
  process.env.CI || spawnSync(PYTHON, ["-c", "import grpc"], { stdio: "ignore", timeout: 60_000 }).status === 0
    ? ""
    : `${PYTHON} cannot import grpc (apt-get install python3-grpcio): grpcio tests skipped`;
if (noGrpcio) console.warn(noGrpcio);

const pki = useTlsFixtures();
const ctx = useServer(pki.env);

type Method = DescMethodUnary | DescMethodServerStreaming;
/** One call for the Python client: the method and its request, encoded here. */
interface Call {
  method: Method;
  request: Uint8Array;
}
/** What a call ended with: its decoded responses (one for a unary call), or grpcio's status. */
type Outcome = { ok: true; messages: unknown[] } | { ok: false; code: string; details: string };

/** A call of `method` with `request`, encoded with the generated schema. */
function call<M extends Method>(method: M, request: MessageInitShape<M["input"]>): Call {
  return { method, request: toBinary(method.input as DescMessage, create(method.input as DescMessage, request as MessageInitShape<DescMessage>)) };
}

/** What grpcio presents: the CA it trusts (the test CA by default), a client certificate, a bearer secret. */
interface Presents {
  trust?: string;
  cert?: IssuedCert;
  bearer?: string;
  requestId?: string;
}

/** Runs `calls` in order on one grpcio TLS channel (one Python process); resolves with their outcomes. */
function grpcio(presents: Presents, calls: Call[]): Promise<Outcome[]> {
  const metadata = [...(presents.bearer ? [["authorization", `Bearer ${presents.bearer}`]] : []), ...(presents.requestId ? [["x-request-id", presents.requestId]] : [])];
  const job = {
    target: new URL(ctx.url).host,
    ca: presents.trust ?? pki.ca.certFile,
    cert: presents.cert?.certFile ?? null,
    key: presents.cert?.keyFile ?? null,
    metadata,
    calls: calls.map((c) => ({ method: `/${c.method.parent.typeName}/${c.method.name}`, stream: c.method.methodKind === "server_streaming", request: Buffer.from(c.request).toString("base64") })),
  };
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [CLIENT], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`grpcio client failed: ${err.message}\n${stderr}`));
      const { results } = JSON.parse(stdout) as { results: ({ ok: true; responses: string[] } | { ok: false; code: string; details: string })[] };
      resolve(results.map((r, i) => (r.ok ? { ok: true, messages: r.responses.map((b) => fromBinary(calls[i].method.output as DescMessage, Buffer.from(b, "base64"))) } : r)));
    });
    child.stdin!.end(JSON.stringify(job));
  });
}

/** The messages of a call that must have succeeded. */
function messagesOf<T>(outcome: Outcome): T[] {
  if (!outcome.ok) throw new Error(`expected success, got ${outcome.code}: ${outcome.details}`);
  return outcome.messages as T[];
}

const S = SessionService.method;

describe.skipIf(noGrpcio)("grpcio over TLS", { timeout: 120_000 }, () => {
  it("verifies the server against the test CA and calls with a bearer API key", async () => {
    const [created, got] = await grpcio({ bearer: TEST_ADMIN_KEY }, [
      call(S.createSession, { namespace: "py-bearer", sessionId: "p1", user: "bob" }),
      call(S.getSession, { namespace: "py-bearer", sessionId: "p1" }),
    ]);
    const { session } = messagesOf<CreateSessionResponse>(created)[0];
    expect(session).toMatchObject({ namespace: "py-bearer", sessionId: "p1", user: "bob" });
    expect(messagesOf<GetSessionResponse>(got)[0].session).toMatchObject({ id: session!.id, namespace: "py-bearer", sessionId: "p1", user: "bob" });
  });

  it("refuses a server whose certificate chains to a CA it was not told to trust", async () => {
    const [outcome] = await grpcio({ trust: pki.otherCa.certFile, bearer: TEST_ADMIN_KEY }, [call(S.createSession, { namespace: "py-bearer", sessionId: "never" })]);
    expect(outcome).toMatchObject({ ok: false, code: "UNAVAILABLE" });
    expect((outcome as { details: string }).details).toMatch(/certificate verify failed|CERTIFICATE_VERIFY_FAILED/i);
  });

  it("takes a client certificate as the only credential: the agent writes tenant-a, not tenant-b, and is audited as its SPIFFE id", async () => {
    const requestId = `grpcio-agent-${Date.now()}`;
    const outcomes = await grpcio({ cert: pki.clients.agent, requestId }, [
      call(S.createSession, { namespace: "tenant-a", sessionId: "agent-1", user: "agent" }),
      call(S.createSession, { namespace: "tenant-b", sessionId: "agent-1" }),
      call(S.listSessions, { namespace: "tenant-b" }),
    ]);
    const { session } = messagesOf<CreateSessionResponse>(outcomes[0])[0];
    expect(session).toMatchObject({ namespace: "tenant-a", sessionId: "agent-1" });
    expect(outcomes[1]).toMatchObject({ ok: false, code: "PERMISSION_DENIED" });
    expect(outcomes[2]).toMatchObject({ ok: false, code: "PERMISSION_DENIED" });
    const [got] = await grpcio({ cert: pki.clients.agent }, [call(S.getSession, { id: session!.id })]);
    expect(messagesOf<GetSessionResponse>(got)[0].session?.id).toBe(session!.id);

    // ops's certificate maps to an ADMIN of every namespace: it reads the audit log, which names the agent.
    const [audit] = await grpcio({ cert: pki.clients.ops }, [call(AdminService.method.listAuditEvents, { actor: `certificate:uri:${AGENT_URI}` })]);
    const events = messagesOf<ListAuditEventsResponse>(audit)[0].events.filter((e) => e.requestId === requestId);
    expect(events.map((e) => [e.method, e.namespace, e.code]).sort()).toEqual([
      ["sessiond.v1.SessionService/CreateSession", "tenant-a", "ok"],
      ["sessiond.v1.SessionService/CreateSession", "tenant-b", "permission_denied"],
    ]);
  });

  it("lets a secret in the metadata win over the client certificate", async () => {
    const [wrongKey, adminKey] = await Promise.all([
      grpcio({ cert: pki.clients.agent, bearer: "sk_not_a_real_key" }, [call(S.createSession, { namespace: "tenant-a", sessionId: "agent-2" })]),
      grpcio({ cert: pki.clients.agent, bearer: TEST_ADMIN_KEY }, [call(S.createSession, { namespace: "tenant-b", sessionId: "agent-2" })]),
    ]);
    expect(wrongKey[0]).toMatchObject({ ok: false, code: "UNAUTHENTICATED" });
    expect(messagesOf<CreateSessionResponse>(adminKey[0])[0].session).toMatchObject({ namespace: "tenant-b", sessionId: "agent-2" });
  });

  it.each([
    ["expired", /CERT_HAS_EXPIRED/],
    ["otherCa", /does not chain to the client CA/],
    ["unmapped", /maps to no configured identity/],
  ] as const)("answers UNAUTHENTICATED to a client certificate that is %s, on unary and streaming calls", async (which, problem) => {
    const before = certificateProblems(ctx.logs).length;
    const outcomes = await grpcio({ cert: pki.clients[which] }, [
      call(S.createSession, { namespace: "tenant-a", sessionId: `refused-${which}` }),
      call(S.bulkDeleteSessions, { namespace: "tenant-a", selector: { case: "sessionIds", value: { values: ["agent-1"] } } }),
    ]);
    for (const outcome of outcomes) expect(outcome).toEqual({ ok: false, code: "UNAUTHENTICATED", details: "the client certificate is not accepted" });
    // Why is told to the operator only.
    await expect.poll(() => certificateProblems(ctx.logs).slice(before), { timeout: 10_000 }).toEqual([expect.stringMatching(problem), expect.stringMatching(problem)]);
  });

  it("streams BulkDeleteSessions over TLS to the agent's certificate", async () => {
    const ids = ["bulk-1", "bulk-2", "bulk-3"];
    const outcomes = await grpcio({ cert: pki.clients.agent }, [
      ...ids.map((sessionId) => call(S.createSession, { namespace: "tenant-a", sessionId })),
      call(S.bulkDeleteSessions, { namespace: "tenant-a", selector: { case: "sessionIds", value: { values: [...ids, "missing"] } }, batchSize: 2 }),
      call(S.getSession, { namespace: "tenant-a", sessionId: "bulk-1" }),
    ]);
    for (const o of outcomes.slice(0, 3)) messagesOf(o);
    const stream = messagesOf<BulkDeleteSessionsResponse>(outcomes[3]);
    expect(stream.map((m) => m.event.case)).toEqual(["started", "progress", "progress", "summary"]);
    const results = stream.flatMap((m) => (m.event.case === "progress" ? m.event.value.results : []));
    expect(results.map((r) => [r.identifier, r.outcome])).toEqual([
      ["bulk-1", BulkDeleteOutcome.DELETED],
      ["bulk-2", BulkDeleteOutcome.DELETED],
      ["bulk-3", BulkDeleteOutcome.DELETED],
      ["missing", BulkDeleteOutcome.NOT_FOUND],
    ]);
    const summary = stream.at(-1)!.event;
    expect(summary.case === "summary" && summary.value.counters).toMatchObject({ completed: 4n, total: 4n, deleted: 3n, notFound: 1n, failed: 0n });
    expect(outcomes[4]).toMatchObject({ ok: false, code: "NOT_FOUND" });
  });
});
