/**
 * SessionService handlers: protobuf in, one domain call, protobuf out. Errors are mapped by
 * errorInterceptor (handlers/errors.ts).
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { SessionService as Sessions } from "../domain/sessions.js";
import {
  CancelSessionResponseSchema,
  CreateSessionResponseSchema,
  DeleteSessionResponseSchema,
  GetSessionResponseSchema,
  ListSessionsResponseSchema,
  SessionService,
  SoftDeleteSessionResponseSchema,
  TruncateSessionResponseSchema,
  UndeleteSessionResponseSchema,
  UpdateSessionResponseSchema,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { SortOrder } from "../../gen/sessiond/v1/session_pb.js";
import { bulkEventToProto, selectorFromProto } from "./bulk-delete-mapper.js";
import { dataFromProto, deletedCountsToProto, durationToMs, filterFromProto, sessionToProto } from "./session-mapper.js";

/** Builds the SessionService implementation over the domain service. */
export function createSessionHandlers(sessions: Sessions): ServiceImpl<typeof SessionService> {
  return {
    async createSession(req) {
      const session = await sessions.create({
        namespace: req.namespace,
        sessionId: req.sessionId,
        user: req.user,
        workflow: { id: req.workflow?.id ?? "", version: req.workflow?.version ?? "" },
        data: dataFromProto(req.data),
        labels: req.labels,
        expiresAfterMs: durationToMs(req.expiresAfter, "expires_after"),
        maxRequestsPerMinute: req.maxRequestsPerMinute,
      });
      return create(CreateSessionResponseSchema, { session: sessionToProto(session) });
    },

    async getSession(req) {
      const session = await sessions.get(req, req.showDeleted);
      return create(GetSessionResponseSchema, { session: sessionToProto(session) });
    },

    async listSessions(req) {
      const page = await sessions.list({
        namespace: req.namespace,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        filter: filterFromProto(req.filter),
        showDeleted: req.showDeleted,
        ascending: req.order === SortOrder.ASCENDING,
      });
      return create(ListSessionsResponseSchema, { sessions: page.sessions.map(sessionToProto), nextPageToken: page.nextPageToken });
    },

    async updateSession(req) {
      const s = req.session;
      const session = await sessions.update({
        address: { id: s?.id ?? "", namespace: s?.namespace ?? "", sessionId: s?.sessionId ?? "" },
        paths: req.updateMask?.paths ?? [],
        values: {
          data: dataFromProto(s?.data),
          labels: s?.labels ?? {},
          user: s?.user ?? "",
          workflow: { id: s?.workflow?.id ?? "", version: s?.workflow?.version ?? "" },
        },
        etag: s?.etag ?? "",
      });
      return create(UpdateSessionResponseSchema, { session: sessionToProto(session) });
    },

    async deleteSession(req) {
      const { session, deleted } = await sessions.delete(req, req.etag);
      return create(DeleteSessionResponseSchema, { id: session.id, sessionId: session.sessionId, deleted: deletedCountsToProto(deleted) });
    },

    async softDeleteSession(req) {
      return create(SoftDeleteSessionResponseSchema, { session: sessionToProto(await sessions.softDelete(req)) });
    },

    async undeleteSession(req) {
      return create(UndeleteSessionResponseSchema, { session: sessionToProto(await sessions.undelete(req)) });
    },

    async truncateSession(req) {
      const { session, turnsDeleted } = await sessions.truncate(req);
      return create(TruncateSessionResponseSchema, { session: sessionToProto(session), turnsDeleted });
    },

    async cancelSession(req) {
      return create(CancelSessionResponseSchema, { session: sessionToProto(await sessions.cancel(req)) });
    },

    async *bulkDeleteSessions(req, context) {
      const events = sessions.bulkDelete(
        { namespace: req.namespace, selector: selectorFromProto(req), dryRun: req.dryRun, purgeMemories: req.purgeMemories, batchSize: req.batchSize },
        context.signal,
      );
      for await (const event of events) yield bulkEventToProto(event);
    },
  };
}
