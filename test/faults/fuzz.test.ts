/**
 * Issue 12: a fuzzer against a real sessiond process. Every RPC of every service on the port (from the
 * generated descriptors: sessiond.v1, OTLP, gRPC health and reflection) receives mutated bodies over
 * Connect JSON and proto (unary and streaming), gRPC over HTTP/2 and gRPC-Web: random bytes, damaged
 * protobuf, wrong JSON types, huge strings, NULs and lone surrogates, out-of-range numbers and enums,
 * deep nesting, empty bodies, bad compression flags and frame lengths. With the ADMIN key, so calls
 * reach the handlers.
 *
 * Checked: no call ends `unknown` (or without a code); `internal` only for bodies that are not
 * protobuf at all; no message carries SQL or a stack trace; no error-level log line; and the server
 * still serves afterwards.
 *
 * Reproducible: FUZZ_SEED=<seed> replays a run (the seed is printed), FUZZ_CASE=<n> replays one case,
 * FUZZ_CASES=<n> sets how many (default 3000).
 */
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { reflectedFiles } from "../../src/routes.js";
import { connectAs, TEST_ADMIN_KEY } from "../setup/auth.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { caseSeed, genBinary, genJson, mutateBinary, mutateJson, Rng, type Hints } from "./fuzz-gen.js";
import { closeHttp1, connectStream, h1Retries, connectUnary, envelope, grpcCall, grpcWeb, gzip, h2Session, type Outcome } from "./fuzz-wire.js";
import { spawnServer, type ServerProcess } from "./harness.js";

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const ONLY = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE);
const CONCURRENCY = 8;
/** A call without a complete answer after this long fails as `none:client-timeout` (the machine may be busy: be generous). */
const CALL_TIMEOUT_MS = 60_000;

/** SQL or a stack trace in a message the client sees. */
const LEAK = /\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|RETURNING)\b|\brelation "|\bcolumn "|syntax error|violates|duplicate key|QueryFailedError|invalid input syntax|out of range for type|SQLSTATE|\n\s+at |\.ts:\d+|node_modules/;
/** Errors the framework raises for a body that is not protobuf (or not a valid frame): `internal` there is accepted. */
const UNDECODABLE = /^parse binary: |compressed envelope|decompress/;

const methods: DescMethod[] = reflectedFiles.flatMap((f) => f.services.flatMap((s) => s.methods));
const TRANSPORTS = ["connect-json", "connect-proto", "grpc-proto", "grpc-json", "grpc-web-proto"] as const;
type Transport = (typeof TRANSPORTS)[number];

interface Result {
  index: number;
  method: string;
  transport: Transport;
  mutation: string;
  bidi: boolean;
  outcome: Outcome;
  ms: number;
  t0: number;
  bytes: number;
}

let db: TestDatabase;
let server: ServerProcess;
let session: http2.ClientHttp2Session;
/** The HTTP/2 connection for gRPC cases; a new one once the server closed it (so one failure does not hide the rest). */
const h2 = () => (session.closed || session.destroyed ? (session = h2Session(server.url)) : session);
const hints: Hints = { namespaces: ["fuzz", "fuzz-2", "", "default"], ids: [], sessionIds: ["s1", "s2"], hugeLeft: 1, longListsLeft: 1 };

beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
  server = await spawnServer({ databaseUrl: db.url });
  session = h2Session(server.url);
  const client = createClient(SessionService, connectAs(server.url, TEST_ADMIN_KEY));
  for (const sessionId of hints.sessionIds) {
    const { session: s } = await client.createSession({ namespace: "fuzz", sessionId, user: "u", labels: { a: "b" } });
    hints.ids.push(s!.id);
    await client.appendTurns({ id: s!.id, turns: [{ participantId: "u", content: "hello" }] }).catch(() => {});
  }
  console.log(`fuzz: seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${CASES} cases over ${methods.length} methods`);
});

afterAll(async () => {
  session?.close();
  closeHttp1();
  server?.kill("SIGKILL");
  await server?.exited;
  await db?.close();
});

