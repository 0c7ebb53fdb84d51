/**
 * The console's API clients: Connect over HTTP/1.1 (fetch) to the origin that served the page, with the
 * signed-in key sent as `Authorization: Bearer` on every call.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { OperationService } from "../../gen/sessiond/v1/operation_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";

/** The services the console calls. */
export interface Api {
  sessions: Client<typeof SessionService>;
  traces: Client<typeof TraceService>;
  operations: Client<typeof OperationService>;
  admin: Client<typeof AdminService>;
}

/** Clients that send `key()` (read at each call, so signing in again needs no new clients). */
export function createApi(key: () => string): Api {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("Authorization", `Bearer ${key()}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth] });
  return { sessions: createClient(SessionService, transport), traces: createClient(TraceService, transport), operations: createClient(OperationService, transport), admin: createClient(AdminService, transport) };
}

/** The gRPC name of a code: Code.PermissionDenied -> "PERMISSION_DENIED". */
export function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** An error as the console shows it: "UNAUTHENTICATED: the credential is unknown, revoked or expired". */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  return `${codeName(e.code)}: ${e.rawMessage}`;
}
