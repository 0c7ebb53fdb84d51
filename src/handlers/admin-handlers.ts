/**
 * AdminService handlers: namespaces, API keys, retention, erasure and the audit log.
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AdminService,
  CreateApiKeyResponseSchema,
  CreateNamespaceResponseSchema,
  DeleteNamespaceResponseSchema,
  GetRetentionPolicyResponseSchema,
  SetRetentionPolicyResponseSchema,
  ListApiKeysResponseSchema,
  ListAuditEventsResponseSchema,
  ListNamespacesResponseSchema,
  NamespaceDeletedSchema,
  RevokeApiKeyResponseSchema,
} from "../../gen/sessiond/v1/admin_service_pb.js";
import type { Services } from "../domain/services.js";
import { apiKeyToProto, auditEventToProto, namespaceToProto, retentionFromProto, retentionToProto, roleFromProto } from "./admin-mapper.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { actorOf, principalKey } from "./auth.js";
import { bulkEventToProto } from "./bulk-delete-mapper.js";
import { erasureEventToProto, subjectFromProto } from "./erasure-mapper.js";
import { durationToMs } from "./session-mapper.js";

/** Builds the AdminService implementation. */
export function createAdminHandlers(services: Pick<Services, "namespaces" | "apiKeys" | "credentials" | "audit" | "retention" | "operations">): ServiceImpl<typeof AdminService> {
  const { namespaces, apiKeys, credentials, audit, retention, operations } = services;
  const caller = (context: HandlerContext) => actorOf(context.values.get(principalKey)) || "unknown";
  return {
    async createNamespace(req) {
      return create(CreateNamespaceResponseSchema, { namespace: namespaceToProto(await namespaces.create(req.name)) });
    },

    async listNamespaces(req) {
      const page = await namespaces.list(req);
      return create(ListNamespacesResponseSchema, { namespaces: page.namespaces.map(namespaceToProto), nextPageToken: page.nextPageToken });
    },

    async *deleteNamespace(req, context) {
      for await (const e of namespaces.delete({ name: req.name, batchSize: req.batchSize, detach: req.detach, actor: caller(context) }, context.signal)) {
        if (e.type !== "deleted") {
          yield create(DeleteNamespaceResponseSchema, { event: bulkEventToProto(e).event });
          continue;
        }
        credentials.forget();
        const deleted = create(NamespaceDeletedSchema, {
          namespace: namespaceToProto(e.namespace),
          memoriesDeleted: BigInt(e.memories),
          tracesDeleted: BigInt(e.traces),
          apiKeysDeleted: BigInt(e.apiKeys),
        });
        yield create(DeleteNamespaceResponseSchema, { event: { case: "deleted", value: deleted } });
      }
    },

    async setRetentionPolicy(req) {
      const policy = await retention.set(req.namespace, retentionFromProto(req.policy));
      return create(SetRetentionPolicyResponseSchema, { policy: retentionToProto(policy) });
    },

    async getRetentionPolicy(req) {
      const r = await retention.get(req.namespace);
      return create(GetRetentionPolicyResponseSchema, { policy: retentionToProto(r.policy), isDefault: r.isDefault, updateTime: r.updateTime && timestampFromDate(r.updateTime) });
    },

    async createApiKey(req, context) {
      const { key, secret } = await apiKeys.create({
        displayName: req.displayName,
        role: roleFromProto(req.role),
        namespace: req.namespace,
        expiresAfterMs: durationToMs(req.expiresAfter, "expires_after"),
        createdBy: caller(context),
      });
      return create(CreateApiKeyResponseSchema, { apiKey: apiKeyToProto(key), secret });
    },

    async listApiKeys(req) {
      const page = await apiKeys.list(req);
      return create(ListApiKeysResponseSchema, { apiKeys: page.keys.map(apiKeyToProto), nextPageToken: page.nextPageToken });
    },

    async revokeApiKey(req) {
      const key = await apiKeys.revoke(req.id, req.namespace);
      credentials.forget(key.uuid);
      return create(RevokeApiKeyResponseSchema, { apiKey: apiKeyToProto(key) });
    },

    async *forgetSubject(req, context) {
      const input = { namespace: req.namespace, subject: subjectFromProto(req), batchSize: req.batchSize, actor: caller(context) };
      for await (const e of operations.forgetSubject(input, context.signal)) yield erasureEventToProto(e);
    },

    async listAuditEvents(req) {
      const page = await audit.list(req);
      return create(ListAuditEventsResponseSchema, { events: page.events.map(auditEventToProto), nextPageToken: page.nextPageToken });
    },
  };
}
