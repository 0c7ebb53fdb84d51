/**
 * The authorization decision (domain/authorization.ts), without a server or a database: every role
 * against every required role, the client-secret and all-namespaces rules, and the namespace and
 * session scope with what an empty namespace or address becomes.
 */
import { describe, expect, it } from "vitest";
import type { Principal, Role } from "../../src/domain/access.js";
import {
  authorize,
  authorizeRequest,
  enforce,
  MISSING_CREDENTIALS,
  type AccessPolicy,
  type AccessTarget,
  type PresentedCredential,
} from "../../src/domain/authorization.js";
import { PermissionDeniedError, RateLimitedError, UnauthenticatedError } from "../../src/domain/errors.js";
import { encodeSessionId } from "../../src/domain/ids.js";

const ROLES: Role[] = ["reader", "writer", "admin"];
const SESSION_UUID = "0190d9b2-7c4e-7a1b-8c3d-4e5f60718293";
const NAMESPACE_UUID = "0190d9b2-7c4e-7a1b-8c3d-4e5f60718290";
const SESSION_ID = encodeSessionId(NAMESPACE_UUID, SESSION_UUID);
const OTHER_SESSION_ID = encodeSessionId(NAMESPACE_UUID, "0190d9b2-7c4e-7a1b-8c3d-000000000000");
/** Its session's id of the old form (no namespace), as clients may still hold it. */
const OLD_SESSION_ID = Buffer.from(`Session:${SESSION_UUID}`).toString("base64url");
/** Its session's uuid under another namespace's uuid: another session. */
const ELSEWHERE_SESSION_ID = encodeSessionId("0190d9b2-7c4e-7a1b-8c3d-4e5f60718291", SESSION_UUID);

const policy = (over: Partial<AccessPolicy> = {}): AccessPolicy => ({ name: "sessiond.v1.SessionService/GetSession", open: false, role: "reader", clientSecret: false, allNamespaces: false, ...over });
const key = (role: Role, namespace: string | null = null): Principal => ({ kind: "key", keyUuid: "0190d9b2-0000-7000-8000-000000000001", role, namespace });
const client = (namespace = "team-a"): Principal => ({ kind: "client", sessionUuid: SESSION_UUID, externalId: "chat-1", namespace, namespaceId: NAMESPACE_UUID, maxRequestsPerMinute: 60 });
const inNamespace = (value: string, where = "namespace"): AccessTarget => ({ namespace: { value, where } });
const address = (id: string, sessionId: string, where = "id"): AccessTarget => ({ namespace: { value: "", where: "namespace" }, session: { id, where, sessionId } });
const allowed = (defaults = {}) => ({ kind: "allowed", defaults });
const denied = (message: string) => ({ kind: "denied", message });

describe("open methods", () => {
  it.each([undefined, key("reader", "team-a"), client()])("allow any caller, even none (%j), and name no defaults", (principal) => {
    expect(authorize(principal, policy({ open: true, role: undefined }), inNamespace("elsewhere"))).toEqual(allowed());
  });
});

describe("a call without a credential", () => {
  it.each([policy(), policy({ role: "admin", allNamespaces: true }), policy({ clientSecret: true })])("is unauthenticated, with how to send one", (p) => {
    expect(authorize(undefined, p)).toEqual({ kind: "unauthenticated", message: MISSING_CREDENTIALS });
  });
});

describe("API keys and roles", () => {
  const cases = ROLES.flatMap((held) => ROLES.map((needed) => [held, needed, ROLES.indexOf(held) >= ROLES.indexOf(needed)] as const));
  it.each(cases)("a %s key calling a method that needs %s: allowed = %s", (held, needed, ok) => {
    const decision = authorize(key(held), policy({ name: "sessiond.v1.X/Y", role: needed }));
    expect(decision).toEqual(ok ? allowed() : denied(`sessiond.v1.X/Y needs role ${needed.toUpperCase()}; this API key is ${held.toUpperCase()}`));
  });

  it.each(ROLES)("a %s key may not call a method that declares no role (closed to keys)", (held) => {
    expect(authorize(key(held), policy({ name: "sessiond.v1.X/Y", role: undefined, clientSecret: true }))).toEqual(denied("sessiond.v1.X/Y is not open to API keys"));
  });

  it("lets only a key for all namespaces call a method of all namespaces", () => {
    const p = policy({ name: "sessiond.v1.AdminService/DeleteNamespace", role: "admin", allNamespaces: true });
    expect(authorize(key("admin"), p)).toEqual(allowed());
    expect(authorize(key("admin", "team-a"), p)).toEqual(denied('sessiond.v1.AdminService/DeleteNamespace needs an API key for all namespaces; this one is for namespace "team-a"'));
  });

  it("checks the role before the all-namespaces rule", () => {
    const p = policy({ name: "sessiond.v1.AdminService/CreateApiKey", role: "admin", allNamespaces: true });
    expect(authorize(key("writer", "team-a"), p)).toEqual(denied("sessiond.v1.AdminService/CreateApiKey needs role ADMIN; this API key is WRITER"));
  });

  it("ignores client_secret_allowed for keys: the role still decides", () => {
    expect(authorize(key("reader"), policy({ role: "writer", clientSecret: true }))).toMatchObject({ kind: "denied" });
  });
});

