/**
 * How a call ended, decided in one place: the code a call ends with, a server stream's messages as
 * they go out, and its one request message as it comes in. Shared by logging, metrics, audit, error
 * mapping and the namespace scope, so that they agree on how a call ended, and so that a client that
 * went away (cancel, deadline, reset stream, closed HTTP/1.1 connection) is never counted as a fault.
 */
import { Code, ConnectError, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";

/** Node errors that mean the peer went away while we were writing to it: a client cancel, not a fault. */
const PEER_GONE = new Set(["ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END", "ERR_STREAM_PREMATURE_CLOSE", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_ERROR", "ERR_HTTP2_STREAM_CANCEL", "ECONNRESET", "EPIPE"]);

/** True when `err` (or a cause of it) is an AbortError or a Node error of a peer that went away. */
function isPeerGone(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 4; e = e.cause, depth++) {
    if (e.name === "AbortError" || (typeof e.code === "string" && PEER_GONE.has(e.code))) return true;
  }
  return false;
}

/** The code an aborted call signal stands for: its ConnectError reason's (canceled, deadline_exceeded, unavailable on shutdown), else canceled. */
function abortCode(signal: AbortSignal): Code {
  return signal.reason instanceof ConnectError ? signal.reason.code : Code.Canceled;
}

/**
 * The code a call that threw `err` ends with. A ConnectError keeps its code, except a generic
 * `internal`/`unknown` raised because the call was aborted (the client cancelled, its deadline passed,
 * or the server is shutting down: the abort's code wins) or because the client's stream was reset
 * under a write (`canceled`; connect-node calls that `aborted`). Anything else is `internal`, as connect-es sends it. Pass the call's
 * `signal` (`req.signal` in an interceptor) whenever there is one.
 */
export function codeOf(err: unknown, signal?: AbortSignal): Code {
  const own = err instanceof ConnectError ? err.code : undefined;
  const generic = own === Code.Internal || own === Code.Unknown || (own === Code.Aborted && isPeerGone(err));
  if (own !== undefined && !generic) return own;
  if (signal?.aborted) return abortCode(signal);
  if (isPeerGone(err)) return Code.Canceled;
  return own ?? Code.Internal;
}

/**
 * `err` as the ConnectError to send: itself when {@link codeOf} keeps its code, else a new one with
 * the decided code (the abort's reason when that is it) and `err` as its cause. Non-Connect errors that
 * are not an abort get a generic `internal` message: their own message may hold SQL or stack traces.
 */
export function endingError(err: unknown, signal?: AbortSignal): ConnectError {
  const code = codeOf(err, signal);
  if (err instanceof ConnectError && err.code === code) return err;
  if (signal?.aborted && signal.reason instanceof ConnectError && signal.reason.code === code) return signal.reason;
  if (code === Code.Internal) return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
  return new ConnectError(code === Code.DeadlineExceeded ? "the operation timed out" : "the call was cancelled", code, undefined, undefined, err);
}

/**
 * True when `err` is the server's fault (logged at error level): `internal`, `unknown` or `data_loss`,
 * except a request body connect-es could not decode (`internal` by gRPC's status table, but the
 * client's doing).
 */
export function isServerFault(code: Code | undefined, err?: unknown): boolean {
  if (code !== Code.Internal && code !== Code.Unknown && code !== Code.DataLoss) return false;
  return !isUndecodable(err);
}

/** True for connect-es's errors about a request it could not decode (envelope, compression, protobuf binary). */
export function isUndecodable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return false;
  return /^(parse binary|invalid envelope|received compressed envelope|protocol error: promised)/.test(err.rawMessage);
}

/**
 * Passes a response stream through: `onMessage` sees each message before it is sent, `onEnd` is told
 * once how the stream ended: `undefined` (completed), the code {@link codeOf} decides for its error,
 * or, when the consumer stopped early (the client went away or the response could not be written),
 * the code of the aborted `signal` (`canceled` without one). A value `onEnd` returns for an error is
 * thrown in its place. Pass the call's `signal` so that every watcher decides the same code.
 */
export function watchStream<T>(
  source: AsyncIterable<T>,
  hooks: { signal?: AbortSignal; onMessage?(m: T): void; onEnd(code: Code | undefined, err?: unknown): unknown },
): AsyncIterableIterator<T> {
  // A plain iterator, not an async generator: every interceptor wraps a stream in one, and a long
  // stream (a watch) pays a generator's hops for every message at every layer.
  const it = source[Symbol.asyncIterator]();
  let ended = false;
  const fail = (err: unknown): never => {
    if (ended) throw err;
    ended = true;
    throw hooks.onEnd(codeOf(err, hooks.signal), err) ?? err;
  };
  const stop = () => {
    if (ended) return;
    ended = true;
    hooks.onEnd(hooks.signal?.aborted ? abortCode(hooks.signal) : Code.Canceled);
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next(): Promise<IteratorResult<T>> {
      if (ended) return { done: true, value: undefined };
      let r: IteratorResult<T>;
      try {
        r = await it.next();
      } catch (err) {
        return fail(err);
      }
      if (r.done) {
        ended = true;
        hooks.onEnd(undefined);
        return r;
      }
      hooks.onMessage?.(r.value);
      return r;
    },
    // The consumer stopped early (the client went away, or a write failed): the source is told too.
    async return(value?: unknown): Promise<IteratorResult<T>> {
      stop();
      await it.return?.(value);
      return { done: true, value: undefined };
    },
    async throw(err?: unknown): Promise<IteratorResult<T>> {
      try {
        await it.return?.();
      } catch {
        // The source's own ending error gives way to the one thrown in.
      }
      return fail(err);
    },
  };
}

/**
 * Calls `see` with the request message: at once for a unary call; for a server stream (whose one
 * request message arrives as a stream) as it passes. Returns the request to hand on. `see` may throw
 * to refuse the call.
 */
export function seeRequest<R extends UnaryRequest | StreamRequest>(req: R, see: (message: Record<string, unknown>) => void): R {
  if (!req.stream) {
    see(req.message as unknown as Record<string, unknown>);
    return req;
  }
  const source = req.message;
  return {
    ...req,
    message: (async function* () {
      for await (const m of source) {
        see(m as unknown as Record<string, unknown>);
        yield m;
      }
    })(),
  };
}
