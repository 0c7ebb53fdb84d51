/**
 * Protobuf <-> domain conversions for participants, turns, integration results, memories and
 * integrator configurations.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  AppendedTurn as DomainAppendedTurn,
  Compaction as DomainCompaction,
  NewParticipant as DomainNewParticipant,
  Participant as DomainParticipant,
  ParticipantKind as DomainKind,
  NewTurn as DomainNewTurn,
  Turn as DomainTurn,
} from "../domain/conversation-model.js";
import { InvalidInputError } from "../domain/errors.js";
import { encodeGlobalId } from "../domain/ids.js";
import type { IntegrationResult as DomainResult } from "../domain/integration-service.js";
import type { IntegratorConfig as DomainConfig } from "../domain/integrator-contract.js";
import type { Memory as DomainMemory } from "../domain/memory-service.js";
import {
  CompactionSchema,
  IntegrationOutcome,
  IntegrationResultSchema,
  ParticipantKind,
  ParticipantSchema,
  ToolCallSchema,
  TurnSchema,
  type Compaction,
  type IntegrationResult,
  type NewParticipant,
  type NewTurn,
  type Participant,
  type Turn,
} from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorConfigSchema, IntegratorKind, MemorySchema, type IntegratorConfig, type Memory } from "../../gen/sessiond/v1/memory_pb.js";
import { AppendedTurnSchema, type AppendedTurn } from "../../gen/sessiond/v1/session_service_pb.js";
import { durationToMs } from "./session-mapper.js";

const KIND_TO_PROTO: Record<DomainKind, ParticipantKind> = {
  user: ParticipantKind.USER,
  agent: ParticipantKind.AGENT,
  system: ParticipantKind.SYSTEM,
  tool: ParticipantKind.TOOL,
};

/** Domain kind -> protobuf ParticipantKind. */
export function kindToProto(kind: DomainKind): ParticipantKind {
  return KIND_TO_PROTO[kind];
}

/** protobuf ParticipantKind -> domain kind; undefined when unset. @throws InvalidInputError on unknown values */
export function kindFromProto(kind: ParticipantKind, field = "kind"): DomainKind | undefined {
  if (kind === ParticipantKind.UNSPECIFIED) return undefined;
  const found = (Object.keys(KIND_TO_PROTO) as DomainKind[]).find((k) => KIND_TO_PROTO[k] === kind);
  if (!found) throw new InvalidInputError(field, `unknown kind ${kind}`);
  return found;
}

/** Domain participant -> protobuf Participant. */
export function participantToProto(p: DomainParticipant): Participant {
  return create(ParticipantSchema, {
    participantId: p.participantId,
    kind: KIND_TO_PROTO[p.kind],
    displayName: p.displayName,
    metadata: p.metadata,
    insights: p.insights,
    lastIntegratedSeq: BigInt(p.lastIntegratedSeq),
    bindTime: timestampFromDate(p.bindTime),
    leaveTime: p.leaveTime ? timestampFromDate(p.leaveTime) : undefined,
  });
}

/** protobuf NewParticipant (one of CreateSession's, at `index`) -> domain; errors name it, e.g. participants[1].kind. */
export function newParticipantFromProto(p: NewParticipant, index: number): DomainNewParticipant {
  return { participantId: p.participantId, kind: kindFromProto(p.kind, `participants[${index}].kind`), displayName: p.displayName, metadata: p.metadata ?? {} };
}

/**
 * Domain appended turns -> protobuf AppendedTurns. The turns of one call share their create time: one
 * Timestamp message serves them all (messages are plain data, encoded as often as they are referenced).
 */
export function appendedTurnsToProto(turns: DomainAppendedTurn[]): AppendedTurn[] {
  let time: Date | undefined;
  let stamp: Timestamp | undefined;
  return turns.map((t) => {
    if (t.createTime.getTime() !== time?.getTime()) {
      time = t.createTime;
      stamp = timestampFromDate(time);
    }
    const m = create(AppendedTurnSchema);
    m.seq = BigInt(t.seq);
    m.role = t.role;
    m.createTime = stamp;
    return m;
  });
}

/** protobuf NewTurn -> domain (unset messages become empty values). */
export function newTurnFromProto(t: NewTurn): DomainNewTurn {
  return {
    participantId: t.participantId,
    role: t.role,
    content: t.content,
    toolCalls: t.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments ?? {} })),
    metadata: t.metadata ?? {},
  };
}

/** Domain turn -> protobuf Turn. */
export function turnToProto(t: DomainTurn): Turn {
  return create(TurnSchema, {
    seq: BigInt(t.seq),
    participantId: t.participantId,
    role: t.role,
    content: t.content,
    toolCalls: t.toolCalls.map((c) => create(ToolCallSchema, c)),
    metadata: t.metadata,
    requestId: t.requestId,
    createTime: timestampFromDate(t.createTime),
    compaction: t.compaction && compactionToProto(t.compaction),
    archived: t.archived ?? false,
  });
}

/** Domain compaction -> protobuf. */
export function compactionToProto(c: DomainCompaction): Compaction {
  return create(CompactionSchema, {
    firstSeq: BigInt(c.firstSeq),
    upToSeq: BigInt(c.upToSeq),
    turnsArchived: c.turnsArchived,
    summary: c.summary,
    summarizer: c.summarizer,
    memoryIds: c.memoryIds.map((uuid) => encodeGlobalId("Memory", uuid)),
    createTime: timestampFromDate(c.createTime),
  });
}

const OUTCOME: Record<DomainResult["outcome"], IntegrationOutcome> = {
  integrated: IntegrationOutcome.INTEGRATED,
  nothing_new: IntegrationOutcome.NOTHING_NEW,
  failed: IntegrationOutcome.FAILED,
};

/** Domain integration result -> protobuf. */
export function integrationResultToProto(r: DomainResult): IntegrationResult {
  return create(IntegrationResultSchema, { ...r, outcome: OUTCOME[r.outcome], lastIntegratedSeq: BigInt(r.lastIntegratedSeq) });
}

/** Domain memory -> protobuf Memory. */
export function memoryToProto(m: DomainMemory): Memory {
  return create(MemorySchema, { ...m, metadata: m.metadata as Memory["metadata"], createTime: timestampFromDate(m.createTime) });
}

/** protobuf IntegratorConfig -> domain input (validated by the domain). */
export function integratorConfigFromProto(c: IntegratorConfig | undefined): { kind: "rules" | "remote"; url: string; timeoutMs: number | undefined } {
  if (!c) throw new InvalidInputError("config", "is required");
  let kind: "rules" | "remote";
  switch (c.kind) {
    case IntegratorKind.UNSPECIFIED:
    case IntegratorKind.RULES:
      kind = "rules";
      break;
    case IntegratorKind.REMOTE:
      kind = "remote";
      break;
    default:
      throw new InvalidInputError("config.kind", `unknown kind ${c.kind}`);
  }
  return { kind, url: c.url, timeoutMs: durationToMs(c.timeout, "config.timeout") };
}

/** Domain integrator configuration -> protobuf. */
export function integratorConfigToProto(c: DomainConfig): IntegratorConfig {
  return create(IntegratorConfigSchema, {
    kind: c.kind === "remote" ? IntegratorKind.REMOTE : IntegratorKind.RULES,
    url: c.url,
    timeout: durationFromMs(c.timeoutMs),
  });
}
