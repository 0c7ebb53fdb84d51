import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import type { Role } from "../../src/domain/access.js";
import { decodeGlobalId, newUuid } from "../../src/domain/ids.js";
import { apiKeyToProto, auditEventToProto, namespaceToProto, roleFromProto } from "../../src/handlers/admin-mapper.js";
import { apiKey, at, auditEvent, T0 } from "./support/factories.js";

const ROLES: [Role, ProtoRole][] = [
  ["reader", ProtoRole.READER],
  ["writer", ProtoRole.WRITER],
  ["admin", ProtoRole.ADMIN],
];

describe("roles", () => {
  it.each(ROLES)("map %s to its enum value and back", (role, proto) => {
    expect(apiKeyToProto(apiKey({ role })).role).toBe(proto);
    expect(roleFromProto(proto)).toBe(role);
  });

  it("read ROLE_UNSPECIFIED and unknown numbers as no role (the domain rejects them)", () => {
    expect(roleFromProto(ProtoRole.UNSPECIFIED)).toBeUndefined();
    expect(roleFromProto(77 as ProtoRole)).toBeUndefined();
  });
});

describe("apiKeyToProto", () => {
  it("maps every field; a key for all namespaces has an empty namespace, and unset times stay unset", () => {
    const k = apiKey();
    const p = apiKeyToProto(k);
    expect(p).toMatchObject({ displayName: "ci", role: ProtoRole.WRITER, namespace: "", createdBy: "admin", secretPrefix: "sk_AbCdEfGh" });
    expect(decodeGlobalId("ApiKey", p.id)).toBe(k.uuid);
    expect(timestampDate(p.createTime!)).toEqual(T0);
    expect(p.expireTime).toBeUndefined();
    expect(p.revokeTime).toBeUndefined();
  });

  it("gives the namespace and the expiry and revocation times when set", () => {
    const p = apiKeyToProto(apiKey({ namespace: "team-a", namespaceId: newUuid(), expireTime: at(86_400_000), revokeTime: at(60_000) }));
    expect(p.namespace).toBe("team-a");
    expect(timestampDate(p.expireTime!)).toEqual(at(86_400_000));
    expect(timestampDate(p.revokeTime!)).toEqual(at(60_000));
  });

  it("never carries a secret or its hash", () => {
    expect(Object.keys(apiKeyToProto(apiKey())).filter((k) => /secret|hash/i.test(k))).toEqual(["secretPrefix"]);
  });
});

describe("namespaceToProto and auditEventToProto", () => {
  it("map a namespace with its global id", () => {
    const uuid = newUuid();
    const p = namespaceToProto({ uuid, name: "team-a", createTime: T0 });
    expect(p).toMatchObject({ name: "team-a" });
    expect(decodeGlobalId("Namespace", p.id)).toBe(uuid);
    expect(timestampDate(p.createTime!)).toEqual(T0);
  });

  it("map every field of an audit event, the item count as a bigint", () => {
    const e = auditEvent({ code: "permission_denied", itemCount: 3 });
    const p = auditEventToProto(e);
    expect(p).toMatchObject({ actor: e.actor, method: e.method, namespace: "default", itemCount: 3n, code: "permission_denied", requestId: "req-9" });
    expect(decodeGlobalId("AuditEvent", p.id)).toBe(e.uuid);
    expect(timestampDate(p.time!)).toEqual(T0);
  });
});
