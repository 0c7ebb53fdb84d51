/**
 * The authorization decision, in one place: may this principal call a method with this policy on what
 * the request names? `authorize` is pure (domain values in, a Decision out); `authorizeRequest` adds
 * authentication and a client secret's rate limit around it, for the request gate. Handlers only
 * extract the credential, the policy (from the contract's options) and the target (from the message)
 * and call these; they decide nothing themselves.
 *
 * The rules, in the order they are checked (the first that fails is the answer):
 * 1. an open method (health, reflection, GetServerInfo) needs no credential;
 * 2. no credential: unauthenticated;
 * 3. a client secret may call only the methods that allow client secrets;
 *    an API key needs the method to name a role, a role at least that one, and, for a method of all
 *    namespaces (AdminService's namespace and key management), a key for all namespaces;
 * 4. once the request is read: a principal of one namespace stays in it (an empty namespace becomes its
 *    own), and a client secret stays on its own session (an empty address becomes its session).
 */
import { roleAllows, type Principal, type Role } from "./access.js";
import type { CertificateIdentities, PeerCertificate } from "./certificate-identities.js";
import type { Credentials } from "./credentials.js";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";
import { decodeSessionId, encodeSessionId, sessionIdIn } from "./ids.js";

/** What a method requires of its callers (read from the contract by handlers/auth.ts). */
export interface AccessPolicy {
  /** The method's full name (`sessiond.v1.SessionService/GetSession`), as messages show it. */
  name: string;
  /** Open to anyone, without a credential. */
  open: boolean;
  /** The least role an API key needs; undefined: no API key may call it. */
  role: Role | undefined;
  /** Whether a session's client secret may call it (on its own session). */
  clientSecret: boolean;
  /** Whether it acts on every namespace, so that only a key for all namespaces may call it. */
  allNamespaces: boolean;
}

/** What a request names, as far as the scope rules care. */
export interface AccessTarget {
  /**
   * The namespace the request names ("" when left empty) and where it names it (a field path or a
   * header, for messages); undefined when the request has no namespace of its own to check.
   */
  namespace?: { value: string; where: string };
  /**
   * How the request addresses a session: by global id (`where` is the field holding it, "" when empty)
   * and by the caller's session id ("" when empty); undefined when the method cannot address a session.
   */
  session?: { id: string; where: string; sessionId: string };
}

/** What an allowed request left empty and must be read as: the caller's namespace, its session. */
export interface TargetDefaults {
  /** The namespace to use where the request named none. */
  namespace?: string;
  /** The global id of the session to use where the request addressed none (client secrets). */
  session?: string;
}

/** The outcome of {@link authorize}. */
export type Decision =
  | { kind: "allowed"; defaults: TargetDefaults }
  | { kind: "denied"; message: string }
  | { kind: "unauthenticated"; message: string };

/**
 * What a request presents as its credential: a secret in a header, else a client certificate from the
 * TLS handshake (mutual TLS), else nothing.
 */
export type PresentedCredential =
  | { kind: "none" }
  | { kind: "secret"; secret: string }
  | { kind: "certificate"; cert: PeerCertificate }
  | { kind: "malformed"; message: string };

/** The message of a request without a credential (for a method that needs one). */
export const MISSING_CREDENTIALS = "missing credentials: send Authorization: Bearer <API key> (or X-API-Key: <API key>)";

const allowed = (defaults: TargetDefaults = {}): Decision => ({ kind: "allowed", defaults });
const denied = (message: string): Decision => ({ kind: "denied", message });

/**
 * Whether `principal` may call a method of `policy` on `target`. Without a target (before the request
 * is read) it decides role, client-secret and all-namespaces rules only; with one, the scope too, and
 * says what the request's empty namespace or session address stands for. Pure.
 */