/** Builds and sends case `index`; everything about it comes from its own seed. */
async function runCase(index: number): Promise<Result> {
  const t0 = performance.now();
  const rng = new Rng(caseSeed(SEED, index));
  const method = methods[index % methods.length];
  const transport = rng.pick(TRANSPORTS);
  const json = transport === "connect-json" || transport === "grpc-json";
  hints.hugeLeft = 1;
  hints.longListsLeft = 1;
  const { body, mutation } = json ? mutateJson(rng, genJson(rng, method.input, hints)) : mutateBinary(rng, genBinary(rng, method.input, hints));
  const path = `/${method.parent.typeName}/${method.name}`;
  const streaming = method.methodKind !== "unary";
  // Each case's own request id: an answer lost to a connection reset is then judged from the server's log.
  const headers: Record<string, string> = { authorization: `Bearer ${TEST_ADMIN_KEY}`, "x-request-id": `fuzz-${SEED}-${index}` };
  // Health/Watch never ends by itself; other streams get a deadline too, so no case runs long.
  if (streaming) headers[transport.startsWith("connect") ? "connect-timeout-ms" : "grpc-timeout"] = transport.startsWith("connect") ? "1500" : "1500m";
  let framing = "";
  if (rng.chance(0.05)) {
    const [h, v] = rng.pick([["connect-timeout-ms", "-1"], ["connect-timeout-ms", "abc"], ["grpc-timeout", "99999999H"], ["grpc-timeout", "1x"], ["x-request-id", "\u00e9x"]] as const);
    headers[h] = v;
    framing += `header ${h}=${v};`;
  }
  // Generous: on a busy machine a call may wait for CPU for many seconds; one never answered still fails.
  const opts = { headers, timeoutMs: CALL_TIMEOUT_MS };
  let outcome: Outcome;
  if (transport === "connect-json" || transport === "connect-proto") {
    const codec = json ? "json" : "proto";
    if (streaming) {
      const { data, how } = frame(rng, body, headers, "connect-content-encoding");
      framing += how;
      outcome = await connectStream(server.url, path, data, codec, opts);
    } else {
      let data: Uint8Array = body;
      if (rng.chance(0.08)) {
        headers["content-encoding"] = "gzip";
        data = rng.chance(0.5) ? gzip(body) : rng.bytes(20);
        framing += "gzip;";
      }
      outcome = await connectUnary(server.url, path, data, codec, opts);
    }
  } else {
    const { data, how } = frame(rng, body, headers, "grpc-encoding");
    framing += how;
    outcome = transport === "grpc-web-proto" ? await grpcWeb(server.url, path, data, "proto", opts) : await grpcCall(h2(), path, data, json ? "json" : "proto", opts);
  }
  return { index, method: path, transport, bidi: method.methodKind === "bidi_streaming", mutation: mutation + (framing ? ` [${framing}]` : ""), outcome, ms: Math.round(performance.now() - t0), t0, bytes: body.length };
}

/** Wraps a body in length-prefixed frames, sometimes wrongly. */
function frame(rng: Rng, body: Uint8Array, headers: Record<string, string>, encodingHeader: string): { data: Uint8Array; how: string } {
  switch (rng.int(14)) {
    case 0:
      return { data: envelope(1, body), how: "compressed-flag-without-encoding" };
    case 1:
      headers[encodingHeader] = "gzip";
      return { data: envelope(1, gzip(body)), how: "gzip" };
    case 2:
      headers[encodingHeader] = "gzip";
      return { data: envelope(1, rng.bytes(12)), how: "bad-gzip" };
    case 3:
      return { data: envelope(0, body, body.length + 1 + rng.int(1000)), how: "length-too-big" };
    case 4:
      return { data: envelope(0, body, Math.max(0, body.length - 1 - rng.int(10))), how: "length-too-small" };
    case 5:
      return { data: Buffer.concat([envelope(0, body), envelope(0, body)]), how: "two-frames" };
    case 6:
      return { data: new Uint8Array(0), how: "no-frame" };
    case 7:
      return { data: body, how: "unframed" };
    case 8:
      return { data: envelope(rng.pick([2, 0x80, 0xff, 0x7e]), body), how: "odd-flags" };
    case 9:
      return { data: envelope(0, body, 0xffffffff), how: "length-4GiB" };
    default:
      return { data: envelope(0, body), how: "" };
  }
}

