/**
 * Factories for the unit tests: domain values with plausible defaults, overridden per test, and a
 * helper that catches the InvalidInputError a check throws.
 */
import { expect } from "vitest";
import type { ApiKey } from "../../../src/domain/access.js";
import type { AuditEvent } from "../../../src/domain/audit-log.js";
import type { Participant, Turn } from "../../../src/domain/conversation-model.js";
import { InvalidInputError } from "../../../src/domain/errors.js";
import { encodeGlobalId, encodeSessionId, newUuid } from "../../../src/domain/ids.js";
import type { Memory } from "../../../src/domain/memory-service.js";
import type { Session } from "../../../src/domain/session-model.js";
import type { Annotation, Span, Trace } from "../../../src/domain/trace-model.js";

/** A fixed instant with a sub-second part (ms precision survives protobuf Timestamps). */
export const T0 = new Date("2026-11-03T10:20:30.456Z");

/** `T0` plus `ms`. */
export const at = (ms: number) => new Date(T0.getTime() + ms);

/** A stored session. */
export function session(over: Partial<Session> = {}): Session {
  const uuid = over.uuid ?? newUuid();
  const namespaceId = over.namespaceId ?? newUuid();
  return {
    uuid,
    id: encodeSessionId(namespaceId, uuid),
    sessionId: "chat-1",
    namespace: "default",
    namespaceId,
    user: "alice@example.com",
    workflow: { id: "support", version: "3" },
    data: { topic: "billing", n: 2.5, ok: true, tags: ["a", "b"], nested: { none: null } },
    labels: { team: "core", tier: "gold" },
    state: "active",
    createTime: T0,
    updateTime: at(1_000),
    lastActivityTime: at(2_000),
    deleteTime: null,
    expireTime: at(600_000),
    etag: '"v1"',
    stats: { participantCount: 2, turnCount: 7, traceCount: 1, spanCount: 4, memoriesExtracted: 3, integrationCount: 1 },
    maxRequestsPerMinute: 10,
    ...over,
  };
}

/** A bound participant. */
export function participant(over: Partial<Participant> = {}): Participant {
  return { participantId: "agent-1", kind: "agent", displayName: "Helper", metadata: { model: "m1" }, insights: ["likes tea"], lastIntegratedSeq: 4, bindTime: T0, leaveTime: null, ...over };
}

/** A stored turn. */
export function turn(over: Partial<Turn> = {}): Turn {
  return {
    seq: 1,
    participantId: "user-1",
    role: "user",
    content: "hello",
    toolCalls: [{ id: "call-1", name: "search", arguments: { q: "tea", limit: 3 } }],
    metadata: { lang: "en" },
    requestId: "req-1",
    createTime: T0,
    ...over,
  };
}

/** A stored span. */
export function span(over: Partial<Span> = {}): Span {
  return {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    parentSpanId: "",
    name: "llm.call",
    kind: 3,
    startTime: T0,
    endTime: at(250),
    statusCode: 1,
    statusMessage: "",
    attributes: { "gen_ai.system": "openai", tokens: 12 },
    events: [{ name: "retry", time: at(100), attributes: { attempt: 1 } }],
    ...over,
  };
}

/** A listed trace. */
export function trace(over: Partial<Trace> = {}): Trace {
  return { uuid: newUuid(), namespaceId: newUuid(), traceId: "0af7651916cd43dd8448eb211c80319c", sessionUuid: newUuid(), rootSpanName: "agent.run", spanCount: 4, startTime: T0, endTime: at(1_500), statusCode: 2, ...over };
}

/** A stored annotation (on a session unless told otherwise). */
export function annotation(over: Partial<Annotation> = {}): Annotation {
  return {
    uuid: newUuid(),
    target: { kind: "session", namespaceId: newUuid(), sessionUuid: newUuid() },
    name: "quality",
    annotatorKind: "llm",
    label: "good",
    score: 0.75,
    explanation: "answered the question",
    metadata: { judge: "j1" },
    identifier: "judge-1",
    createTime: T0,
    updateTime: at(5),
    ...over,
  };
}

/** A stored memory. */
export function memory(over: Partial<Memory> = {}): Memory {
  return {
    id: encodeGlobalId("Memory", newUuid()),
    namespace: "default",
    sourceSession: encodeSessionId(newUuid(), newUuid()),
    subjectParticipantId: "user-1",
    subjectUser: "alice@example.com",
    content: "prefers tea",
    metadata: { rule: "preference", seq: 3 },
    integratedBy: "rules",
    createTime: T0,
    ...over,
  };
}

/** An API key without its secret. */
export function apiKey(over: Partial<ApiKey> = {}): ApiKey {
  return { uuid: newUuid(), namespaceId: null, namespace: null, displayName: "ci", role: "writer", secretPrefix: "sk_AbCdEfGh", createdBy: "admin", createTime: T0, expireTime: null, revokeTime: null, ...over };
}

/** A recorded audit event. */
export function auditEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  return { uuid: newUuid(), time: T0, namespaceId: null, namespace: "default", actor: encodeGlobalId("ApiKey", newUuid()), method: "sessiond.v1.SessionService/BulkDeleteSessions", itemCount: 12, code: "ok", requestId: "req-9", ...over };
}

/**
 * Runs `fn`, which must throw an InvalidInputError, and returns it (to check its field and reason).
 * Anything else thrown, or nothing, fails the test.
 */
export function invalidInput(fn: () => unknown): InvalidInputError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, "expected an InvalidInputError").toBeInstanceOf(InvalidInputError);
  return thrown as InvalidInputError;
}
