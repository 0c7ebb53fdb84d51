/**
 * Protobuf <-> domain conversions for ForgetSubject (and erasures as OperationService shows them).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  ErasureCountsSchema,
  ErasureProgressSchema,
  ErasureStep as ProtoStep,
  ForgetSubjectResponseSchema,
  SubjectKind as ProtoSubjectKind,
  type ErasureCounts as ProtoCounts,
  type ErasureProgress,
  type ForgetSubjectRequest,
  type ForgetSubjectResponse,
} from "../../gen/sessiond/v1/admin_service_pb.js";
import type { ErasureBatch, ErasureCounts, ErasureEvent, ErasureInput, ErasureStep, SubjectKind } from "../domain/erasure.js";
import { deletedCountsToProto } from "./session-mapper.js";

const KINDS: Record<SubjectKind, ProtoSubjectKind> = { user: ProtoSubjectKind.USER, participant: ProtoSubjectKind.PARTICIPANT };
const STEPS: Record<ErasureStep, ProtoStep> = {
  sessions: ProtoStep.SESSIONS,
  memories: ProtoStep.MEMORIES,
  participants: ProtoStep.PARTICIPANTS,
  changes: ProtoStep.CHANGES,
  operations: ProtoStep.OPERATIONS,
};

/** The request's oneof subject -> the domain's (undefined when unset). */
export function subjectFromProto(req: ForgetSubjectRequest): ErasureInput["subject"] {
  const s = req.subject;
  if (s.case === "user") return { kind: "user", id: s.value };
  if (s.case === "participantId") return { kind: "participant", id: s.value };
  return undefined;
}

/** An erasure's counts -> proto. */
export function erasureCountsToProto(c: ErasureCounts): ProtoCounts {
  return create(ErasureCountsSchema, {
    sessionsDeleted: BigInt(c.sessionsDeleted),
    deleted: deletedCountsToProto(c.deleted),
    memoriesDeleted: BigInt(c.memoriesDeleted),
    memoriesRedacted: BigInt(c.memoriesRedacted),
    participantsRedacted: BigInt(c.participantsRedacted),
    turnsRedacted: BigInt(c.turnsRedacted),
    insightsCleared: BigInt(c.insightsCleared),
    summariesRedacted: BigInt(c.summariesRedacted),
    changesRedacted: BigInt(c.changesRedacted),
    operationsRedacted: BigInt(c.operationsRedacted ?? 0),
  });
}

/** One committed step -> proto. */
export function erasureProgressToProto(b: ErasureBatch): ErasureProgress {
  return create(ErasureProgressSchema, { step: STEPS[b.step], counts: erasureCountsToProto(b.counts) });
}

/** One domain event -> one stream message. */
export function erasureEventToProto(e: ErasureEvent): ForgetSubjectResponse {
  switch (e.type) {
    case "started":
      return create(ForgetSubjectResponseSchema, {
        event: { case: "started", value: { operationId: e.operationId, namespace: e.namespace, subjectKind: KINDS[e.subjectKind], subjectSha256: e.subjectSha256 } },
      });
    case "progress":
      return create(ForgetSubjectResponseSchema, { event: { case: "progress", value: erasureProgressToProto(e) } });
    case "summary":
      return create(ForgetSubjectResponseSchema, { event: { case: "summary", value: { counts: erasureCountsToProto(e.counts), elapsed: durationFromMs(Math.round(e.elapsedMs)) } } });
  }
}
