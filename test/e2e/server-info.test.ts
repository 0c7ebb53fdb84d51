import { readFileSync } from "node:fs";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { MissingCapabilityError, requireCapabilities } from "../../src/client/capabilities.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { bearer, TEST_ADMIN_KEY } from "../setup/auth.js";
import { useServer } from "../setup/server.js";

const ORIGIN = "https://app.example.com";
const ctx = useServer({ SESSIOND_CORS_ORIGINS: `${ORIGIN},http://localhost:5173` });
const AUTH = `Bearer ${TEST_ADMIN_KEY}`;
const VERSION = JSON.parse(readFileSync("package.json", "utf8")).version as string;

describe("GetServerInfo and the sessiond-version header", () => {
  it("returns the package version and the capabilities, open to every caller", async () => {
    const info = await createClient(ServerInfoService, createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1" })).getServerInfo({});
    expect(info.version).toBe(VERSION);
    expect(info.capabilities).toEqual(expect.arrayContaining(["sessions.v1", "sessions.bulk_delete.stream", "traces.v1", "otlp.grpc", "otlp.http"]));
    expect(new Set(info.capabilities).size).toBe(info.capabilities.length);
  });

  it("is on every response: gRPC over HTTP/2, Connect errors, /healthz and OTLP/HTTP", async () => {
    const seen: (string | null)[] = [];
    const capture: Interceptor = (next) => async (req) => {
      const res = await next(req);
      seen.push(res.header.get("sessiond-version"));
      return res;
    };
    await createClient(ServerInfoService, createGrpcTransport({ baseUrl: ctx.url, interceptors: [capture] })).getServerInfo({});
    expect(seen).toEqual([VERSION]);

    const missing = await fetch(`${ctx.url}/sessiond.v1.SessionService/GetSession`, { method: "POST", headers: { "content-type": "application/json", authorization: AUTH }, body: '{"sessionId":"nope"}' });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("sessiond-version")).toBe(VERSION);
    for (const [path, init] of [["/healthz", {}], ["/v1/traces", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }]] as const) {
      const res = await fetch(`${ctx.url}${path}`, init);
      expect(res.headers.get("sessiond-version")).toBe(VERSION);
    }
  });

  it("lets a client demand capabilities and explains what is missing", async () => {
    const transport = createConnectTransport({ baseUrl: ctx.url, httpVersion: "1.1" });
    await expect(requireCapabilities(transport, ["sessions.bulk_delete.stream"])).resolves.toMatchObject({ version: VERSION });
    const err = await requireCapabilities(transport, ["sessions.v1", "time_travel", "teleport"]).catch((e) => e);
    expect(err).toBeInstanceOf(MissingCapabilityError);
    expect(err.missing).toEqual(["time_travel", "teleport"]);
    expect(err.message).toBe(`sessiond ${VERSION} lacks "time_travel", "teleport"; upgrade the server or do without these features`);
  });
});

describe("CORS for browser clients", () => {
  const preflight = (origin: string) =>
    fetch(`${ctx.url}/sessiond.v1.SessionService/CreateSession`, {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,connect-protocol-version,authorization" },
    });

  it("answers a preflight from an allowed origin with Connect's methods and headers plus Authorization", async () => {
    const res = await preflight(ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(", ");
    expect(allowed).toEqual(expect.arrayContaining(["content-type", "connect-protocol-version", "authorization", "x-api-key"]));
    expect(res.headers.get("vary")).toBe("Origin");
  });

  it("marks responses to an allowed origin readable, including the version header, and keeps other origins out", async () => {
    const ok = await fetch(`${ctx.url}/sessiond.v1.SessionService/CreateSession`, {
      method: "POST",
      headers: { Origin: "http://localhost:5173", "content-type": "application/json", authorization: AUTH },
      body: JSON.stringify({ namespace: "cors" }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(ok.headers.get("access-control-expose-headers")?.toLowerCase()).toContain("sessiond-version");

    const denied = await preflight("https://evil.example");
    expect(denied.status).not.toBe(204);
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
    const sneaky = await fetch(`${ctx.url}/sessiond.v1.SessionService/CreateSession`, {
      method: "POST",
      headers: { Origin: "https://evil.example", "content-type": "application/json" },
      body: "{}",
    });
    expect(sneaky.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses a malformed SESSIOND_CORS_ORIGINS at start, naming the variable", () => {
    expect(() => loadConfig({ SESSIOND_CORS_ORIGINS: "https://app.example.com/path" })).toThrow(ConfigError);
    expect(() => loadConfig({ SESSIOND_CORS_ORIGINS: "app.example.com" })).toThrow(/^SESSIOND_CORS_ORIGINS: "app.example.com" is not an origin/);
    expect(loadConfig({ SESSIOND_CORS_ORIGINS: " *, https://a.example " }).corsOrigins).toEqual(["*", "https://a.example"]);
    expect(loadConfig({}).corsOrigins).toEqual([]);
  });
});

describe("sessiond-version on streams", () => {
  it("is sent with the headers of a server stream", async () => {
    const seen: (string | null)[] = [];
    const capture: Interceptor = (next) => async (req) => {
      const res = await next(req);
      seen.push(res.header.get("sessiond-version"));
      return res;
    };
    const client = createClient(SessionService, createGrpcTransport({ baseUrl: ctx.url, interceptors: [capture, bearer(TEST_ADMIN_KEY)] }));
    const err = await (async () => {
      for await (const _ of client.bulkDeleteSessions({ namespace: "v", selector: { case: "ids", value: { values: ["not-an-id"] } } }));
    })().catch((e) => e);
    expect(err).toBeUndefined();
    expect(seen).toEqual([VERSION]);
  });
});
