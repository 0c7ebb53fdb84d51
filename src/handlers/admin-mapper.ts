/**
 * Protobuf <-> domain conversions for AdminService.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ApiKeySchema, AuditEventSchema, NamespaceSchema, type ApiKey, type AuditEvent, type Namespace } from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import type { ApiKey as DomainApiKey, Role } from "../domain/access.js";
import type { AuditEvent as DomainAuditEvent } from "../domain/audit-log.js";
import { encodeGlobalId } from "../domain/ids.js";
import type { Namespace as DomainNamespace } from "../domain/namespace-store.js";

const TO_PROTO: Record<Role, ProtoRole> = { reader: ProtoRole.READER, writer: ProtoRole.WRITER, admin: ProtoRole.ADMIN };

/** A role from the API; undefined for ROLE_UNSPECIFIED or an unknown number (the domain rejects it). */
export function roleFromProto(role: ProtoRole): Role | undefined {
  return (Object.keys(TO_PROTO) as Role[]).find((r) => TO_PROTO[r] === role);
}

export function apiKeyToProto(k: DomainApiKey): ApiKey {
  return create(ApiKeySchema, {
    id: encodeGlobalId("ApiKey", k.uuid),
    displayName: k.displayName,
    role: TO_PROTO[k.role],
    namespace: k.namespace ?? "",
    createTime: timestampFromDate(k.createTime),
    expireTime: k.expireTime ? timestampFromDate(k.expireTime) : undefined,
    revokeTime: k.revokeTime ? timestampFromDate(k.revokeTime) : undefined,
    createdBy: k.createdBy,
    secretPrefix: k.secretPrefix,
  });
}

export function namespaceToProto(n: DomainNamespace): Namespace {
  return create(NamespaceSchema, { id: encodeGlobalId("Namespace", n.uuid), name: n.name, createTime: timestampFromDate(n.createTime) });
}

export function auditEventToProto(e: DomainAuditEvent): AuditEvent {
  return create(AuditEventSchema, {
    id: encodeGlobalId("AuditEvent", e.uuid),
    time: timestampFromDate(e.time),
    actor: e.actor,
    method: e.method,
    namespace: e.namespace,
    itemCount: BigInt(e.itemCount),
    code: e.code,
    requestId: e.requestId,
  });
}
