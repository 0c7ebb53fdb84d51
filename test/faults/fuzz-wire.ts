/**
 * Raw RPC calls for the fault suite, with every byte under the test's control: Connect (unary and
 * streaming) and gRPC-Web over HTTP/1.1 with node:http, gRPC over HTTP/2 with node:http2. Each call
 * resolves with the code the server answered with (as a client would read it), never rejects.
 */
import http from "node:http";
import http2 from "node:http2";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";

/** How a call ended, as read off the wire. */
export interface Outcome {
  /** A Connect code name ("ok", "invalid_argument", ...), or "none:<why>" when the response carried none. */
  code: string;
  message: string;
  /** HTTP status (0 when the exchange failed before one arrived). */
  status: number;
  /** Messages received before the end (server streams). */
  messages: number;
}

/** Options of one call. */
export interface CallOptions {
  headers?: Record<string, string>;
  /** Gives up (and reports "none:client-timeout") after this long without a complete answer (default 60 s; for HTTP/1.1 counted from when the call got a connection). */
  timeoutMs?: number;
  /** Aborts the call from the client side after this long (a cancelled call): reported as "cancelled-by-client". */
  cancelAfterMs?: number;
  /** Stops reading and resets a stream after this many messages (an abandoned stream). */
  abandonAfter?: number;
}

const GRPC_CODES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"];

/** A length-prefixed message (gRPC, gRPC-Web and Connect streaming framing). */
export function envelope(flags: number, data: Uint8Array, declaredLength = data.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([head, data]);
}

/** Splits enveloped bytes into frames (a trailing partial frame is ignored). */
export function frames(buf: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  let i = 0;
  while (i + 5 <= buf.length) {
    const len = buf.readUInt32BE(i + 1);
    if (i + 5 + len > buf.length) break;
    out.push({ flags: buf[i], data: buf.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

export const gzip = (b: Uint8Array) => gzipSync(b);

/**
 * The data of a frame, inflated when its compressed flag (0x01) is set: gRPC-Web trailers and Connect
 * end-stream messages may be compressed too ("10000001b: a compressed trailer", PROTOCOL-WEB.md), and
 * connect-es compresses any frame of at least compressMinBytes (1 KiB) once compression is negotiated.
 * Undefined when it cannot be inflated (an unknown encoding, or bytes that are not what it says).
 */
function frameData(frame: { flags: number; data: Buffer }, encoding: string | string[] | undefined): Buffer | undefined {
  if (!(frame.flags & 0x01)) return frame.data;
  try {
    if (encoding === "gzip") return gunzipSync(frame.data);
    if (encoding === "br") return brotliDecompressSync(frame.data);
  } catch {}
  return undefined;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Closes the idle HTTP/1.1 connections of the shared agent (end of a test file). */
export function closeHttp1(): void {
  agent.destroy();
}

type H1Result = { status: number; headers: http.IncomingHttpHeaders; body: Buffer } | { error: string; reused?: boolean };

/**
 * Calls that failed on a reused keep-alive connection before any answer and were sent again: the server
 * may close an idle connection (its keep-alive timeout, or the end of a lingering close) just as the
 * client picks it for the next request, which HTTP/1.1 cannot prevent (RFC 9112 §9.3.1); Node's docs
 * advise sending again.
 */
export const h1Retries: string[] = [];

async function h1(url: string, body: Uint8Array, headers: Record<string, string>, opts: CallOptions): Promise<H1Result> {
  const r = await h1Once(url, body, headers, opts);
  if ("error" in r && r.reused && (r.error === "ECONNRESET" || r.error === "EPIPE")) {
    h1Retries.push(url);
    // On a new connection of its own: other idle connections of the pool may be closing too.
    return h1Once(url, body, headers, opts, false);
  }
  return r;
}

function h1Once(url: string, body: Uint8Array, headers: Record<string, string>, opts: CallOptions, pool: http.Agent | false = agent): Promise<H1Result> {
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (v: H1Result) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        clearTimeout(cancel);
        resolve(v);
      }
    };
    let answered = false;
    const req = http.request(url, { method: "POST", agent: pool, headers: { ...headers, "content-length": String(body.length) } }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let count = 0;
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        if (opts.abandonAfter !== undefined && ++count > opts.abandonAfter) {
          req.destroy();
          done({ error: "abandoned-by-client" });
        }
      });
      res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", (e) => done({ error: `response-cut-short-${(e as NodeJS.ErrnoException).code ?? e.message}` }));
      res.on("close", () => done({ error: "response-cut-short" }));
    });
    // A server may answer before it has read the whole body (an early error: message too large, HTTP/1.1
    // refused for a bidi stream) and close the connection: the rest of the upload then fails with EPIPE or
    // ECONNRESET. Node parses what arrived before the error (the read side is served before the write side),
    // so once a response has begun it decides the outcome, as for any HTTP client that reads while it sends.
    req.on("error", (e) => {
      if (!answered) done({ error: (e as NodeJS.ErrnoException).code ?? e.message, reused: req.reusedSocket });
    });
    // The clock starts once the call has a connection: time spent queued in the agent's pool is not the server's.
    req.on("socket", () => {
      timer ??= setTimeout(() => {
        req.destroy();
        done({ error: "client-timeout" });
      }, opts.timeoutMs ?? 60_000);
    });
    const cancel = opts.cancelAfterMs === undefined ? undefined : setTimeout(() => {
      req.destroy();
      done({ error: "cancelled-by-client" });
    }, opts.cancelAfterMs);
    req.end(body);
  });
}

