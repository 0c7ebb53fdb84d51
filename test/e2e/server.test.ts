/**
 * The server over real sockets: one port for Connect, gRPC and gRPC-Web over HTTP/1.1 and HTTP/2,
 * protocol sniffing, limits, request ids and access logs, health, and graceful shutdown.
 */
import http2 from "node:http2";
import type net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as S } from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatus } from "../../src/handlers/health.js";
import { createOnePortServer } from "../../src/net/one-port.js";
import { closed, collect, connect, dribblingSocket, readAll, startServer, transports, until, type TestServer } from "./harness.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("one port, every protocol", () => {
  let t: TestServer;
  beforeAll(async () => void (t = await startServer({ readMaxBytes: 1024, maxTimeoutMs: 2_000 })));
  afterAll(() => t.server.shutdown());

  it.each(["connect/http1.1", "grpc-web/http1.1", "grpc/http2", "connect/http2"])("answers Health.Check over %s", async (name) => {
    const client = createClient(Health, transports(t.url)[name]);
    let requestId: string | null = null;
    const res = await client.check({ service: "" }, { onHeader: (h) => (requestId = h.get("x-request-id")) });
    expect(res.status).toBe(S.SERVING);
    expect(requestId).toMatch(UUID);
  });

  it("answers GET /healthz with 200 ok over HTTP/1.1 and HTTP/2, and 404 elsewhere", async () => {
    const res = await fetch(`${t.url}/healthz`);
    expect([res.status, await res.text()]).toEqual([200, "ok"]);
    expect((await fetch(`${t.url}/nope`)).status).toBe(404);
    const session = http2.connect(t.url);
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz" });
      let data = "";
      req.on("response", (h) => expect(h[":status"]).toBe(200));
      req.on("data", (c) => (data += c));
      req.on("end", () => resolve(data));
      req.on("error", reject);
    });
    session.close();
    expect(body).toBe("ok");
  });

  it("routes a connection whose HTTP/2 preface arrives in pieces to HTTP/2", async () => {
    const raw = await connect(t.port);
    const received = readAll(raw, 30_000, 9);
    raw.write("PRI * HTTP/2.0\r\n");
    await sleep(50);
    raw.write("\r\nSM\r\n\r\n");
    await sleep(50);
    raw.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS frame
    const bytes = await received;
    raw.destroy();
    expect(bytes.length).toBeGreaterThanOrEqual(9);
    expect(bytes[3]).toBe(4); // the server's first frame is its SETTINGS frame

    const session = http2.connect(t.url, { createConnection: () => dribblingSocket(t.port) });
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz" });
      req.on("response", (h) => resolve(h[":status"]));
      req.on("error", reject);
      req.end();
    });
    session.destroy();
    expect(status).toBe(200);
  });

  it("routes a connection that starts like the preface but diverges to HTTP/1.1", async () => {
    const raw = await connect(t.port);
    const received = readAll(raw);
    raw.write("P");
    await sleep(50);
    raw.write("UT /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    expect((await received).toString("latin1")).toMatch(/^HTTP\/1\.1 404 /);
  });

  it("survives garbage, TLS on the cleartext port, bad frames and sockets that close early", async () => {
    const garbage = await connect(t.port);
    const reply = readAll(garbage);
    garbage.write("\x00\x01 not http at all\r\n\r\n");
    expect((await reply).toString("latin1")).toMatch(/^HTTP\/1\.1 400 /);

    const tls = await connect(t.port);
    const tlsReply = readAll(tls);
    tls.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    expect((await tlsReply).toString("latin1")).toMatch(/^HTTP\/1\.1 400 /);

    const badFrames = await connect(t.port);
    const goaway = readAll(badFrames);
    badFrames.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
    await goaway; // the session fails and the connection closes

    (await connect(t.port)).destroy(); // closed before sending anything
    const partial = await connect(t.port);
    partial.write("PRI * HT");
    await sleep(20);
    partial.resetAndDestroy(); // TCP RST in the middle of the preface
    const afterPreface = await connect(t.port);
    afterPreface.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    await sleep(20);
    afterPreface.resetAndDestroy();
    await sleep(50);

    for (const transport of Object.values(transports(t.url))) {
      expect((await createClient(Health, transport).check({ service: "" })).status).toBe(S.SERVING);
    }
  });

  it.each(["connect/http1.1", "grpc-web/http1.1", "grpc/http2", "connect/http2"])("rejects a message over readMaxBytes with resource_exhausted over %s", async (name) => {
    const client = createClient(Health, transports(t.url)[name]);
    const err = await client.check({ service: "x".repeat(2_000) }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });

  it("rejects a deadline over maxTimeoutMs with invalid_argument", async () => {
    for (const name of ["connect/http1.1", "grpc/http2"]) {
      const err = await createClient(Health, transports(t.url)[name]).check({ service: "" }, { timeoutMs: 10_000 }).catch((e) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    }
  });
});

describe("request ids and access logs", () => {
  let t: TestServer;
  beforeAll(async () => void (t = await startServer()));
  afterAll(() => t.server.shutdown());

  it("keeps a valid incoming x-request-id, logs one line per call and never logs headers", async () => {
    const client = createClient(Health, transports(t.url)["grpc/http2"]);
    let echoed: string | null = null;
    await client.check({ service: "" }, { headers: { "x-request-id": "req-42.a_b", authorization: "Bearer s3cr3t-token" }, onHeader: (h) => (echoed = h.get("x-request-id")) });
    expect(echoed).toBe("req-42.a_b");
    const line = t.logs.find((l) => l.request_id === "req-42.a_b");
    expect(line).toMatchObject({ msg: "rpc", service: "grpc.health.v1.Health", method: "Check", protocol: "grpc", code: "ok" });
    expect(typeof line?.duration_ms).toBe("number");
    expect(t.rawLogs()).not.toContain("s3cr3t");
    // Each key once: a JSON line with a repeated key reads differently in different parsers.
    const raw = t.rawLogs().split("\n").find((l) => l.includes('"req-42.a_b"'))!;
    expect(raw.match(/"service":/g)).toHaveLength(1);
  });

  it("replaces an invalid x-request-id with a UUID", async () => {
    const client = createClient(Health, transports(t.url)["connect/http1.1"]);
    for (const bad of ["has space", "x".repeat(129), "semi;colon"]) {
      let echoed: string | null = null;
      await client.check({ service: "" }, { headers: { "x-request-id": bad }, onHeader: (h) => (echoed = h.get("x-request-id")) });
      expect(echoed).toMatch(UUID);
    }
  });

  it("returns the request id with errors and logs their code", async () => {
    const client = createClient(Health, transports(t.url)["grpc-web/http1.1"]);
    const err = await client.check({ service: "no.such.Service" }, { headers: { "x-request-id": "err-1" } }).catch((e) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.NotFound });
    expect((err as ConnectError).metadata.get("x-request-id")).toBe("err-1");
    expect(t.logs.find((l) => l.request_id === "err-1")).toMatchObject({ code: "not_found", protocol: "grpc-web", method: "Check" });
  });

  it("logs a server stream when it ends", async () => {
    const client = createClient(Health, transports(t.url)["connect/http2"]);
    const abort = new AbortController();
    const w = collect(client.watch({ service: "" }, { signal: abort.signal, headers: { "x-request-id": "watch-1" } }));
    await until(() => w.seen.length === 1);
    expect(t.logs.some((l) => l.request_id === "watch-1")).toBe(false);
    abort.abort();
    await w.done;
    await until(() => t.logs.some((l) => l.request_id === "watch-1"));
    expect(t.logs.find((l) => l.request_id === "watch-1")).toMatchObject({ method: "Watch", code: "canceled", protocol: "connect" });
  });
});