describe("client secrets", () => {
  it("may not call a method that does not allow client secrets, whatever its role", () => {
    for (const role of [...ROLES, undefined]) {
      expect(authorize(client(), policy({ name: "sessiond.v1.SessionService/ListSessions", role }))).toEqual(
        denied("a client secret may not call sessiond.v1.SessionService/ListSessions; it allows GetSession, AppendTurns, ListTurns and RecordSpans on its own session"),
      );
    }
  });

  it("may call one that does, before the request is read (no target yet)", () => {
    expect(authorize(client(), policy({ role: "writer", clientSecret: true }))).toEqual(allowed());
  });
});

describe("namespace scope", () => {
  it.each(ROLES)("leaves a %s key for all namespaces free to name any namespace, filling in nothing", (role) => {
    expect(authorize(key(role), policy(), inNamespace("team-b"))).toEqual(allowed());
    expect(authorize(key(role), policy(), inNamespace(""))).toEqual(allowed());
  });

  it("reads an empty namespace as a one-namespace key's own", () => {
    expect(authorize(key("reader", "team-a"), policy(), inNamespace(""))).toEqual(allowed({ namespace: "team-a" }));
  });

  it("allows a one-namespace key its own namespace, with nothing to fill in", () => {
    expect(authorize(key("writer", "team-a"), policy(), inNamespace("team-a"))).toEqual(allowed());
  });

  it("denies a one-namespace key another namespace, naming where the request named it", () => {
    expect(authorize(key("admin", "team-a"), policy(), inNamespace("team-b"))).toEqual(denied('namespace: this API key may only use namespace "team-a"'));
    expect(authorize(key("admin", "team-a"), policy(), inNamespace("team-b", "sessiond-namespace"))).toEqual(denied('sessiond-namespace: this API key may only use namespace "team-a"'));
  });

  it("has nothing to check when the request names no namespace (a session by global id)", () => {
    expect(authorize(key("reader", "team-a"), policy(), {})).toEqual(allowed());
    expect(authorize(key("reader", "team-a"), policy(), { session: { id: OTHER_SESSION_ID, where: "id", sessionId: "" } })).toEqual(allowed());
  });

  it("keeps a client secret in its session's namespace too", () => {
    const p = policy({ clientSecret: true });
    expect(authorize(client("team-a"), p, { ...address(SESSION_ID, ""), namespace: { value: "team-b", where: "namespace" } })).toEqual(denied('namespace: this client secret may only use namespace "team-a"'));
    expect(authorize(client("team-a"), p, address(SESSION_ID, ""))).toEqual(allowed({ namespace: "team-a" }));
  });

  it("decides role rules before the scope, even with a target", () => {
    expect(authorize(key("reader", "team-a"), policy({ name: "sessiond.v1.X/Y", role: "writer" }), inNamespace("team-b"))).toEqual(denied("sessiond.v1.X/Y needs role WRITER; this API key is READER"));
  });
});

