/**
 * SessionService handlers: protobuf in, one domain call, protobuf out. Errors are mapped by
 * errorInterceptor (handlers/errors.ts).
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { summaryTurn } from "../domain/conversation-model.js";
import type { IncomingRecord } from "../domain/session-export.js";
import type { Services } from "../domain/services.js";
import {
  AppendTurnsResponseSchema,
  BindParticipantResponseSchema,
  CancelSessionResponseSchema,
  CreateSessionResponseSchema,
  DeleteSessionResponseSchema,
  GetSessionResponseSchema,
  IntegrateSessionResponseSchema,
  CompactSessionResponseSchema,
  ListParticipantsResponseSchema,
  ListSessionsResponseSchema,
  ListTurnsResponseSchema,
  RefreshClientSecretResponseSchema,
  SearchTurnsResponseSchema,
  SessionService,
  SoftDeleteSessionResponseSchema,
  TruncateSessionResponseSchema,
  UnbindParticipantResponseSchema,
  UndeleteSessionResponseSchema,
  UpdateSessionResponseSchema,
} from "../../gen/sessiond/v1/session_service_pb.js";
import { SortOrder } from "../../gen/sessiond/v1/session_pb.js";
import { actorOf, principalKey, recheckKey } from "./auth.js";
import { bulkEventToProto, selectorFromProto } from "./bulk-delete-mapper.js";
import { appendedTurnsToProto, compactionToProto, integrationResultToProto, kindFromProto, newParticipantFromProto, newTurnFromProto, participantToProto, turnToProto } from "./conversation-mapper.js";
import { clientSecretToProto, dataFromProto, deletedCountsToProto, durationToMs, filterFromProto, sessionToProto, statsToProto, timeFromProto } from "./session-mapper.js";
import { exportEventToProto, importHeaderFromProto, importSummaryToProto, recordFromProto } from "./export-mapper.js";
import { turnHitToProto } from "./search-mapper.js";
import { feedEventToProto, kindsFromProto, sessionEventToProto } from "./watch-mapper.js";

/** Builds the SessionService implementation over the domain services. */
export function createSessionHandlers(services: Pick<Services, "sessions" | "conversations" | "integration" | "compaction" | "watches" | "exports" | "search">): ServiceImpl<typeof SessionService> {
  const { sessions, conversations, integration, compaction, watches, exports, search } = services;
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
        participants: req.participants.map(newParticipantFromProto),
      });
      return create(CreateSessionResponseSchema, {
        session: sessionToProto(session),
        clientSecret: clientSecretToProto(session.clientSecret),
        participants: session.participants.map(participantToProto),
      });
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
      const { id, sessionId, namespace, deleted } = await sessions.delete(req, req.etag);
      return create(DeleteSessionResponseSchema, { id, sessionId, namespace, deleted: deletedCountsToProto(deleted) });
    },

    async softDeleteSession(req) {
      return create(SoftDeleteSessionResponseSchema, { session: sessionToProto(await sessions.softDelete(req)) });
    },

    async undeleteSession(req) {
      return create(UndeleteSessionResponseSchema, { session: sessionToProto(await sessions.undelete(req)) });
    },

    async truncateSession(req) {
      const { session, ...counts } = await sessions.truncate(req);
      return create(TruncateSessionResponseSchema, { session: sessionToProto(session), ...counts });
    },

    async cancelSession(req) {
      return create(CancelSessionResponseSchema, { session: sessionToProto(await sessions.cancel(req)) });
    },

    async refreshClientSecret(req) {
      const { session, clientSecret } = await sessions.refreshClientSecret(req, durationToMs(req.expiresAfter, "expires_after"));
      return create(RefreshClientSecretResponseSchema, { session: sessionToProto(session), clientSecret: clientSecretToProto(clientSecret) });
    },

    async *bulkDeleteSessions(req, context) {
      const events = sessions.bulkDelete(
        {
          namespace: req.namespace,
          selector: selectorFromProto(req),
          dryRun: req.dryRun,
          purgeMemories: req.purgeMemories,
          batchSize: req.batchSize,
          detach: req.detach,
          actor: actorOf(context.values.get(principalKey)),
        },
        context.signal,
      );
      for await (const event of events) yield bulkEventToProto(event);
    },

    async *watchSession(req, context) {
      const events = watches.watchSession(
        {
          address: req,
          afterSeq: safeNumber(req.afterSeq),
          afterChange: safeNumber(req.afterChange),
          limited: context.values.get(principalKey)?.kind === "client",
          recheck: context.values.get(recheckKey),
        },
        context.signal,
      );
      for await (const event of events) yield sessionEventToProto(event);
    },

    async *watchSessions(req, context) {
      const events = watches.watchSessions(
        { namespace: req.namespace, filter: filterFromProto(req.filter), after: req.after, kinds: kindsFromProto(req.kinds), recheck: context.values.get(recheckKey) },
        context.signal,
      );
      for await (const event of events) yield feedEventToProto(event);
    },

    async bindParticipant(req) {
      const { participant, created } = await conversations.bind({
        address: req,
        participantId: req.participantId,
        kind: kindFromProto(req.kind),
        displayName: req.displayName,
        metadata: dataFromProto(req.metadata),
      });
      return create(BindParticipantResponseSchema, { participant: participantToProto(participant), created });
    },

    async unbindParticipant(req) {
      return create(UnbindParticipantResponseSchema, { participant: participantToProto(await conversations.unbind(req, req.participantId)) });
    },

    async listParticipants(req) {
      return create(ListParticipantsResponseSchema, { participants: (await conversations.participants(req)).map(participantToProto) });
    },

    async appendTurns(req) {
      const { turns, replayed, stats, lastSeq } = await conversations.append(req, req.turns.map(newTurnFromProto), req.requestId);
      return create(AppendTurnsResponseSchema, { turns: appendedTurnsToProto(turns), replayed, stats: statsToProto(stats), lastSeq: BigInt(lastSeq) });
    },

    async listTurns(req) {
      const page = await conversations.listTurns({
        address: req,
        participantId: req.participantId,
        afterSeq: req.afterSeq > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(req.afterSeq),
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        newestFirst: req.newestFirst,
        includeArchived: req.includeArchived,
      });
      return create(ListTurnsResponseSchema, { turns: page.turns.map(turnToProto), nextPageToken: page.nextPageToken });
    },

    async integrateSession(req, context) {
      const { results, stats } = await integration.integrate(req, context.signal);
      return create(IntegrateSessionResponseSchema, { results: results.map(integrationResultToProto), stats: statsToProto(stats) });
    },
    async searchTurns(req) {
      const page = await search.search({
        namespace: req.namespace,
        query: req.query,
        labels: req.labels,
        participantId: req.participantId,
        role: req.role,
        createTimeAfter: timeFromProto(req.createTimeAfter, "create_time_after"),
        createTimeBefore: timeFromProto(req.createTimeBefore, "create_time_before"),
        includeArchived: req.includeArchived,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return create(SearchTurnsResponseSchema, { hits: page.hits.map(turnHitToProto), nextPageToken: page.nextPageToken });
    },
    async *exportSessions(req, context) {
      for await (const event of exports.exportSessions({ namespace: req.namespace, selector: selectorFromProto(req) }, context.signal)) yield exportEventToProto(event);
    },

    async importSessions(requests, context) {
      // The first message names the namespaces and the conflict mode; every message may hold a record.
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      const header = importHeaderFromProto(first.done ? undefined : first.value);
      async function* records(): AsyncGenerator<IncomingRecord> {
        for (let m = first; !m.done; m = await it.next()) {
          const record = m.value.record;
          if (record) yield { sessionId: record.session?.sessionId ?? "", read: () => recordFromProto(record) };
        }
      }
      return importSummaryToProto(await exports.importSessions(header, records(), context.signal));
    },

    async compactSession(req, context) {
      const r = await compaction.compact({ address: req, upToSeq: safeNumber(req.upToSeq), summary: req.summary }, context.signal);
      return create(CompactSessionResponseSchema, {
        session: sessionToProto(r.session),
        compaction: compactionToProto(r.compaction),
        summaryTurn: turnToProto(summaryTurn(r.compaction, false)),
        integration: r.integration.map(integrationResultToProto),
        alreadyCompacted: r.alreadyCompacted,
      });
    },
  };
}

/** An int64 position as a number: negative ones and ones past 2^53 are left to the domain's check (invalid_argument naming the field). */
function safeNumber(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}
