/**
 * One TCP port for HTTP/1.1 and HTTP/2: cleartext (HTTP/2 with prior knowledge), and TLS with ALPN when
 * a certificate is configured.
 *
 * Browsers and Connect/gRPC-Web clients speak HTTP/1.1 on a cleartext port; gRPC clients and `buf curl`
 * speak HTTP/2 without ALPN ("prior knowledge"). Node's `http2.createServer({ allowHTTP1 })` only
 * negotiates over TLS, so this listener reads the first bytes of every connection: the HTTP/2 client
 * preface goes to an `http2` server, anything else to an `http` server.
 *
 * The sniffed bytes are put back with `socket.unshift()` on a paused socket. Both servers then take the
 * native socket handle over (no JS stream in the data path): the HTTP/1.1 parser reads the unshifted
 * bytes through the socket's `data` events, and Node's Http2Session feeds whatever is already buffered
 * on the socket to nghttp2 before reading from the handle (nodejs/node#35475; checked on Node 20 and
 * 24, and by test/e2e/server.test.ts). Measured: no difference from a plain `http2.createServer()` in
 * server CPU per request; replaying through a JS `Duplex` instead cost ~3x in requests/s (nghttp2 then
 * reads through a JSStreamSocket) and ~18 ms per new connection.
 *
 * TLS: a connection whose first byte is a TLS handshake record (0x16; no HTTP request or preface starts
 * with it) goes to a `tls.Server` that never listens itself. Node's TLSSocket takes the sniffed bytes
 * back from the socket's buffer before reading the handle. Once the handshake is done, ALPN picks the
 * server: `h2` the HTTP/2 one, anything else (`http/1.1`, or no ALPN) the HTTP/1.1 one. With
 * `tls.required`, a cleartext connection gets a plain 400 naming https (an HTTP/2 one, a GOAWAY saying so).
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

/** How long the first GOAWAY's PING may take before the final GOAWAY is sent anyway. */
const GOAWAY_PING_WAIT_MS = 250;

/** The first byte of a TLS record carrying a handshake message (a ClientHello, on a new connection). */
const TLS_HANDSHAKE = 0x16;

/** The answer to an HTTP/1.1 request sent in cleartext to a port that requires TLS. */
const TLS_REQUIRED_BODY = "this port serves TLS only: use https://\n";
const TLS_REQUIRED_ANSWER = Buffer.from(
  `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${TLS_REQUIRED_BODY.length}\r\n\r\n${TLS_REQUIRED_BODY}`,
  "latin1",
);

/**
 * The answer to an HTTP/2 prior-knowledge connection on a port that requires TLS: an empty SETTINGS
 * frame (the server preface) and a GOAWAY with INADEQUATE_SECURITY (0xc) whose debug data says why, so a
 * gRPC client reports "use TLS" instead of a bare reset.
 */
