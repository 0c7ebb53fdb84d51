import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { IntegrationOutcome, NewParticipantSchema, NewTurnSchema, ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorConfigSchema, IntegratorKind } from "../../gen/sessiond/v1/memory_pb.js";
import type { ParticipantKind as DomainKind } from "../../src/domain/conversation-model.js";
import type { IntegrationResult } from "../../src/domain/integration-service.js";
import {
  appendedTurnsToProto,
  integrationResultToProto,
  integratorConfigFromProto,
  integratorConfigToProto,
  kindFromProto,
  kindToProto,
  memoryToProto,
  newParticipantFromProto,
  newTurnFromProto,
  participantToProto,
  turnToProto,
} from "../../src/handlers/conversation-mapper.js";
import { at, invalidInput, memory, participant, T0, turn } from "./support/factories.js";

const KINDS: [DomainKind, ParticipantKind][] = [
  ["user", ParticipantKind.USER],
  ["agent", ParticipantKind.AGENT],
  ["system", ParticipantKind.SYSTEM],
  ["tool", ParticipantKind.TOOL],
];

describe("participant kinds", () => {
  it.each(KINDS)("map %s to its enum value and back", (kind, proto) => {
    expect(kindToProto(kind)).toBe(proto);
    expect(kindFromProto(proto)).toBe(kind);
  });

  it("read UNSPECIFIED as unset", () => {
    expect(kindFromProto(ParticipantKind.UNSPECIFIED)).toBeUndefined();
  });

  it("reject an unknown number, naming the field", () => {
    expect(invalidInput(() => kindFromProto(42 as ParticipantKind))).toMatchObject({ field: "kind", reason: "unknown kind 42" });
    expect(invalidInput(() => kindFromProto(42 as ParticipantKind, "participant.kind")).field).toBe("participant.kind");
  });
});

describe("participantToProto", () => {
  it("maps every field, with seq as a bigint and times as Timestamps", () => {
    const p = participantToProto(participant({ leaveTime: at(9_000) }));
    expect(p).toMatchObject({ participantId: "agent-1", kind: ParticipantKind.AGENT, displayName: "Helper", metadata: { model: "m1" }, insights: ["likes tea"], lastIntegratedSeq: 4n });
    expect(timestampDate(p.bindTime!)).toEqual(T0);
    expect(timestampDate(p.leaveTime!)).toEqual(at(9_000));
  });

  it("leaves leave_time unset for a participant still bound", () => {
    expect(participantToProto(participant()).leaveTime).toBeUndefined();
  });
});

describe("newParticipantFromProto", () => {
  it("maps every field, with unset metadata as an empty object", () => {
    const sent = create(NewParticipantSchema, { participantId: "bot", kind: ParticipantKind.AGENT, displayName: "Bot", metadata: { model: "m" } });
    expect(newParticipantFromProto(sent, 0)).toEqual({ participantId: "bot", kind: "agent", displayName: "Bot", metadata: { model: "m" } });
    expect(newParticipantFromProto(create(NewParticipantSchema, { participantId: "u" }), 3)).toEqual({ participantId: "u", kind: undefined, displayName: "", metadata: {} });
  });

  it("rejects an unknown kind, naming the participant", () => {
    expect(invalidInput(() => newParticipantFromProto(create(NewParticipantSchema, { participantId: "x", kind: 42 as ParticipantKind }), 2))).toMatchObject({ field: "participants[2].kind", reason: "unknown kind 42" });
  });
});

