/**
 * The authorization matrix shared by the tests that run it (test/e2e/authorization.test.ts with API
 * keys and client secrets, test/tls/tls.test.ts with mutual-TLS identities): every RPC on the port, the
 * role each needs written out by hand (not read from the contract, so a wrong option in a .proto file
 * fails), and how to call one with a minimal request.
 */
import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { TraceService as OtlpTraceService } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { AdminService } from "../../gen/sessiond/v1/admin_service_pb.js";
import { MemoryService } from "../../gen/sessiond/v1/memory_service_pb.js";
import { OperationService } from "../../gen/sessiond/v1/operation_service_pb.js";
import { ServerInfoService } from "../../gen/sessiond/v1/server_info_service_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { TraceService } from "../../gen/sessiond/v1/trace_service_pb.js";

export type Needs = "reader" | "writer" | "admin" | "open";
/** What each RPC needs; `*` marks the ones a client secret may call, `!` those needing an all-namespaces key. */
export const EXPECTED: Record<string, string> = {
  "SessionService/CreateSession": "writer",
  "SessionService/GetSession": "reader*",
  "SessionService/ListSessions": "reader",
  "SessionService/UpdateSession": "writer",
  "SessionService/DeleteSession": "writer",
  "SessionService/SoftDeleteSession": "writer",
  "SessionService/UndeleteSession": "writer",
  "SessionService/TruncateSession": "writer",
  "SessionService/CancelSession": "writer",
  "SessionService/RefreshClientSecret": "writer",
  "SessionService/BulkDeleteSessions": "writer",
  "SessionService/BindParticipant": "writer",
  "SessionService/UnbindParticipant": "writer",
  "SessionService/ListParticipants": "reader",
  "SessionService/AppendTurns": "writer*",
  "SessionService/ListTurns": "reader*",
  "SessionService/SearchTurns": "reader",
  "SessionService/IntegrateSession": "writer",
  "SessionService/CompactSession": "writer",
  "SessionService/WatchSession": "reader*",
  "SessionService/WatchSessions": "reader",
  "SessionService/ExportSessions": "reader",
  "SessionService/ImportSessions": "writer",
  "MemoryService/ListMemories": "reader",
  "MemoryService/DeleteMemories": "writer",
  "MemoryService/GetIntegratorConfig": "reader",
  "MemoryService/UpdateIntegratorConfig": "admin",
  "TraceService/RecordSpans": "writer*",
  "TraceService/ListTraces": "reader",
  "TraceService/GetTrace": "reader",
  "TraceService/DeleteTraces": "writer",
  "TraceService/Annotate": "writer",
  "TraceService/ListAnnotations": "reader",
  "AdminService/CreateNamespace": "admin!",
  "AdminService/ListNamespaces": "admin!",
  "AdminService/DeleteNamespace": "admin!",
  "AdminService/CreateApiKey": "admin",
  "AdminService/ListApiKeys": "admin",
  "AdminService/RevokeApiKey": "admin",
  "AdminService/ListAuditEvents": "admin",
  "AdminService/SetRetentionPolicy": "admin",
  "AdminService/GetRetentionPolicy": "admin",
  "AdminService/ForgetSubject": "admin",
  "OperationService/GetOperation": "reader",
  "OperationService/ListOperations": "reader",
  "OperationService/CancelOperation": "writer",
  "OperationService/WatchOperation": "reader",
  "ServerInfoService/GetServerInfo": "open",
  "TraceService/Export": "writer",
};

export const SERVICES: DescService[] = [SessionService, MemoryService, TraceService, AdminService, OperationService, ServerInfoService, OtlpTraceService];
export const RANK = { reader: 1, writer: 2, admin: 3 } as const;

/** A credential of the matrix. */
export interface Caller {
  name: string;
  secret: string;
  /** What the credential is. */
  kind: "none" | "bad" | "key" | "client";
  /** Who presents it: an API key or client secret in a header (default), or a client certificate. */
  via?: "header" | "certificate";
  role?: keyof typeof RANK;
  /** The key's one namespace; undefined for all. */
  namespace?: string;
}

/** Calls `method` with a minimal request naming `namespace`; returns the code (undefined for success). */
export async function call(transport: Transport, service: DescService, method: DescMethod, namespace: string): Promise<Code | undefined> {
  const client = createClient(service, transport) as Record<string, (req: unknown, opts?: unknown) => unknown>;
  const input = create(method.input) as Record<string, unknown>;
  if (method.input.field.namespace) input.namespace = namespace;
  const session = method.input.field.session;
  if (session?.fieldKind === "message") input.session = create(session.message, { namespace });
  const headers = service === OtlpTraceService ? { "sessiond-namespace": namespace } : undefined;
  try {
    // A client stream gets the minimal request as its one message.
    const arg = method.methodKind === "client_streaming" ? (async function* () { yield input; })() : input;
    const result = client[method.localName](arg, { headers });
    // A stream that sends a message let the call through: the first one is enough (a watch never ends by itself).
    if (method.methodKind === "server_streaming") for await (const _ of result as AsyncIterable<unknown>) break;
    else await result;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** What the matrix expects: denied (with which code) or let through to the method itself. */
export function expected(c: Caller, needs: string, own: boolean): "through" | Code {
  const [role, mark] = [needs.replace(/[*!]/g, "") as Needs, needs.slice(-1)];
  if (role === "open") return "through";
  if (c.kind === "none" || c.kind === "bad") return Code.Unauthenticated;
  if (c.kind === "client") return mark === "*" && own ? "through" : Code.PermissionDenied;
  if (RANK[c.role!] < RANK[role as keyof typeof RANK]) return Code.PermissionDenied;
  if (c.namespace && (mark === "!" || !own)) return Code.PermissionDenied;
  return "through";
}


/**
 * Calls every RPC as every caller, in its own namespace (`own`) and another (`foreign`), over the
 * transport `transportOf` gives for the caller. Returns what did not answer as {@link expected} says.
 */
export async function runMatrix(callers: Caller[], transportOf: (c: Caller) => Transport, own: string, foreign: string): Promise<{ mismatches: string[]; checked: number }> {
  const mismatches: string[] = [];
  let checked = 0;
  for (const c of callers) {
    const transport = transportOf(c);
    for (const service of SERVICES) {
      for (const method of service.methods) {
        const needs = EXPECTED[`${service.name}/${method.name}`];
        for (const isOwn of [true, false]) {
          const want = expected(c, needs, isOwn);
          const got = await call(transport, service, method, isOwn ? own : foreign);
          checked++;
          const ok = want === "through" ? got !== Code.Unauthenticated && got !== Code.PermissionDenied : got === want;
          if (!ok) mismatches.push(`${c.name} -> ${service.name}/${method.name} in ${isOwn ? "own" : "foreign"} namespace: expected ${want === "through" ? "to get through" : Code[want]}, got ${got === undefined ? "OK" : Code[got]}`);
        }
      }
    }
  }
  return { mismatches, checked };
}