function connectError(body: Buffer): { code: string; message: string } | undefined {
  try {
    const j = JSON.parse(body.toString("utf8"));
    if (j && typeof j.code === "string") return { code: j.code, message: String(j.message ?? "") };
  } catch {}
  return undefined;
}

/** A Connect unary call (POST) over HTTP/1.1. */
export async function connectUnary(base: string, path: string, body: Uint8Array, codec: "json" | "proto", opts: CallOptions = {}): Promise<Outcome> {
  const r = await h1(base + path, body, { "content-type": `application/${codec}`, "connect-protocol-version": "1", ...opts.headers }, opts);
  if ("error" in r) return { code: r.error === "cancelled-by-client" ? r.error : `none:${r.error}${r.reused ? "" : "-fresh-connection"}`, message: "", status: 0, messages: 0 };
  if (r.status === 200) return { code: "ok", message: "", status: 200, messages: 1 };
  const e = connectError(r.body);
  return { code: e?.code ?? `none:http-${r.status}`, message: e?.message ?? r.body.subarray(0, 200).toString(), status: r.status, messages: 0 };
}

/** A Connect streaming call (server or bidi stream, enveloped body) over HTTP/1.1. */
export async function connectStream(base: string, path: string, body: Uint8Array, codec: "json" | "proto", opts: CallOptions = {}): Promise<Outcome> {
  const r = await h1(base + path, body, { "content-type": `application/connect+${codec}`, "connect-protocol-version": "1", ...opts.headers }, opts);
  if ("error" in r) return { code: r.error.endsWith("-by-client") ? r.error : `none:${r.error}${r.reused ? "" : "-fresh-connection"}`, message: "", status: 0, messages: 0 };
  if (r.status !== 200) {
    const e = connectError(r.body);
    return { code: e?.code ?? `none:http-${r.status}`, message: e?.message ?? "", status: r.status, messages: 0 };
  }
  const fs = frames(r.body);
  const end = fs.find((f) => f.flags & 0x02);
  if (!end) return { code: "none:no-end-stream", message: "", status: 200, messages: fs.length };
  const endData = frameData(end, r.headers["connect-content-encoding"]);
  if (!endData) return { code: "none:undecompressable-end-stream", message: "", status: 200, messages: fs.length - 1 };
  let parsed: any;
  try {
    parsed = JSON.parse(endData.toString("utf8"));
  } catch {
    return { code: "none:bad-end-stream", message: "", status: 200, messages: fs.length - 1 };
  }
  const err = parsed?.error;
  return { code: err ? String(err.code ?? "none:end-stream-error-without-code") : "ok", message: err ? String(err.message ?? "") : "", status: 200, messages: fs.length - 1 };
}

function fromStatus(status: string | undefined, message: string | undefined): { code: string; message: string } | undefined {
  if (status === undefined) return undefined;
  const n = Number(status);
  const code = Number.isInteger(n) && GRPC_CODES[n] !== undefined ? GRPC_CODES[n] : `none:grpc-status-${status}`;
  let msg = message ?? "";
  try {
    msg = decodeURIComponent(msg);
  } catch {}
  return { code, message: msg };
}