describe("calls the client ends: cancels and deadlines", () => {
  let t: TestServer;
  beforeAll(async () => void (t = await startServer()));
  afterAll(() => t.server.shutdown());

  const NAMES = ["grpc/http2", "connect/http1.1", "grpc-web/http1.1", "connect/http2"];
  const idOf = (kind: string, name: string) => `${kind}-${name.replace(/[^a-z0-9]/g, "_")}`;

  it("logs server streams the client cancels as canceled, at info level, over every protocol", async () => {
    for (const name of NAMES) {
      const abort = new AbortController();
      const requestId = idOf("cancel", name);
      const w = collect(createClient(Health, transports(t.url)[name]).watch({ service: "" }, { signal: abort.signal, headers: { "x-request-id": requestId } }));
      await until(() => w.seen.length === 1);
      abort.abort();
      await w.done;
      await until(() => t.logs.some((l) => l.request_id === requestId));
      expect(t.logs.filter((l) => l.request_id === requestId), name).toEqual([expect.objectContaining({ msg: "rpc", method: "Watch", code: "canceled", level: 30 })]);
    }
  });

  it("logs server streams whose deadline passes as deadline_exceeded, at info level, over every protocol", async () => {
    // The deadline travels in the protocol's header alone: a client timer of the same length would
    // race the server's (on a busy machine the client's fires first and resets the stream: canceled).
    const deadline = (name: string) => (name.startsWith("connect") ? { "connect-timeout-ms": "300" } : { "grpc-timeout": "300m" });
    const watches = NAMES.map((name) => {
      const requestId = idOf("deadline", name);
      return { name, requestId, w: collect(createClient(Health, transports(t.url)[name]).watch({ service: "" }, { headers: { "x-request-id": requestId, ...deadline(name) } })) };
    });
    for (const { name, requestId, w } of watches) {
      await w.done;
      expect(w.error?.code, name).toBe(Code.DeadlineExceeded);
      await until(() => t.logs.some((l) => l.request_id === requestId));
      expect(t.logs.filter((l) => l.request_id === requestId), name).toEqual([expect.objectContaining({ msg: "rpc", method: "Watch", code: "deadline_exceeded", level: 30 })]);
    }
  });

  it("logs a stream whose HTTP/2 stream the client resets as canceled, and no line at error level", async () => {
    const session = http2.connect(t.url);
    const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers", "x-request-id": "rst-1" });
    req.end(Buffer.from([0, 0, 0, 0, 0])); // one empty HealthCheckRequest
    await new Promise((resolve) => req.once("data", resolve)); // the first status
    req.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => t.logs.some((l) => l.request_id === "rst-1"));
    session.close();
    expect(t.logs.find((l) => l.request_id === "rst-1")).toMatchObject({ code: "canceled", level: 30 });
    expect(t.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});

describe("calls refused before the interceptors", () => {
  let t: TestServer;
  beforeAll(async () => void (t = await startServer({ readMaxBytes: 1024, maxTimeoutMs: 2_000 })));
  afterAll(() => t.server.shutdown());

  /** Posts `body` to Health/Check with `headers`; returns the status, the x-request-id header and the log lines of that id. */
  async function post(headers: Record<string, string>, body: Uint8Array | string) {
    const res = await fetch(`${t.url}/grpc.health.v1.Health/Check`, { method: "POST", headers, body });
    await res.arrayBuffer();
    const requestId = res.headers.get("x-request-id");
    await until(() => t.logs.some((l) => l.request_id === requestId));
    return { status: res.status, requestId, lines: t.logs.filter((l) => l.request_id === requestId) };
  }
  const envelope = (b: Uint8Array) => Buffer.concat([Buffer.from([0, 0, 0, 0, b.length]), b]);
  const undecodable = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);

  it("gives an undecodable protobuf body a request id and a warn line (internal, as gRPC prescribes)", async () => {
    const connect = await post({ "content-type": "application/proto" }, undecodable);
    expect(connect.status).toBe(500);
    expect(connect.requestId).toMatch(UUID);
    expect(connect.lines).toEqual([expect.objectContaining({ msg: "rpc", service: "grpc.health.v1.Health", method: "Check", protocol: "connect", code: "internal", refused: "undecodable", level: 40 })]);
    const grpcWeb = await post({ "content-type": "application/grpc-web+proto", "x-request-id": "undecodable-1" }, envelope(undecodable));
    expect(grpcWeb.requestId).toBe("undecodable-1");
    expect(grpcWeb.lines).toEqual([expect.objectContaining({ protocol: "grpc-web", code: "internal", refused: "undecodable", level: 40 })]);
  });

  it("gives a body over readMaxBytes a request id and a warn line (resource_exhausted)", async () => {
    const { status, requestId, lines } = await post({ "content-type": "application/proto" }, Buffer.alloc(2_000, 0x0a));
    expect(status).toBe(429);
    expect(requestId).toMatch(UUID);
    expect(lines).toEqual([expect.objectContaining({ msg: "rpc", method: "Check", code: "resource_exhausted", refused: "too_large", level: 40 })]);
  });

  it("gives a wrong content type a request id and a warn line", async () => {
    const { status, requestId, lines } = await post({ "content-type": "text/plain" }, "hello");
    expect(status).toBe(415);
    expect(requestId).toMatch(UUID);
    expect(lines).toEqual([expect.objectContaining({ msg: "rpc", method: "Check", refused: "content_type", http_status: 415, level: 40 })]);
  });

  it("gives an invalid timeout a request id and a warn line (invalid_argument)", async () => {
    const { status, requestId, lines } = await post({ "content-type": "application/proto", "connect-timeout-ms": "60000" }, new Uint8Array());
    expect(status).toBe(400);
    expect(requestId).toMatch(UUID);
    expect(lines).toEqual([expect.objectContaining({ msg: "rpc", method: "Check", code: "invalid_argument", refused: "timeout", level: 40 })]);
  });

  it("gives a refused gRPC call over HTTP/2 the request id in its trailers-only response", async () => {
    const session = http2.connect(t.url);
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers", "x-request-id": "grpc-refused-1" });
      req.on("response", resolve);
      req.on("error", reject);
      req.end(envelope(undecodable));
    });
    session.close();
    expect(headers["x-request-id"]).toBe("grpc-refused-1");
    await until(() => t.logs.some((l) => l.request_id === "grpc-refused-1"));
    expect(t.logs.find((l) => l.request_id === "grpc-refused-1")).toMatchObject({ protocol: "grpc", code: "internal", refused: "undecodable", level: 40 });
  });
});