/**
 * An HTTP/1.1 answer the client lost because the connection was reset under it (the server closed a
 * connection the client was still uploading on, or reusing) is judged by what the server answered, from
 * its access-log line for the case's request id: the code must be as good as one received. A reset with
 * no such line (the server never answered) stays a failure.
 */
function answeredInLog(r: Result, logs: Record<string, any>[]): Result {
  if (!/^none:(ECONNRESET|EPIPE)/.test(r.outcome.code) || r.transport === "grpc-proto" || r.transport === "grpc-json") return r;
  const line = logs.find((l) => l.msg === "rpc" && l.request_id === `fuzz-${SEED}-${r.index}`);
  if (!line) return r;
  lostInTransit.push(`#${r.index} ${r.outcome.code} -> ${line.code}`);
  // A bidi stream asked for over HTTP/1.1 is refused with 505 before its body is read (logged with the
  // code gRPC maps 505 to, unknown): the answer the client would have read is that 505.
  if (line.http_status === 505) return { ...r, outcome: { ...r.outcome, code: "none:http-505", message: "" } };
  // The log says whether an internal was an undecodable request (the client's doing), not its message.
  const message = line.refused === "undecodable" ? "parse binary: (from the server's log: refused, undecodable)" : "";
  return { ...r, outcome: { ...r.outcome, code: line.code, message } };
}
const lostInTransit: string[] = [];

function problems(r: Result): string[] {
  const { code, message } = r.outcome;
  const out: string[] = [];
  // Connect and gRPC-Web need HTTP/2 for bidi streams (reflection): connect-node answers 505 on HTTP/1.1.
  const bidiOnHttp1 = r.bidi && r.transport !== "grpc-proto" && r.transport !== "grpc-json";
  if (bidiOnHttp1 && code === "none:http-505") return out;
  if (code.startsWith("none:")) out.push(`no code (${code})`);
  if (code === "unknown") out.push("code unknown");
  if (code === "internal" && !UNDECODABLE.test(message)) out.push("code internal");
  if (LEAK.test(message)) out.push("SQL or stack trace in the message");
  return out;
}

