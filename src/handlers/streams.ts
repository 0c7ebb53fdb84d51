/**
 * Watching calls pass through interceptors: the code a call ends with, a server stream's messages as
 * they go out, and its one request message as it comes in. Shared by logging, metrics, audit and the
 * namespace scope, so that they agree on how a call ended.
 */
import { Code, ConnectError, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";

/** The code a thrown value reaches the client with: a ConnectError's own, anything else `internal` (as connect-es does). */
export function codeOf(err: unknown): Code {
  return err instanceof ConnectError ? err.code : Code.Internal;
}

/**
 * Passes a response stream through: `onMessage` sees each message before it is sent, `onEnd` is told
 * once how the stream ended: `undefined` (completed), the error's code, or `canceled` when the
 * consumer stopped early (the client went away or the response could not be written). A value
 * `onEnd` returns for an error is thrown in its place.
 */
export async function* watchStream<T>(source: AsyncIterable<T>, hooks: { onMessage?(m: T): void; onEnd(code: Code | undefined, err?: unknown): unknown }): AsyncGenerator<T> {
  let ended = false;
  try {
    for await (const m of source) {
      hooks.onMessage?.(m);
      yield m;
    }
    ended = true;
    hooks.onEnd(undefined);
  } catch (err) {
    ended = true;
    throw hooks.onEnd(codeOf(err), err) ?? err;
  } finally {
    if (!ended) hooks.onEnd(Code.Canceled);
  }
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