/** A gRPC-Web call over HTTP/1.1 (`application/grpc-web+proto`); the status is in a trailer frame or the headers. */
export async function grpcWeb(base: string, path: string, body: Uint8Array, codec: "json" | "proto", opts: CallOptions = {}): Promise<Outcome> {
  const r = await h1(base + path, body, { "content-type": `application/grpc-web+${codec}`, "x-grpc-web": "1", ...opts.headers }, opts);
  if ("error" in r) return { code: r.error.endsWith("-by-client") ? r.error : `none:${r.error}${r.reused ? "" : "-fresh-connection"}`, message: "", status: 0, messages: 0 };
  const inHeaders = fromStatus(r.headers["grpc-status"] as string | undefined, r.headers["grpc-message"] as string | undefined);
  const fs = frames(r.body);
  const trailer = fs.find((f) => f.flags & 0x80);
  const messages = fs.filter((f) => !(f.flags & 0x80)).length;
  if (trailer) {
    const data = frameData(trailer, r.headers["grpc-encoding"]);
    if (!data) return { code: "none:undecompressable-trailer", message: "", status: r.status, messages };
    const t: Record<string, string> = {};
    for (const line of data.toString("latin1").split("\r\n")) {
      const i = line.indexOf(":");
      if (i > 0) t[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const s = fromStatus(t["grpc-status"], t["grpc-message"]);
    if (s) return { ...s, status: r.status, messages };
  }
  return { ...(inHeaders ?? { code: `none:http-${r.status}`, message: "" }), status: r.status, messages };
}

/** A gRPC call over an HTTP/2 session; `body` is sent as is (the caller frames it, or not). */
export function grpcCall(session: http2.ClientHttp2Session, path: string, body: Uint8Array, codec: "json" | "proto", opts: CallOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    let status = 0;
    let headerStatus: { code: string; message: string } | undefined;
    let trailerStatus: { code: string; message: string } | undefined;
    const chunks: Buffer[] = [];
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(cancel);
      resolve(o);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ":method": "POST", ":path": path, "content-type": `application/grpc+${codec}`, te: "trailers", ...opts.headers });
    } catch (e) {
      resolve({ code: `none:${(e as Error).message}`, message: "", status: 0, messages: 0 });
      return;
    }
    let count = 0;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headerStatus = fromStatus(h["grpc-status"] as string | undefined, h["grpc-message"] as string | undefined);
    });
    stream.on("trailers", (h) => (trailerStatus = fromStatus(h["grpc-status"] as string | undefined, h["grpc-message"] as string | undefined)));
    stream.on("data", (c: Buffer) => {
      chunks.push(c);
      if (opts.abandonAfter !== undefined && ++count > opts.abandonAfter) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done({ code: "abandoned-by-client", message: "", status, messages: count });
      }
    });
    stream.on("error", () => {});
    const finish = () => {
      const s = trailerStatus ?? headerStatus;
      const messages = frames(Buffer.concat(chunks)).length;
      if (s) done({ ...s, status, messages });
      // REFUSED_STREAM before any response: the server never processed it (a GOAWAY raced the stream);
      // gRPC maps that to UNAVAILABLE, safe to retry.
      else if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && status === 0) done({ code: "unavailable", message: "refused stream", status, messages });
      else done({ code: `none:rst-${stream.rstCode}-http-${status}`, message: "", status, messages });
    };
    // The response is complete when its end arrives, even if the server did not read the whole
    // request (it answered early, e.g. resource_exhausted): then stop sending, as gRPC clients do.
    stream.on("end", () => {
      finish();
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on("close", finish);
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      done({ code: "none:client-timeout", message: "", status, messages: 0 });
    }, opts.timeoutMs ?? 60_000);
    const cancel = opts.cancelAfterMs === undefined ? undefined : setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      done({ code: "cancelled-by-client", message: "", status, messages: 0 });
    }, opts.cancelAfterMs);
    stream.end(body);
  });
}

/** Opens an HTTP/2 (prior knowledge) session to `base`; session errors are swallowed (calls report them). */
export function h2Session(base: string): http2.ClientHttp2Session {
  // Room for several multi-megabyte uploads queued at once: with Node's default (10 MB) the client itself
  // refuses its new streams (ENHANCE_YOUR_CALM) while its uploads wait for the server's window.
  const s = http2.connect(base, { settings: { initialWindowSize: 1 << 20 }, maxSessionMemory: 256 });
  s.on("error", () => {});
  return s;
}