describe("fuzzed requests", () => {
  it("answer a gRPC JSON body that is a lone surrogate with invalid_argument (found by the fuzzer, seed 1 case 1723)", async () => {
    const body = envelope(0, Buffer.from('"\\ud800"'));
    const out = await grpcCall(h2Session(server.url), "/sessiond.v1.SessionService/GetSession", body, "json", { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` }, timeoutMs: CALL_TIMEOUT_MS });
    expect(out.code).toBe("invalid_argument");
  });

  it("read the status of a gRPC-Web answer whose trailer frame is compressed (found by the fuzzer, seed 2088864324 case 815)", async () => {
    // Check for a service named by 300,000 NULs (field 1, length varint e0 a7 12), sent gzip-compressed.
    // The not_found message echoes the name (JSON-escaped, then percent-encoded): the trailer passes
    // connect-es's compressMinBytes (1 KiB) and goes out gzip-compressed, flags 0x81, which the gRPC-Web
    // spec allows ("10000001b: a compressed trailer"). A reader that ignores the flag finds no status.
    const check = Buffer.concat([Buffer.from([0x0a, 0xe0, 0xa7, 0x12]), Buffer.alloc(300_000)]);
    const headers = { authorization: `Bearer ${TEST_ADMIN_KEY}`, "grpc-encoding": "gzip" };
    const out = await grpcWeb(server.url, "/grpc.health.v1.Health/Check", envelope(1, gzip(check)), "proto", { headers, timeoutMs: CALL_TIMEOUT_MS });
    expect(out).toMatchObject({ code: "not_found", status: 200, messages: 0 });
    expect(out.message).toMatch(/^unknown service "(\\u0000)+"$/);
  });

  it("never answer unknown, leak SQL or stack traces, log errors, or stop the server", async () => {
    const started = Date.now();
    const indexes = ONLY === undefined ? Array.from({ length: CASES }, (_, i) => i) : [ONLY];
    const results: Result[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < indexes.length) results.push(await runCase(indexes[next++]));
      }),
    );
    const tally = new Map<string, number>();
    for (const r of results) tally.set(r.outcome.code, (tally.get(r.outcome.code) ?? 0) + 1);
    const internals = new Map<string, number>();
    for (const r of results) if (r.outcome.code === "internal") internals.set(r.outcome.message.slice(0, 60), (internals.get(r.outcome.message.slice(0, 60)) ?? 0) + 1);
    console.log(`fuzz: internal answers by message: ${JSON.stringify([...internals].sort((a, b) => b[1] - a[1]).slice(0, 12))}`);
    const slow = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => `#${r.index} ${r.transport} ${r.method} ${r.mutation} ${r.ms} ms ${r.outcome.code}`);
    console.log(`fuzz: slowest: ${slow.join(" | ")}; HTTP/1.1 calls resent after a reset of a reused connection: ${h1Retries.length}`);
    const slowServer = server.logs().filter((l) => typeof l.duration_ms === "number").sort((a, b) => b.duration_ms - a.duration_ms).slice(0, 5).map((l) => `${l.method} ${l.code} ${l.duration_ms} ms`);
    console.log(`fuzz: slowest calls in the server's log: ${slowServer.join(" | ")}`);
    if (process.env.FUZZ_DEBUG) {
      const firstRst = results.filter((r) => r.outcome.code.startsWith("none:rst")).sort((a, b) => a.t0 - b.t0)[0];
      if (firstRst) {
        const around = results.filter((r) => r.transport.startsWith("grpc-") && r.transport !== "grpc-web-proto" && r.t0 <= firstRst.t0 && r.t0 + r.ms >= firstRst.t0 - 50);
        console.log(`fuzz: first reset #${firstRst.index}; grpc in flight: ${around.map((r) => `#${r.index} ${r.method} ${r.mutation} ${r.bytes}B ${r.outcome.code} ${r.ms}ms`).join(" | ")}`);
      }
    }
    console.log(`fuzz: ${results.length} calls in ${Date.now() - started} ms: ${[...tally].map(([c, n]) => `${c}=${n}`).join(" ")}`);

    const failures = results
      .map((r) => answeredInLog(r, server.logs()))
      .map((r) => ({ r, why: problems(r) }))
      .filter((f) => f.why.length)
      .map(({ r, why }) => `case ${r.index} (FUZZ_SEED=${SEED} FUZZ_CASE=${r.index}) ${r.transport} ${r.method} ${r.mutation}: ${why.join(", ")}: ${r.outcome.code} ${JSON.stringify(r.outcome.message.slice(0, 300))}`);
    if (lostInTransit.length) console.log(`fuzz: HTTP/1.1 answers lost to a connection reset, judged from the server's log: ${lostInTransit.join(" | ")}`);

    // Still serving: the process lives and a plain call works on both HTTP versions.
    expect(server.child.exitCode, server.output().slice(-3000)).toBeNull();
    const client = createClient(SessionService, connectAs(server.url, TEST_ADMIN_KEY));
    const { session: created } = await client.createSession({ namespace: "after-fuzz", sessionId: "after" });
    expect((await client.getSession({ id: created!.id })).session?.sessionId).toBe("after");
    const health = await grpcCall(h2Session(server.url), "/grpc.health.v1.Health/Check", envelope(0, new Uint8Array(0)), "proto");
    expect(health.code).toBe("ok");

    const errorLines = server
      .logs()
      .filter((l) => l.level >= 50)
      .map((l) => JSON.stringify(l).slice(0, 2500));
    expect({ seed: SEED, failures: failures.slice(0, 40), failureCount: failures.length, errorLines: errorLines.slice(0, 20), errorLineCount: errorLines.length }).toEqual({
      seed: SEED,
      failures: [],
      failureCount: 0,
      errorLines: [],
      errorLineCount: 0,
    });
  });
});
