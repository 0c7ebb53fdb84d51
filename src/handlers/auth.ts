/**
 * Who may call what, as requests see it. The decision itself is the domain's
 * (domain/authorization.ts); this file only reads what it needs from requests and the contract:
 * - the method's policy, from the options each RPC declares (auth.proto: required_role,
 *   client_secret_allowed, all_namespaces);
 * - `requestGate`, before the request body is read: extracts the credential (`Authorization: Bearer`
 *   or `X-API-Key`) and calls authorizeRequest (authentication, role or client-secret rules, rate limit);
 * - `scopeInterceptor`, once the message is parsed: extracts what the message names (namespace,
 *   session address) and calls authorize with it, then fills in what the request left empty;
 * - `authorizeHttp`: both, for a plain HTTP endpoint that stands for an RPC (OTLP/HTTP).
 * Health, reflection and GetServerInfo are open. A method without a declared role is closed. What
 * callers did is recorded by handlers/audit.ts.
 */
import { getOption, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { all_namespaces, client_secret_allowed, required_role, Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import type { Principal, Role } from "../domain/access.js";
import { authorize, authorizeRequest, enforce, type AccessPolicy, type AccessTarget, type PresentedCredential, type TargetDefaults } from "../domain/authorization.js";
import { CertificateRefusedError, type CertificateIdentities, type PeerCertificate } from "../domain/certificate-identities.js";
import type { Credentials } from "../domain/credentials.js";
import { encodeGlobalId, encodeSessionId } from "../domain/ids.js";
import type { Logger } from "../logger.js";
import { toConnectError } from "./errors.js";
import { peerCertificateKey } from "./peer.js";
import { seeRequest } from "./streams.js";

/** The authenticated caller of a call (undefined for open methods). */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "sessiond caller" });

/**
 * Checks the call's credential again, as its request gate did (for a stream that outlives a revocation:
 * a watch). @throws a domain error (unauthenticated, permission denied) when it is no longer accepted
 */
export const recheckKey = createContextKey<(() => Promise<void>) | undefined>(undefined, { description: "sessiond credential recheck" });

/** The namespace header of OTLP's Export (gRPC and HTTP), the one method whose namespace is not in the message. */
export const NAMESPACE_HEADER = "sessiond-namespace";

/** Open to anyone: load balancers, `buf curl` discovery and clients checking capabilities. */
const OPEN_SERVICES = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
const OPEN_METHODS = new Set(["sessiond.v1.ServerInfoService/GetServerInfo"]);
/** Methods of vendored services, which cannot carry our options. */
const VENDORED_ROLES: Record<string, Role> = { "opentelemetry.proto.collector.trace.v1.TraceService/Export": "writer" };

/** What a method requires, read from its options; plus whether the audit log records it. */
export interface MethodPolicy extends AccessPolicy {
  /** Recorded in the audit log: everything but Get*, List* and Watch*. */
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
      mutating: !/^(Get|List|Watch)/.test(method.name) && !OPEN_SERVICES.has(method.parent.typeName),
    };
    policies.set(method, p);
  }
  return p;
}

/** How the audit log and CreateApiKey name a caller. */
export function actorOf(p: Principal | undefined): string {
  if (!p) return "";
  if (p.kind === "certificate") return `certificate:${p.identity}`;
  return p.kind === "key" ? encodeGlobalId("ApiKey", p.keyUuid) : `session:${encodeSessionId(p.namespaceId, p.sessionUuid)}`;
}

/**
 * The credential a request presents: `Authorization: Bearer <secret>`, else `X-API-Key: <secret>`, else
 * the connection's client certificate (mutual TLS). A secret in a header wins over the certificate.
 */
export function presentedCredential(headers: Headers, peer?: PeerCertificate): PresentedCredential {
  const auth = headers.get("authorization");
  if (auth !== null) {
    const m = /^Bearer +([\x21-\x7e]{1,512})$/i.exec(auth.trim());
    if (!m) return { kind: "malformed", message: 'authorization: expected "Bearer <API key or client secret>"' };
    return { kind: "secret", secret: m[1] };
  }
  const key = headers.get("x-api-key")?.trim();
  if (key) return { kind: "secret", secret: key };
  return peer ? { kind: "certificate", cert: peer } : { kind: "none" };
}

/** The message holding a request's `namespace` field: the request, or its `session` (UpdateSession). */
export function namespaceHolder(desc: DescMessage, message: Record<string, unknown>): Record<string, unknown> | undefined {
  if (desc.field.namespace?.fieldKind === "scalar") return message;
  const inner = desc.field.session;
  if (inner?.fieldKind === "message" && inner.message.field.namespace) return (message.session as Record<string, unknown> | undefined) ?? undefined;
  return undefined;
}

