/**
 * Who may call what. Three pieces, all driven by the options each RPC declares in the contract
 * (auth.proto: required_role, client_secret_allowed, all_namespaces):
 * - `requestGate`, before the request body is read: takes the credential (`Authorization: Bearer` or
 *   `X-API-Key`), authenticates it, checks the role (or, for a client secret, that the method is one it
 *   may call, and its per-minute limit);
 * - `scopeInterceptor`, once the message is parsed: keeps a key of one namespace inside it (an empty
 *   namespace becomes its own; another one is permission_denied) and a client secret on its session;
 * - `authorizeHttp`: both, for a plain HTTP endpoint that stands for an RPC (OTLP/HTTP).
 * Health, reflection and GetServerInfo are open. A method without a declared role is closed. What
 * callers did is recorded by handlers/audit.ts.
 */
import { getOption, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { all_namespaces, client_secret_allowed, required_role, Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import { roleAllows, type Principal, type Role } from "../domain/access.js";
import type { Credentials } from "../domain/credentials.js";
import { encodeGlobalId } from "../domain/ids.js";
import type { Logger } from "../logger.js";
import { toConnectError } from "./errors.js";
import { seeRequest } from "./streams.js";

/** The authenticated caller of a call (undefined for open methods). */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "sessiond caller" });

/** Open to anyone: load balancers, `buf curl` discovery and clients checking capabilities. */
const OPEN_SERVICES = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
const OPEN_METHODS = new Set(["sessiond.v1.ServerInfoService/GetServerInfo"]);
/** Methods of vendored services, which cannot carry our options. */
const VENDORED_ROLES: Record<string, Role> = { "opentelemetry.proto.collector.trace.v1.TraceService/Export": "writer" };

/** What a method requires, read from its options. */
export interface MethodPolicy {
  name: string;
  open: boolean;
  /** Undefined: no key may call it. */
  role: Role | undefined;
  clientSecret: boolean;
  allNamespaces: boolean;
  /** Recorded in the audit log: everything but Get* and List*. */
  mutating: boolean;
}

const ROLES: Partial<Record<ProtoRole, Role>> = { [ProtoRole.READER]: "reader", [ProtoRole.WRITER]: "writer", [ProtoRole.ADMIN]: "admin" };
const policies = new WeakMap<DescMethod, MethodPolicy>();

/** The policy of `method`. */
export function policyOf(method: DescMethod): MethodPolicy {
  let p = policies.get(method);
  if (!p) {
    const name = `${method.parent.typeName}/${method.name}`;
    p = {
      name,
      open: OPEN_SERVICES.has(method.parent.typeName) || OPEN_METHODS.has(name),
      role: VENDORED_ROLES[name] ?? ROLES[getOption(method, required_role)],
      clientSecret: getOption(method, client_secret_allowed),
      allNamespaces: getOption(method, all_namespaces),
      mutating: !/^(Get|List)/.test(method.name) && !OPEN_SERVICES.has(method.parent.typeName),
    };
    policies.set(method, p);
  }
  return p;
}

/** How the audit log and CreateApiKey name a caller. */
export function actorOf(p: Principal | undefined): string {
  if (!p) return "";
  return p.kind === "key" ? encodeGlobalId("ApiKey", p.keyUuid) : `session:${encodeGlobalId("Session", p.sessionUuid)}`;
}

const denied = (message: string) => new ConnectError(message, Code.PermissionDenied);

/** The secret a request presents. @throws ConnectError unauthenticated for a malformed Authorization header */
function presentedSecret(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth !== null) {
    const m = /^Bearer +([\x21-\x7e]{1,512})$/i.exec(auth.trim());
    if (!m) throw new ConnectError('authorization: expected "Bearer <API key or client secret>"', Code.Unauthenticated);
    return m[1];
  }
  const key = headers.get("x-api-key")?.trim();
  return key || undefined;
}

