/**
 * Credentials for tests: the bootstrap ADMIN key every test server starts with, and an interceptor
 * that sends a secret the way clients do.
 */
import type { Interceptor } from "@connectrpc/connect";

/** SESSIOND_BOOTSTRAP_ADMIN_KEY of test servers: an ADMIN key for all namespaces. */
export const TEST_ADMIN_KEY = "test-bootstrap-admin-key-0123456789abcdefghij";

/** Sends `secret` as `Authorization: Bearer <secret>` on every call. */
export function bearer(secret: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
}