const TLS_REQUIRED_GOAWAY = (() => {
  const debug = Buffer.from("this port serves TLS only", "latin1");
  const settings = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
  const goaway = Buffer.alloc(9 + 8 + debug.length);
  goaway.writeUIntBE(8 + debug.length, 0, 3);
  goaway[3] = 0x7;
  goaway.writeUInt32BE(0, 9); // last stream id: none processed
  goaway.writeUInt32BE(0xc, 13); // INADEQUATE_SECURITY
  debug.copy(goaway, 17);
  return Buffer.concat([settings, goaway]);
})();

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** A request listener that serves both HTTP versions (connect-node's `NodeHandlerFn` has this shape). */
export type DualRequestListener = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Tuning for {@link createOnePortServer}; every field is optional. */
export interface OnePortOptions {
  /** A connection that has not sent enough bytes to pick a protocol within this time is closed (default 10 s). */
  sniffTimeoutMs?: number;
  /** How long idle HTTP/1.1 keep-alive connections stay open once draining starts (default 500 ms; see drain()). */
  idleLingerMs?: number;
  /** Options for the HTTP/1.1 server (timeouts, header limits). */
  http1?: http.ServerOptions;
  /** Options for the HTTP/2 server (settings, limits). */
  http2?: http2.ServerOptions;
  /**
   * TLS on the same port: the `tls.createServer` options (certificate, key, policy, client CA); ALPN is
   * added. `required` refuses cleartext connections. Without it the port is cleartext only.
   */
  tls?: { options: tls.TlsOptions; required?: boolean };
  /** Called for socket and session errors (they never crash the process); default: ignored. */
  onError?: (err: Error, where: "socket" | "http2-session" | "listener" | "tls") => void;
}

/** The listener plus what a graceful shutdown needs. */
export interface OnePortServer {
  /** The TCP listener: call `listen()` on it. Its `close()` callback fires once every connection is gone. */
  readonly listener: net.Server;
  /** Serves connections that did not start with the HTTP/2 preface. Never listens itself. */
  readonly http1: http.Server;
  /** Serves HTTP/2 prior-knowledge connections. Never listens itself. */
  readonly http2: http2.Http2Server;
  /** Open HTTP/2 sessions (one per HTTP/2 connection). */
  readonly sessions: ReadonlySet<http2.ServerHttp2Session>;
  /** Every accepted TCP connection that is still open, whatever its protocol. */
  readonly sockets: ReadonlySet<net.Socket>;
  /** True once {@link OnePortServer.drain} was called. */
  readonly draining: boolean;
  /** Whether the port serves TLS. */
  readonly tls: boolean;
  /**
   * Replaces the TLS certificate, key and client CA for new handshakes (certificate rotation); open
   * connections keep theirs. No-op without TLS.
   */
  setSecureContext(options: tls.TlsOptions): void;
  /**
   * Starts a graceful close: stops accepting connections, sends the two-step GOAWAY to every HTTP/2
   * session (streams the client already sent are served, open ones may finish), closes busy HTTP/1.1
   * connections when their response is done (`Connection: close` where headers are not sent yet) and
   * idle ones after `idleLingerMs`. Resolves once every connection is closed.
   */
  drain(): Promise<void>;
  /** Destroys every remaining connection (after a grace period). */
  destroyAll(): void;
}

/**
 * Creates the listener (not yet listening) and the two HTTP servers, both answering with `listener`.
 * Sockets that close or fail while being sniffed are dropped quietly.
 */
export function createOnePortServer(handler: DualRequestListener, options: OnePortOptions = {}): OnePortServer {
  const sniffTimeoutMs = options.sniffTimeoutMs ?? 10_000;
  const idleLingerMs = options.idleLingerMs ?? 500;
  const onError = options.onError ?? (() => {});
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const h1Responses = new Set<http.ServerResponse>();
  let draining = false;

  const h1 = http.createServer(options.http1 ?? {}, (req, res) => {
    if (draining) res.setHeader("Connection", "close");
    h1Responses.add(res);
    // While draining, the `Connection: close` above makes Node close the connection after this response.
    res.once("close", () => h1Responses.delete(res));
    handler(req, res);
  });
  // `http.Server` starts its connection tracking (headersTimeout/requestTimeout checks and
  // closeIdleConnections) on "listening"; this one receives its connections from `listener` instead.
  h1.emit("listening");

  const h2 = http2.createServer(options.http2 ?? {}, handler);
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (draining) closeGracefully(session);
  });
  h2.on("sessionError", (err: Error) => onError(err, "http2-session"));

  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Stays attached: a reset or a write after close must never become an uncaught exception.
    socket.on("error", (err) => onError(err, "socket"));
    sniff(socket);
  });
  listener.on("error", (err) => onError(err, "listener"));

  const tlsRequired = options.tls?.required === true;
  const tlsServer = options.tls
    ? tls.createServer({ ...options.tls.options, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: sniffTimeoutMs })
    : undefined;
  // TLS sockets on top of the TCP ones in `sockets` (which count connections): destroyed with them.
  const secureSockets = new Set<tls.TLSSocket>();
  tlsServer?.on("secureConnection", (secure: tls.TLSSocket) => {
    secureSockets.add(secure);
    secure.once("close", () => secureSockets.delete(secure));
    // Errors of the connection are reported once, by the TCP socket under it.
    secure.on("error", () => {});
    // HTTP/2 only by ALPN (Node's HTTP/2 server refuses a TLS connection that did not negotiate it);
    // a client that offered no ALPN gets HTTP/1.1, as Node's allowHTTP1 does.
    if (secure.alpnProtocol === "h2") h2.emit("connection", secure);
    else h1.emit("connection", secure);
  });
  // A failed handshake (a cleartext client, an old protocol version, no shared cipher, a timeout): the
  // TLS server destroys the socket itself.
  tlsServer?.on("tlsClientError", (err: Error) => onError(err, "tls"));

  function sniff(socket: net.Socket): void {
    let head: Buffer | undefined;
    const onTimeout = () => socket.destroy();
    const onData = (chunk: Buffer) => {
      head = head ? Buffer.concat([head, chunk]) : chunk;
      if (tlsServer && head[0] === TLS_HANDSHAKE) return handOver(tlsServer, head);
      const n = Math.min(head.length, PREFACE.length);
      const isH2 = head.compare(PREFACE, 0, n, 0, n) === 0;
      if (tlsRequired && (!isH2 || head.length >= PREFACE.length)) return refuseCleartext(isH2);
      if (!isH2) handOver(h1, head);
      else if (head.length >= PREFACE.length) handOver(h2, head);
      // else: a prefix of the preface so far (a partial first read): wait for more bytes.
    };
    const refuseCleartext = (isH2: boolean) => {
      socket.off("data", onData);
      // The sniff timeout stays: a client that never closes its side is dropped by it.
      socket.end(isH2 ? TLS_REQUIRED_GOAWAY : TLS_REQUIRED_ANSWER);
    };
    const handOver = (target: net.Server, bytes: Buffer) => {
      socket.off("data", onData);
      socket.off("timeout", onTimeout);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(bytes);
      target.emit("connection", socket);
      // The HTTP/1.1 parser reads through "data" events; the Http2Session reads the handle natively, and
      // so does the TLSSocket, after taking back what is buffered.
      if (target === h1) socket.resume();
    };
    socket.setTimeout(sniffTimeoutMs);
    socket.on("timeout", onTimeout);
    socket.on("data", onData);
  }

  let drained: Promise<void> | undefined;
  return {
    listener,
    http1: h1,
    http2: h2,
    sessions,
    sockets,
    get draining() {
      return draining;
    },
    tls: tlsServer !== undefined,
    setSecureContext(secureOptions) {
      tlsServer?.setSecureContext(secureOptions);
    },
    drain() {
      if (drained) return drained;
      draining = true;
      drained = new Promise<void>((resolve) => {
        // Resolves when the listener is closed and its last connection ended (or it never listened).
        listener.close(() => resolve());
      });
      for (const session of sessions) closeGracefully(session);
      for (const res of h1Responses) if (!res.headersSent) res.setHeader("Connection", "close");
      // An idle keep-alive connection closed at the instant its client sends a request makes that
      // request fail with ECONNRESET. Busy clients get `Connection: close` on their next response within
      // this linger; what is still idle after it is closed (and the timeout checks stop).
      setTimeout(() => h1.close(), idleLingerMs).unref();
      return drained;
    },
    destroyAll() {
      for (const session of sessions) session.destroy();
      for (const socket of secureSockets) socket.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * The two-step GOAWAY of RFC 9113 §6.8 (as grpc-go and Envoy do it): first a GOAWAY naming the
 * largest stream id, so the client opens no new streams here while the ones it already sent are still
 * served; after a PING round trip every such stream has arrived, and `close()` sends the final GOAWAY
 * with the last stream id processed. A single GOAWAY would refuse streams in flight (REFUSED_STREAM).
 */
export function closeGracefully(session: http2.Http2Session): void {
  if (session.closed || session.destroyed) return;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    session.close();
  };
  // Node's own HTTP/2 client stops answering PINGs once it has seen a GOAWAY: do not wait on it for long.
  const timer = setTimeout(close, GOAWAY_PING_WAIT_MS).unref();
  try {
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
    if (!session.ping(close)) close();
  } catch {
    close();
  }
}