/** Authentication and authorization of requests, for RPCs and for plain HTTP endpoints. */
export function createAccess(deps: { credentials: Credentials; logger: Logger }) {
  const { credentials, logger } = deps;

  /** Checks a request's credential against a method's policy. @throws ConnectError */
  async function authorize(headers: Headers, policy: MethodPolicy): Promise<Principal | undefined> {
    if (policy.open) return undefined;
    try {
      const secret = presentedSecret(headers);
      if (!secret) throw new ConnectError("missing credentials: send Authorization: Bearer <API key> (or X-API-Key: <API key>)", Code.Unauthenticated);
      const p = await credentials.authenticate(secret);
      if (p.kind === "client") {
        if (!policy.clientSecret) throw denied(`a client secret may not call ${policy.name}; it allows GetSession, AppendTurns, ListTurns and RecordSpans on its own session`);
        await credentials.admit(p);
      } else {
        if (!policy.role) throw denied(`${policy.name} is not open to API keys`);
        if (!roleAllows(p.role, policy.role)) throw denied(`${policy.name} needs role ${policy.role.toUpperCase()}; this API key is ${p.role.toUpperCase()}`);
        if (policy.allNamespaces && p.namespace !== null) throw denied(`${policy.name} needs an API key for all namespaces; this one is for namespace "${p.namespace}"`);
      }
      return p;
    } catch (err) {
      const e = toConnectError(err, headers.get("x-request-id") ?? "-", logger);
      logger.info({ method: policy.name, code: codeToString(e.code), reason: e.rawMessage }, "rpc rejected");
      throw e;
    }
  }

  /** connect's requestGate: runs before the body is read. */
  async function requestGate(context: HandlerContext): Promise<void> {
    context.values.set(principalKey, await authorize(context.requestHeader, policyOf(context.method)));
  }

  /** Keeps the caller inside its namespace (and a client secret on its session); see the file comment. */
  const scopeInterceptor: Interceptor = (next) => async (req) => {
    const p = req.contextValues.get(principalKey);
    return next(p ? seeRequest(req, (message) => scope(p, req.method, message, req.header)) : req);
  };

  /**
   * For a plain HTTP endpoint standing for `method` (OTLP/HTTP for OTLP's Export): authorizes the
   * request and keeps it in the caller's namespace (the `sessiond-namespace` header). @throws ConnectError
   */
  async function authorizeHttp(headers: Headers, method: DescMethod): Promise<{ principal: Principal | undefined; namespace: string }> {
    const principal = await authorize(headers, policyOf(method));
    if (principal) scope(principal, method, {}, headers);
    return { principal, namespace: headers.get(NAMESPACE_HEADER) ?? "" };
  }

  return { authorizeHttp, requestGate, scopeInterceptor };
}

/** The message holding a request's `namespace` field: the request, or its `session` (UpdateSession). */
export function namespaceHolder(desc: DescMessage, message: Record<string, unknown>): Record<string, unknown> | undefined {
  if (desc.field.namespace?.fieldKind === "scalar") return message;
  const inner = desc.field.session;
  if (inner?.fieldKind === "message" && inner.message.field.namespace) return (message.session as Record<string, unknown> | undefined) ?? undefined;
  return undefined;
}

/** The namespace header of OTLP's gRPC Export, the one method whose namespace is not in the message. */
export const NAMESPACE_HEADER = "sessiond-namespace";

/** Applies the namespace (and session) scope of `p` to a parsed request. @throws ConnectError permission_denied */
function scope(p: Principal, method: DescMethod, message: Record<string, unknown>, header: Headers): void {
  const own = p.namespace;
  if (own === null) return;
  const holder = namespaceHolder(method.input, message);
  const who = p.kind === "client" ? "this client secret" : "this API key";
  if (holder) {
    if (holder.namespace === "") holder.namespace = own;
    else if (holder.namespace !== own) throw denied(`namespace: ${who} may only use namespace "${own}"`);
  } else if (method.input.field.namespace === undefined && method.input.field.session === undefined) {
    // OTLP's Export names its namespace in a header.
    const named = header.get(NAMESPACE_HEADER);
    if (!named) header.set(NAMESPACE_HEADER, own);
    else if (named !== own) throw denied(`${NAMESPACE_HEADER}: ${who} may only use namespace "${own}"`);
  }
  if (p.kind === "client") bindToSession(p, method.input, message);
}

/** Keeps a client secret's call on its own session: an empty address becomes the session's id. */
function bindToSession(p: Extract<Principal, { kind: "client" }>, desc: DescMessage, message: Record<string, unknown>): void {
  const globalField = desc.field.id ? "id" : desc.field.session?.fieldKind === "scalar" ? "session" : undefined;
  if (!globalField || !desc.field.sessionId) throw denied("this client secret may only address its own session");
  const id = encodeGlobalId("Session", p.sessionUuid);
  const global = String(message[globalField] ?? "");
  const external = String(message.sessionId ?? "");
  if (!global && !external) message[globalField] = id;
  else if ((global && global !== id) || (external && external !== p.externalId)) throw denied(`${global ? (globalField === "id" ? "id" : "session") : "session_id"}: this client secret may only address its own session`);
}