describe("a client secret's session", () => {
  const p = policy({ clientSecret: true, role: "writer" });

  it("becomes the address of a request that addresses none", () => {
    expect(authorize(client(), p, address("", ""))).toEqual(allowed({ namespace: "team-a", session: SESSION_ID }));
  });

  it.each([
    ["its global id", address(SESSION_ID, "")],
    ["its caller's session id", address("", "chat-1")],
    ["both", address(SESSION_ID, "chat-1")],
    ["its global id in a `session` field", address(SESSION_ID, "", "session")],
    ["its global id of the old form", address(OLD_SESSION_ID, "")],
    ["its global id of the old form in a `session` field, with its session id", address(OLD_SESSION_ID, "chat-1", "session")],
  ])("may be addressed by %s", (_, target) => {
    expect(authorize(client(), p, target)).toMatchObject({ kind: "allowed" });
  });

  it.each([
    ["another global id, naming the id field", address(OTHER_SESSION_ID, ""), "id"],
    ["another global id in a `session` field, naming it", address(OTHER_SESSION_ID, "", "session"), "session"],
    ["another caller's session id, naming session_id", address("", "chat-2"), "session_id"],
    ["its own id with another session id, naming the id field", address(SESSION_ID, "chat-2"), "id"],
    ["its own uuid in another namespace's global id, naming the id field", address(ELSEWHERE_SESSION_ID, ""), "id"],
    ["a malformed global id, naming the id field", address("not-a-global-id", ""), "id"],
    ["another session's global id of the old form, naming the id field", address(Buffer.from("Session:0190d9b2-7c4e-7a1b-8c3d-000000000000").toString("base64url"), ""), "id"],
  ])("is the only one it may address: %s", (_, target, field) => {
    expect(authorize(client(), p, target)).toEqual(denied(`${field}: this client secret may only address its own session`));
  });

  it("denies a request that cannot address a session at all", () => {
    expect(authorize(client(), p, inNamespace(""))).toEqual(denied("this client secret may only address its own session"));
  });
});

describe("enforce", () => {
  it("returns the defaults of an allowed decision and throws the typed error of the others, with their messages", () => {
    expect(enforce({ kind: "allowed", defaults: { namespace: "a" } })).toEqual({ namespace: "a" });
    expect(() => enforce({ kind: "denied", message: "no" })).toThrow(new PermissionDeniedError("no"));
    expect(() => enforce({ kind: "unauthenticated", message: "who?" })).toThrow(UnauthenticatedError);
  });
});

describe("authorizeRequest (authentication, the decision, the rate limit)", () => {
  function fakeCredentials(principal: Principal, admitted: { count: number }, limited = false) {
    return {
      authenticate: async (secret: string) => {
        if (secret !== "good") throw new UnauthenticatedError("the credential is unknown, revoked or expired");
        return principal;
      },
      admit: async () => {
        admitted.count++;
        if (limited) throw new RateLimitedError("over", 1000);
      },
    };
  }
  const secret = (s: string): PresentedCredential => ({ kind: "secret", secret: s });

  it("does not look at the credential of an open method, even a malformed one", async () => {
    const admitted = { count: 0 };
    await expect(authorizeRequest(fakeCredentials(key("admin"), admitted), { kind: "malformed", message: "bad" }, policy({ open: true }))).resolves.toBeUndefined();
  });

  it("answers unauthenticated for a malformed, missing or unknown credential", async () => {
    const creds = fakeCredentials(key("admin"), { count: 0 });
    await expect(authorizeRequest(creds, { kind: "malformed", message: "authorization: bad" }, policy())).rejects.toThrow(new UnauthenticatedError("authorization: bad"));
    await expect(authorizeRequest(creds, { kind: "none" }, policy())).rejects.toThrow(new UnauthenticatedError(MISSING_CREDENTIALS));
    await expect(authorizeRequest(creds, secret("bad"), policy())).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it("returns the principal a role allows, and refuses the one it does not", async () => {
    await expect(authorizeRequest(fakeCredentials(key("writer"), { count: 0 }), secret("good"), policy({ role: "writer" }))).resolves.toMatchObject({ kind: "key", role: "writer" });
    await expect(authorizeRequest(fakeCredentials(key("reader"), { count: 0 }), secret("good"), policy({ role: "writer" }))).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it("counts a client secret's request only once the method allows it, and passes its rate limit on", async () => {
    const admitted = { count: 0 };
    await expect(authorizeRequest(fakeCredentials(client(), admitted), secret("good"), policy())).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(admitted.count).toBe(0);
    await expect(authorizeRequest(fakeCredentials(client(), admitted), secret("good"), policy({ clientSecret: true }))).resolves.toMatchObject({ kind: "client" });
    expect(admitted.count).toBe(1);
    await expect(authorizeRequest(fakeCredentials(client(), admitted, true), secret("good"), policy({ clientSecret: true }))).rejects.toBeInstanceOf(RateLimitedError);
  });

  it("never counts an API key's request", async () => {
    const admitted = { count: 0 };
    await authorizeRequest(fakeCredentials(key("admin"), admitted), secret("good"), policy());
    expect(admitted.count).toBe(0);
  });
});
