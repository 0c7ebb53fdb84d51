/**
 * Fixtures of the store contract suites (test/db/contracts): how a suite gets the stores under test,
 * and factories that build test data through the domain's store interfaces only (never SQL), so that
 * the same suites run unchanged against every implementation of the stores.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import type { AuditEvent } from "../../src/domain/audit-log.js";
import type { NewTurn, ParticipantKind } from "../../src/domain/conversation-model.js";
import { ROLE_OF_KIND } from "../../src/domain/conversation-model.js";
import { newUuid } from "../../src/domain/ids.js";
import type { ExtractedMemory } from "../../src/domain/integrator-contract.js";
import type { NewApiKey } from "../../src/domain/key-store.js";
import type { StoredSession } from "../../src/domain/session-model.js";
import type { NewSession } from "../../src/domain/session-store.js";
import type { Stores } from "../../src/domain/stores.js";
import type { AnnotationValues, ResolvedTarget } from "../../src/domain/trace-store.js";
import type { Span } from "../../src/domain/trace-model.js";

/** The stores of one implementation, over storage of their own that starts empty (migrated, no rows). */
export interface StoresUnderTest {
  stores: Stores;
  /** Releases the stores and their storage. */
  close(): Promise<void>;
}

/** Makes the stores under test; called once per contract suite. */
export type StoresFactory = () => Promise<StoresUnderTest>;

/** A contract suite: registers its tests for the implementation `name`. */
export type StoreContract = (name: string, makeStores: StoresFactory) => void;

/** Registers hooks that give the enclosing describe its own stores; read `.stores` inside tests. */
export function useStores(makeStores: StoresFactory): { readonly stores: Stores } {
  let made: StoresUnderTest | undefined;
  beforeAll(async () => {
    made = await makeStores();
  });
  afterAll(async () => {
    await made?.close();
  });
  return {
    get stores() {
      if (!made) throw new Error("stores are not ready: use them inside a test or hook");
      return made.stores;
    },
  };
}

/** A name no other test uses (valid as a namespace name). */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** A fresh namespace's id. */
export async function newNamespace(stores: Stores, prefix = "ns"): Promise<{ id: string; name: string }> {
  const name = unique(prefix);
  return { id: (await stores.sessions.namespaceId(name, true))!, name };
}

/** Values of a new session with defaults. */
export function sessionValues(namespaceId: string, over: Partial<NewSession> = {}): NewSession {
  return {
    uuid: newUuid(),
    namespaceId,
    externalId: unique("s"),
    user: "",
    workflowId: "",
    workflowVersion: "",
    data: {},
    labels: {},
    expiresAfterMs: 10 * 60 * 1000,
    maxRequestsPerMinute: 10,
    clientSecretHash: null,
    ...over,
  };
}

/** Inserts a session. */
export function insertSession(stores: Stores, namespaceId: string, over: Partial<NewSession> = {}): Promise<StoredSession> {
  return stores.sessions.insert(sessionValues(namespaceId, over));
}

/** Inserts `n` sessions one after the other (so in creation order). */
export async function insertSessions(stores: Stores, namespaceId: string, n: number, over: Partial<NewSession> = {}): Promise<StoredSession[]> {
  const out: StoredSession[] = [];
  for (let i = 0; i < n; i++) out.push(await insertSession(stores, namespaceId, over));
  return out;
}

/** Binds a participant the way the domain does: with the session row locked. */
export async function bind(stores: Stores, session: StoredSession, participantId: string, kind: ParticipantKind = "user", over: { displayName?: string; metadata?: Record<string, unknown> } = {}) {
  return stores.transaction(async (tx) => {
    await tx.sessions.find({ uuid: session.uuid, namespaceId: session.namespaceId }, true);
    return tx.conversations.bind({ namespaceId: session.namespaceId, sessionUuid: session.uuid, participantId, kind, displayName: over.displayName ?? participantId, metadata: over.metadata ?? {} });
  });
}

/** A turn to append. */
export function turn(participantId: string, content = unique("turn"), over: Partial<NewTurn> = {}): NewTurn {
  return { participantId, role: "", content, toolCalls: [], metadata: {}, ...over };
}

/** Appends turns to a session by uuid and returns their sequence numbers; throws unless appended. */
export async function appendTurns(stores: Stores, session: StoredSession, turns: NewTurn[], request?: { id: string; fingerprint: string }): Promise<number[]> {
  const outcome = await stores.conversations.append({ uuid: session.uuid, namespaceId: session.namespaceId }, turns, { defaultRoles: ROLE_OF_KIND, request });
  if (!outcome.ok) throw new Error(`append refused: ${outcome.reason}`);
  return outcome.turns.map((t) => t.seq);
}

/** A random OpenTelemetry trace id. */
export const traceId = () => randomBytes(16).toString("hex");
/** A random OpenTelemetry span id. */
export const spanId = () => randomBytes(8).toString("hex");

/** A checked span with defaults: a root span of 1 s starting at `start`. */
export function span(trace: string, over: Partial<Span> = {}): Span {
  const startTime = over.startTime ?? new Date("2030-01-01T00:00:00.000Z");
  return {
    traceId: trace,
    spanId: spanId(),
    parentSpanId: "",
    name: "root",
    kind: 1,
    startTime,
    endTime: new Date(startTime.getTime() + 1000),
    statusCode: 0,
    statusMessage: "",
    attributes: {},
    events: [],
    ...over,
  };
}