describe("turns", () => {
  it("appendedTurnsToProto maps seq, role and each turn's own time", () => {
    const later = new Date(T0.getTime() + 1500);
    const ps = appendedTurnsToProto([
      { seq: 7, role: "assistant", createTime: T0 },
      { seq: 8, role: "user", createTime: new Date(T0) },
      { seq: 9, role: "tool", createTime: later },
    ]);
    expect(ps.map((p) => ({ seq: p.seq, role: p.role, time: timestampDate(p.createTime!) }))).toEqual([
      { seq: 7n, role: "assistant", time: T0 },
      { seq: 8n, role: "user", time: T0 },
      { seq: 9n, role: "tool", time: later },
    ]);
    expect(ps.every((p) => p.$typeName === "sessiond.v1.AppendedTurn")).toBe(true);
  });

  it("turnToProto maps every field, tool calls included", () => {
    const t = turn({ seq: 12 });
    const p = turnToProto(t);
    expect(p).toMatchObject({ seq: 12n, participantId: "user-1", role: "user", content: "hello", metadata: { lang: "en" }, requestId: "req-1" });
    expect(p.toolCalls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args }))).toEqual(t.toolCalls);
    expect(timestampDate(p.createTime!)).toEqual(T0);
  });

  it("round-trip through NewTurn: what a client sends back is what was stored", () => {
    const t = turn();
    const sent = create(NewTurnSchema, { participantId: t.participantId, role: t.role, content: t.content, toolCalls: t.toolCalls, metadata: t.metadata });
    expect(newTurnFromProto(sent)).toEqual({ participantId: t.participantId, role: t.role, content: t.content, toolCalls: t.toolCalls, metadata: t.metadata });
  });

  it("newTurnFromProto gives empty objects for unset metadata and tool-call arguments", () => {
    const sent = create(NewTurnSchema, { participantId: "p", content: "x", toolCalls: [{ id: "c", name: "n" }] });
    expect(newTurnFromProto(sent)).toEqual({ participantId: "p", role: "", content: "x", toolCalls: [{ id: "c", name: "n", arguments: {} }], metadata: {} });
  });
});

describe("integration results and memories", () => {
  it.each([
    ["integrated", IntegrationOutcome.INTEGRATED],
    ["nothing_new", IntegrationOutcome.NOTHING_NEW],
    ["failed", IntegrationOutcome.FAILED],
  ] as [IntegrationResult["outcome"], IntegrationOutcome][])("map the outcome %s with every count", (outcome, proto) => {
    const r: IntegrationResult = { participantId: "agent-1", outcome, turnsIntegrated: 5, insightsAdded: 2, memoriesCreated: 1, memoryIds: ["m"], lastIntegratedSeq: 9, error: outcome === "failed" ? "timeout" : "" };
    const { memoryIds: _, ...counts } = r;
    expect(integrationResultToProto(r)).toMatchObject({ ...counts, outcome: proto, lastIntegratedSeq: 9n });
  });

  it("memoryToProto maps every field", () => {
    const m = memory();
    const p = memoryToProto(m);
    expect(p).toMatchObject({ id: m.id, namespace: "default", sourceSession: m.sourceSession, subjectParticipantId: "user-1", subjectUser: "alice@example.com", content: "prefers tea", metadata: m.metadata, integratedBy: "rules" });
    expect(timestampDate(p.createTime!)).toEqual(T0);
  });

  it("memoryToProto keeps an empty source for a memory whose session was deleted", () => {
    expect(memoryToProto(memory({ sourceSession: "" })).sourceSession).toBe("");
  });
});

describe("integrator configurations", () => {
  it("round-trip a remote configuration", () => {
    const domain = { kind: "remote" as const, url: "http://127.0.0.1:9000", timeoutMs: 2_500 };
    expect(integratorConfigFromProto(integratorConfigToProto(domain))).toEqual(domain);
  });

  it("round-trip the rules configuration", () => {
    const domain = { kind: "rules" as const, url: "", timeoutMs: 10_000 };
    expect(integratorConfigFromProto(integratorConfigToProto(domain))).toEqual(domain);
  });

  it("read an UNSPECIFIED kind as rules and an unset timeout as undefined (the domain picks the default)", () => {
    expect(integratorConfigFromProto(create(IntegratorConfigSchema, {}))).toEqual({ kind: "rules", url: "", timeoutMs: undefined });
  });

  it("reject a missing configuration, an unknown kind and a negative timeout, naming the field", () => {
    expect(invalidInput(() => integratorConfigFromProto(undefined))).toMatchObject({ field: "config", reason: "is required" });
    expect(invalidInput(() => integratorConfigFromProto(create(IntegratorConfigSchema, { kind: 7 as IntegratorKind })))).toMatchObject({ field: "config.kind", reason: "unknown kind 7" });
    const negative = create(IntegratorConfigSchema, { kind: IntegratorKind.REMOTE, timeout: { seconds: -1n, nanos: 0 } });
    expect(invalidInput(() => integratorConfigFromProto(negative)).field).toBe("config.timeout");
  });

  it("write the timeout as a Duration", () => {
    expect(integratorConfigToProto({ kind: "remote", url: "u", timeoutMs: 1_500 }).timeout).toEqual(durationFromMs(1_500));
  });
});