export function authorize(principal: Principal | undefined, policy: AccessPolicy, target?: AccessTarget): Decision {
  if (policy.open) return allowed();
  if (!principal) return { kind: "unauthenticated", message: MISSING_CREDENTIALS };
  if (principal.kind === "client") {
    if (!policy.clientSecret) return denied(`a client secret may not call ${policy.name}; it allows GetSession, AppendTurns, ListTurns and RecordSpans on its own session`);
  } else {
    const what = principal.kind === "key" ? "API key" : "client certificate";
    if (!policy.role) return denied(`${policy.name} is not open to ${what}s`);
    if (!roleAllows(principal.role, policy.role)) return denied(`${policy.name} needs role ${policy.role.toUpperCase()}; this ${what} is ${principal.role.toUpperCase()}`);
    if (policy.allNamespaces && principal.namespace !== null) return denied(`${policy.name} needs ${principal.kind === "key" ? "an" : "a"} ${what} for all namespaces; this one is for namespace "${principal.namespace}"`);
  }
  return target ? scope(principal, target) : allowed();
}

/** Keeps a principal of one namespace inside it, and a client secret on its own session. */
function scope(principal: Principal, target: AccessTarget): Decision {
  const own = principal.namespace;
  if (own === null) return allowed();
  const defaults: TargetDefaults = {};
  const who = principal.kind === "client" ? "this client secret" : principal.kind === "key" ? "this API key" : "this client certificate";
  if (target.namespace) {
    if (target.namespace.value === "") defaults.namespace = own;
    else if (target.namespace.value !== own) return denied(`${target.namespace.where}: ${who} may only use namespace "${own}"`);
  }
  if (principal.kind === "client") {
    const s = target.session;
    if (!s) return denied("this client secret may only address its own session");
    if (!s.id && !s.sessionId) defaults.session = encodeSessionId(principal.namespaceId, principal.sessionUuid);
    else if ((s.id && !namesSession(s.id, principal)) || (s.sessionId && s.sessionId !== principal.externalId)) {
      return denied(`${s.id ? s.where : "session_id"}: this client secret may only address its own session`);
    }
  }
  return allowed(defaults);
}

/**
 * Whether the global id `id` names the client secret's own session: its current form, or the old one
 * (without the namespace) that clients may still hold. A malformed id names no session.
 */
function namesSession(id: string, principal: Extract<Principal, { kind: "client" }>): boolean {
  try {
    const named = decodeSessionId(id);
    return named.uuid === principal.sessionUuid && sessionIdIn(named, principal.namespaceId);
  } catch {
    return false;
  }
}

/**
 * The defaults of an allowed decision. @throws UnauthenticatedError, PermissionDeniedError with the
 * decision's message otherwise
 */
export function enforce(decision: Decision): TargetDefaults {
  switch (decision.kind) {
    case "allowed":
      return decision.defaults;
    case "unauthenticated":
      throw new UnauthenticatedError(decision.message);
    case "denied":
      throw new PermissionDeniedError(decision.message);
  }
}

/**
 * Authenticates what a request presents and decides whether it may call a method of `policy` (before
 * the request is read); counts a client secret's request against its session's limit. Returns the
 * principal (undefined for open methods, whose credentials are not even looked at).
 * @throws UnauthenticatedError, PermissionDeniedError, RateLimitedError
 */
export async function authorizeRequest(
  credentials: Pick<Credentials, "authenticate" | "admit">,
  presented: PresentedCredential,
  policy: AccessPolicy,
  certificates?: Pick<CertificateIdentities, "identify">,
): Promise<Principal | undefined> {
  if (policy.open) return undefined;
  if (presented.kind === "malformed") throw new UnauthenticatedError(presented.message);
  let principal: Principal | undefined;
  if (presented.kind === "secret") principal = await credentials.authenticate(presented.secret);
  else if (presented.kind === "certificate") {
    if (!certificates) throw new UnauthenticatedError(MISSING_CREDENTIALS);
    principal = certificates.identify(presented.cert);
  }
  enforce(authorize(principal, policy));
  if (principal?.kind === "client") await credentials.admit(principal);
  return principal;
}