/** Records spans in a transaction, as the domain does. */
export function record(stores: Stores, namespaceId: string, sessionUuid: string | null, spans: Span[]) {
  return stores.transaction((tx) => tx.traces.record(namespaceId, sessionUuid, spans));
}

/** Values of an annotation. */
export function annotationValues(over: Partial<AnnotationValues> = {}): AnnotationValues {
  return { name: "quality", annotatorKind: "human", label: "good", score: 1, explanation: "", metadata: {}, identifier: "", ...over };
}

/** Annotates a trace (resolved in the same transaction, as the domain does). */
export function annotateTrace(stores: Stores, namespaceId: string, trace: string, over: Partial<AnnotationValues> = {}, span?: string) {
  return stores.transaction(async (tx) => {
    const target = await tx.traces.resolve(namespaceId, trace, span);
    if (!target) throw new Error(`no target ${trace}/${span}`);
    return tx.traces.annotate(namespaceId, target, annotationValues(over));
  });
}

/** The annotation target of a whole session, as the domain resolves it. */
export function sessionTarget(session: StoredSession): ResolvedTarget {
  return { kind: "session", sessionUuid: session.uuid, traceUuid: null, spanRowId: null, otelTraceId: null, otelSpanId: null, key: `session:${session.uuid}` };
}

/** A memory as an integrator returns it. */
export function memory(over: Partial<ExtractedMemory> = {}): ExtractedMemory {
  return { content: unique("memory"), subjectParticipantId: "", subjectUser: "", metadata: {}, ...over };
}

/**
 * Stores memories as an integration of `participantId` does: its mark moves from its current value to
 * the session's last turn (a turn is appended first when the participant has none past its mark).
 */
export async function integrate(stores: Stores, session: StoredSession, participantId: string, memories: ExtractedMemory[], insights: string[] = []): Promise<string[] | false> {
  const p = await stores.conversations.participant(session, participantId);
  if (!p) throw new Error(`participant ${participantId} is not bound`);
  const [toSeq] = await appendTurns(stores, session, [turn(participantId)]);
  return stores.transaction((tx) =>
    tx.memories.writeIntegration({ namespaceId: session.namespaceId, sessionUuid: session.uuid, participantId, fromSeq: p.lastIntegratedSeq, toSeq, insights, memories }),
  );
}

/** What a filled session holds. */
export interface Filled {
  participants: number;
  turns: number;
  traces: number;
  spans: number;
  annotations: number;
  memories: number;
  traceIds: string[];
}

/**
 * Fills a session through the stores: participants (the first a user, the rest agents) with turns,
 * traces with spans and one annotation each, and memories (extracted by the first participant).
 */
export async function fillSession(
  stores: Stores,
  session: StoredSession,
  shape: { participants: number; turnsPerParticipant: number; traces: number; spansPerTrace: number; memories: number },
): Promise<Filled> {
  for (let i = 1; i <= shape.participants; i++) await bind(stores, session, `p${i}`, i === 1 ? "user" : "agent");
  const turns: NewTurn[] = [];
  for (let i = 1; i <= shape.participants; i++) for (let j = 0; j < shape.turnsPerParticipant; j++) turns.push(turn(`p${i}`));
  if (turns.length) await appendTurns(stores, session, turns);
  const traceIds: string[] = [];
  for (let i = 0; i < shape.traces; i++) {
    const t = traceId();
    traceIds.push(t);
    const root = span(t);
    const spans = [root, ...Array.from({ length: shape.spansPerTrace - 1 }, () => span(t, { parentSpanId: root.spanId, name: "child" }))];
    await record(stores, session.namespaceId, session.uuid, spans);
    await annotateTrace(stores, session.namespaceId, t);
  }
  let extraTurns = 0;
  if (shape.memories) {
    await integrate(stores, session, "p1", Array.from({ length: shape.memories }, () => memory({ subjectParticipantId: "p1" })));
    extraTurns = 1;
  }
  return {
    participants: shape.participants,
    turns: turns.length + extraTurns,
    traces: shape.traces,
    spans: shape.traces * shape.spansPerTrace,
    annotations: shape.traces,
    memories: shape.memories,
    traceIds,
  };
}

/** A new API key's values. */
export function keyValues(namespaceId: string | null, over: Partial<NewApiKey> = {}): NewApiKey {
  const uuid = newUuid();
  return {
    uuid,
    namespaceId,
    displayName: unique("key"),
    role: "writer",
    secretHash: randomBytes(32),
    secretPrefix: `sk_${uuid.slice(0, 8)}`,
    createdBy: "contract-test",
    expiresAfterMs: null,
    ...over,
  };
}

/** An audit event. */
export function auditEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  return { uuid: newUuid(), time: new Date(), namespaceId: null, namespace: "", actor: "actor", method: "sessiond.v1.SessionService/CreateSession", itemCount: 1, code: "ok", requestId: unique("req"), ...over };
}

/** Every page of a keyset list, read `limit` at a time until a short page. */
export async function allPages<T>(limit: number, page: (after: T | undefined) => Promise<T[]>): Promise<T[][]> {
  const pages: T[][] = [];
  let after: T | undefined;
  for (;;) {
    const rows = await page(after);
    pages.push(rows);
    if (rows.length < limit) return pages;
    after = rows[rows.length - 1];
  }
}

/** Uuids of rows. */
export const uuids = (rows: { uuid: string }[]) => rows.map((r) => r.uuid);
