/**
 * Credentials for tests: the bootstrap ADMIN key every test server starts with, an interceptor that
 * sends a secret the way clients do, and the code a call ends with.
 */
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

/** SESSIOND_BOOTSTRAP_ADMIN_KEY of test servers: an ADMIN key for all namespaces. */
export const TEST_ADMIN_KEY = "test-bootstrap-admin-key-0123456789abcdefghij";

/** Sends `secret` as `Authorization: Bearer <secret>` on every call. */
export function bearer(secret: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
}

/** Connect over HTTP/1.1, as a browser calls, sending `secret`. */
export function connectAs(baseUrl: string, secret: string): Transport {
  return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer(secret)] });
}

/** The code a call fails with; undefined when it succeeds. */
export function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (e) => ConnectError.from(e).code,
  );
}