describe("health", () => {
  let t: TestServer;
  beforeAll(async () => void (t = await startServer()));
  afterAll(() => t.server.shutdown());

  it("checks, lists and reports not_found for unknown services", async () => {
    const client = createClient(Health, transports(t.url)["grpc/http2"]);
    t.health.set("sessiond.v1.SessionService", "NOT_SERVING");
    expect((await client.check({ service: "sessiond.v1.SessionService" })).status).toBe(S.NOT_SERVING);
    const list = await client.list({});
    expect(Object.fromEntries(Object.entries(list.statuses).map(([k, v]) => [k, v.status]))).toEqual({ "": S.SERVING, "sessiond.v1.SessionService": S.NOT_SERVING });
    await expect(client.check({ service: "nope" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("streams the current status and every change", async () => {
    const client = createClient(Health, transports(t.url)["grpc/http2"]);
    const abort = new AbortController();
    const w = collect(client.watch({ service: "later" }, { signal: abort.signal }));
    await until(() => w.seen.length === 1);
    t.health.set("later", S.SERVING);
    t.health.set("later", S.NOT_SERVING);
    t.health.set("later", S.SERVING);
    await until(() => w.seen.length === 4);
    abort.abort();
    await w.done;
    expect(w.seen).toEqual([S.SERVICE_UNKNOWN, S.SERVING, S.NOT_SERVING, S.SERVING]);
  });

  it("HealthStatus.watch throws the signal's reason instead of returning", async () => {
    const status = new HealthStatus();
    const abort = new AbortController();
    const it = status.watch("", abort.signal);
    expect((await it.next()).value).toBe(S.SERVING);
    const pending = it.next();
    const reason = new ConnectError("bye", Code.Unavailable);
    abort.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });
});

describe("graceful shutdown", () => {
  it("finishes unary calls, ends streams with unavailable, then refuses connections", async () => {
    const t = await startServer({ shutdownGraceMs: 60_000 }); // never the reason shutdown ends, however busy the machine
    const ts = transports(t.url);
    const watches = ["grpc/http2", "connect/http1.1", "grpc-web/http1.1", "connect/http2"].map((name) => collect(createClient(Health, ts[name]).watch({ service: "" })));
    await until(() => watches.every((w) => w.seen.length === 1));
    const unary = ["grpc/http2", "connect/http1.1"].map((name) => createClient(Health, ts[name]).check({ service: "slow:400" }));
    await until(() => t.slowCalls() === 2);

    const started = performance.now();
    t.health.setAll("NOT_SERVING"); // what app.ts does first
    await t.server.shutdown();
    const took = performance.now() - started;

    expect((await Promise.all(unary)).map((r) => r.status)).toEqual([S.SERVING, S.SERVING]);
    await Promise.all(watches.map((w) => w.done));
    for (const w of watches) {
      expect(w.seen).toEqual([S.SERVING, S.NOT_SERVING]);
      expect(w.error?.code).toBe(Code.Unavailable);
    }
    expect(took).toBeGreaterThan(250); // it waited for the slow calls
    expect(t.logs.find((l) => l.msg === "server closed")).toMatchObject({ forced_connections: 0 }); // and every connection closed by itself
    expect(t.server.signal.aborted).toBe(true);
    expect(t.logs.filter((l) => l.method === "Watch").map((l) => l.code)).toEqual(["unavailable", "unavailable", "unavailable", "unavailable"]);
    await expect(connect(t.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  }, 90_000); // past the grace period: a connection that never closes fails the forced_connections check, not the test's timeout

  it("destroys what is left after shutdownGraceMs", async () => {
    const t = await startServer({ shutdownGraceMs: 300 });
    const w = collect(createClient(Health, transports(t.url)["grpc/http2"]).watch({ service: "stubborn" }));
    const idle = await connect(t.port); // a connection that never sends a byte
    const idleClosed = closed(idle);
    await until(() => w.seen.length === 1);
    const started = performance.now();
    await t.server.shutdown();
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(290); // it waited for the grace period
    expect(t.logs.find((l) => l.msg === "server closed")?.forced_connections).toBeGreaterThan(0); // then destroyed what was left
    await w.done;
    expect(w.error).toBeInstanceOf(ConnectError);
    await idleClosed; // the idle connection was destroyed too
    await expect(connect(t.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("one-port listener", () => {
  it("closes connections that do not pick a protocol within sniffTimeoutMs", async () => {
    const listening = async (sniffTimeoutMs: number) => {
      const server = createOnePortServer((_req, res) => res.end(), { sniffTimeoutMs });
      await new Promise<void>((r) => server.listener.listen(0, "127.0.0.1", r));
      return { server, port: (server.listener.address() as net.AddressInfo).port };
    };
    // The control: the same silence on a server with a long sniffTimeoutMs, connected first. Its connection
    // still being open when ours are closed shows they were closed by their 100 ms, not by the default (10 s).
    const patient = await listening(60_000);
    const control = await connect(patient.port);
    const controlClosed = closed(control);
    const { server: port, port: p } = await listening(100);
    const silent = await connect(p);
    const partial = await connect(p);
    partial.write("PRI * HTTP/2");
    await Promise.all([closed(silent), closed(partial)]); // the server closes both
    expect([control.closed, patient.server.sockets.size]).toEqual([false, 1]);
    await until(() => port.sockets.size === 0);
    await port.drain();
    control.destroy();
    await controlClosed;
    await patient.server.drain();
  });

  it("enforces the HTTP/1.1 server's headersTimeout on handed-over connections", async () => {
    const port = createOnePortServer((_req, res) => res.end(), { http1: { headersTimeout: 100, requestTimeout: 100, connectionsCheckingInterval: 20 } });
    await new Promise<void>((r) => port.listener.listen(0, "127.0.0.1", r));
    const slow = await connect((port.listener.address() as net.AddressInfo).port);
    slow.write("GET / HTTP/1.1\r\nHost: x\r\n"); // headers never finish
    expect((await readAll(slow)).toString("latin1")).toMatch(/^HTTP\/1\.1 408 /); // returns once the server closes the connection
    await port.drain();
  });
});
