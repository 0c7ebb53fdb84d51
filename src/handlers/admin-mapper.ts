/**
 * Protobuf <-> domain conversions for AdminService.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ApiKeySchema,
  AuditEventSchema,
  NamespaceSchema,
  RetentionPolicySchema,
  type ApiKey,
  type AuditEvent,
  type Namespace,
  type RetentionPolicy,
} from "../../gen/sessiond/v1/admin_service_pb.js";
import { Role as ProtoRole } from "../../gen/sessiond/v1/auth_pb.js";
import type { ApiKey as DomainApiKey, Role } from "../domain/access.js";
import type { AuditEvent as DomainAuditEvent } from "../domain/audit-log.js";
import { encodeGlobalId } from "../domain/ids.js";
import type { Namespace as DomainNamespace } from "../domain/namespace-store.js";
import type { RetentionPolicy as DomainRetentionPolicy } from "../domain/retention.js";
import { durationToMs } from "./session-mapper.js";

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
    detail: e.detail ?? undefined,
  });
}

/** A policy as sent -> domain (durations checked by the domain; a malformed one names its field here). */
export function retentionFromProto(p: RetentionPolicy | undefined): DomainRetentionPolicy {
  return {
    maxAgeMs: durationToMs(p?.maxAge, "policy.max_age"),
    maxIdleMs: durationToMs(p?.maxIdle, "policy.max_idle"),
    purgeMemories: p?.purgeMemories ?? false,
    holdLabels: p?.holdLabels ?? [],
    sessionlessTraceTtlMs: durationToMs(p?.sessionlessTraceTtl, "policy.sessionless_trace_ttl"),
  };
}

/** A domain policy -> proto (unset durations stay unset). */
export function retentionToProto(p: DomainRetentionPolicy): RetentionPolicy {
  const d = (ms: number | undefined) => (ms === undefined ? undefined : durationFromMs(ms));
  return create(RetentionPolicySchema, { maxAge: d(p.maxAgeMs), maxIdle: d(p.maxIdleMs), purgeMemories: p.purgeMemories, holdLabels: p.holdLabels, sessionlessTraceTtl: d(p.sessionlessTraceTtlMs) });
}