/** What a parsed request names (for authorize), and how to fill in what it left empty. */
function targetOf(method: DescMethod, message: Record<string, unknown>, header: Headers): { target: AccessTarget; fill(defaults: TargetDefaults): void } {
  const desc = method.input;
  const holder = namespaceHolder(desc, message);
  const target: AccessTarget = {};
  let setNamespace = (_namespace: string) => {};
  if (holder) {
    target.namespace = { value: String(holder.namespace ?? ""), where: "namespace" };
    setNamespace = (namespace) => (holder.namespace = namespace);
  } else if (desc.field.namespace === undefined && desc.field.session === undefined) {
    // OTLP's Export names its namespace in a header.
    target.namespace = { value: header.get(NAMESPACE_HEADER) ?? "", where: NAMESPACE_HEADER };
    setNamespace = (namespace) => header.set(NAMESPACE_HEADER, namespace);
  }
  const globalField = desc.field.id ? "id" : desc.field.session?.fieldKind === "scalar" ? "session" : undefined;
  if (globalField && desc.field.sessionId) target.session = { id: String(message[globalField] ?? ""), where: globalField, sessionId: String(message.sessionId ?? "") };
  return {
    target,
    fill(defaults) {
      if (defaults.namespace !== undefined) setNamespace(defaults.namespace);
      if (defaults.session !== undefined && globalField) message[globalField] = defaults.session;
    },
  };
}

/** Keeps a parsed request in the scope of `p` (see domain/authorization.ts). @throws PermissionDeniedError */
function applyScope(p: Principal, method: DescMethod, message: Record<string, unknown>, header: Headers): void {
  const { target, fill } = targetOf(method, message, header);
  fill(enforce(authorize(p, policyOf(method), target)));
}

/** The caller of a plain HTTP endpoint standing for an RPC, and the namespace it is kept in. */
export interface HttpAuthorization {
  principal: Principal | undefined;
  namespace: string;
}

/** Authentication and authorization of requests, for RPCs and for plain HTTP endpoints. */
export interface AccessControl {
  /** connect's requestGate: runs before the body is read; sets principalKey. @throws ConnectError */
  requestGate(context: HandlerContext): Promise<void>;
  /** Keeps the caller inside its namespace (and a client secret on its session), once the message is read. */
  scopeInterceptor: Interceptor;
  /**
   * For a plain HTTP endpoint standing for `method` (OTLP/HTTP for OTLP's Export): authorizes the
   * request and keeps it in the caller's namespace (the `sessiond-namespace` header). @throws ConnectError
   */
  authorizeHttp(headers: Headers, method: DescMethod, peer?: PeerCertificate): Promise<HttpAuthorization>;
}

/**
 * The access control over `credentials` and, with mutual TLS, the configured client-certificate
 * identities (without them a client certificate is no credential).
 */
export function createAccess(deps: { credentials: Credentials; certificates?: CertificateIdentities; logger: Logger }): AccessControl {
  const { credentials, certificates, logger } = deps;

  /** Authenticates and authorizes a request before its body is read; logs a refusal. @throws ConnectError */
  async function gate(headers: Headers, policy: MethodPolicy, peer: PeerCertificate | undefined): Promise<Principal | undefined> {
    try {
      return await authorizeRequest(credentials, presentedCredential(headers, peer), policy, certificates);
    } catch (err) {
      const e = toConnectError(err, headers.get("x-request-id") ?? "-", logger);
      // Which check a client certificate failed is for the operator only (the caller is told nothing more).
      const detail = err instanceof CertificateRefusedError ? { certificate_problem: err.reason } : {};
      logger.info({ method: policy.name, code: codeToString(e.code), reason: e.rawMessage, ...detail }, "rpc rejected");
      throw e;
    }
  }

  return {
    async requestGate(context) {
      const policy = policyOf(context.method);
      const headers = context.requestHeader;
      const peer = context.values.get(peerCertificateKey);
      context.values.set(principalKey, await gate(headers, policy, peer));
      if (context.method.methodKind === "server_streaming") {
        // Not counted against a client secret's rate limit: the stream was admitted once.
        const again = { authenticate: (secret: string) => credentials.authenticate(secret), admit: async () => {} };
        context.values.set(recheckKey, async () => {
          await authorizeRequest(again, presentedCredential(headers, peer), policy, certificates);
        });
      }
    },

    scopeInterceptor: (next) => async (req) => {
      const p = req.contextValues.get(principalKey);
      return next(p ? seeRequest(req, (message) => applyScope(p, req.method, message, req.header)) : req);
    },

    async authorizeHttp(headers, method, peer) {
      const principal = await gate(headers, policyOf(method), peer);
      if (principal) {
        try {
          applyScope(principal, method, {}, headers);
        } catch (err) {
          throw toConnectError(err, headers.get("x-request-id") ?? "-", logger);
        }
      }
      return { principal, namespace: headers.get(NAMESPACE_HEADER) ?? "" };
    },
  };
}
