/**
 * IntegrateSession: for every participant that has not left, feed the turns after its mark to the
 * namespace's integrator, in chunks, and store what comes back together with the advanced mark (one
 * transaction per chunk). The integrator is called outside any transaction, so a slow one holds no
 * lock; a concurrent integration of the same participant is detected by the mark having moved, and
 * its chunk is not stored twice. A failing, slow or misbehaving integrator gives the participant a
 * FAILED result and stores nothing for that chunk: the same turns are offered again next time.
 */
import type { Participant, Turn } from "./conversation-model.js";
import { DomainError } from "./errors.js";
import {
  INTEGRATION_CHUNK,
  MAX_CHUNKS_PER_RUN,
  MAX_INSIGHT_CHARS,
  MAX_INSIGHTS,
  MAX_MEMORIES,
  MAX_MEMORY_BYTES,
  type Integrator,
  type IntegratorConfig,
  type IntegratorOutput,
} from "./integrator-contract.js";
import { MAX_METADATA_BYTES } from "./conversation-model.js";
import { checkData, checkText, type Session, type SessionStats } from "./session-model.js";
import { loadSession, type SessionAddress } from "./session-service.js";
import type { Stores } from "./stores.js";

/** One participant's result. */
export interface IntegrationResult {
  participantId: string;
  outcome: "integrated" | "nothing_new" | "failed";
  turnsIntegrated: number;
  insightsAdded: number;
  memoriesCreated: number;
  /** The ids of the memories stored. */
  memoryIds: string[];
  lastIntegratedSeq: number;
  error: string;
}

/** Logs an integrator failure (the caller gets a short reason in the result). */
export type IntegrationFailureLog = (err: unknown, context: { session: string; participant: string }) => void;

/** What the service needs. */
export interface IntegrationDeps {
  stores: Stores;
  /** The integrator for a namespace's configuration. */
  integratorFor(config: IntegratorConfig): Integrator;
  logFailure?: IntegrationFailureLog;
}

/** Participants integrated at the same time. */
const PARALLEL = 4;

/** Checks an integrator's response against the documented limits. @throws InvalidInputError */
function checkOutput(out: IntegratorOutput): IntegratorOutput {
  if (out.insights.length > MAX_INSIGHTS) throw new IntegratorResponseError(`insights: at most ${MAX_INSIGHTS}, got ${out.insights.length}`);
  if (out.memories.length > MAX_MEMORIES) throw new IntegratorResponseError(`memories: at most ${MAX_MEMORIES}, got ${out.memories.length}`);
  try {
    out.insights.forEach((text, i) => checkText(`insights[${i}]`, text, MAX_INSIGHT_CHARS, { required: true }));
    out.memories.forEach((m, i) => {
      checkText(`memories[${i}].content`, m.content, MAX_MEMORY_BYTES, { required: true });
      if (Buffer.byteLength(m.content, "utf8") > MAX_MEMORY_BYTES) throw new IntegratorResponseError(`memories[${i}].content: at most ${MAX_MEMORY_BYTES} bytes`);
      checkText(`memories[${i}].subject_participant_id`, m.subjectParticipantId, 256, { id: true });
      checkText(`memories[${i}].subject_user`, m.subjectUser, 256);
      checkData(m.metadata, `memories[${i}].metadata`, MAX_METADATA_BYTES);
    });
  } catch (err) {
    if (err instanceof DomainError) throw new IntegratorResponseError(err.message);
    throw err;
  }
  return out;
}

/** An integrator answered with something sessiond will not store. */
class IntegratorResponseError extends Error {}

/** The short reason a FAILED result carries. */
function reasonOf(err: unknown, timeoutMs: number, timedOut: boolean): string {
  if (timedOut) return `the integrator did not answer within ${timeoutMs} ms`;
  if (err instanceof IntegratorResponseError) return `the integrator's response was refused: ${err.message}`;
  const message = err instanceof Error ? err.message : String(err);
  return `the integrator failed: ${message.slice(0, 300)}`;
}

/** Creates IntegrateSession over the stores and an integrator factory. */
export function createIntegrationService(deps: IntegrationDeps) {
  const { stores } = deps;
  const logFailure = deps.logFailure ?? (() => {});

  async function integrateParticipant(session: Session, config: IntegratorConfig, participant: Participant, everyone: Participant[], signal: AbortSignal): Promise<IntegrationResult> {
    const integrator = deps.integratorFor(config);
    const result: IntegrationResult = {
      participantId: participant.participantId,
      outcome: "nothing_new",
      turnsIntegrated: 0,
      insightsAdded: 0,
      memoriesCreated: 0,
      memoryIds: [],
      lastIntegratedSeq: participant.lastIntegratedSeq,
      error: "",
    };
    const insights = [...participant.insights];
    for (let chunk = 0; chunk < MAX_CHUNKS_PER_RUN; chunk++) {
      if (signal.aborted) throw signal.reason;
      const turns: Turn[] = await stores.conversations.turns({ session, afterSeq: result.lastIntegratedSeq, limit: INTEGRATION_CHUNK });
      if (!turns.length) return result;
      const deadline = AbortSignal.timeout(config.timeoutMs);
      let out: IntegratorOutput;
      try {
        out = checkOutput(
          await integrator.integrate(
            {
              namespace: session.namespace,
              session: { id: session.id, sessionId: session.sessionId, user: session.user },
              participant: { ...participant, insights, lastIntegratedSeq: result.lastIntegratedSeq },
              participants: everyone.map((p) => ({ participantId: p.participantId, kind: p.kind, displayName: p.displayName })),
              turns,
            },
            AbortSignal.any([signal, deadline]),
          ),
        );
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        logFailure(err, { session: session.id, participant: participant.participantId });
        return { ...result, outcome: "failed", error: reasonOf(err, config.timeoutMs, deadline.aborted) };
      }
      const toSeq = turns[turns.length - 1].seq;
      const stored = await stores.transaction((tx) =>
        tx.memories.writeIntegration({
          namespaceId: session.namespaceId,
          sessionUuid: session.uuid,
          participantId: participant.participantId,
          fromSeq: result.lastIntegratedSeq,
          toSeq,
          insights: out.insights,
          memories: out.memories,
        }),
      );
      // Someone else integrated this participant meanwhile: their write stands, ours is dropped.
      if (!stored) return result;
      result.outcome = "integrated";
      result.turnsIntegrated += turns.length;
      result.insightsAdded += out.insights.length;
      result.memoriesCreated += out.memories.length;
      result.memoryIds.push(...stored);
      result.lastIntegratedSeq = toSeq;
      insights.push(...out.insights);
      if (turns.length < INTEGRATION_CHUNK) return result;
    }
    return result;
  }

  return {
    /** Integrates every participant that has not left; returns a result each and the session's counters after. */
    async integrate(address: SessionAddress, signal: AbortSignal): Promise<{ results: IntegrationResult[]; stats: SessionStats }> {
      const session = await loadSession(stores.sessions, address);
      const config = await stores.memories.integratorConfig(session.namespaceId);
      const everyone = await stores.conversations.participants(session);
      const active = everyone.filter((p) => !p.leaveTime);
      const results: IntegrationResult[] = [];
      for (let i = 0; i < active.length; i += PARALLEL) {
        results.push(...(await Promise.all(active.slice(i, i + PARALLEL).map((p) => integrateParticipant(session, config, p, everyone, signal)))));
      }
      if (results.some((r) => r.outcome === "integrated")) await stores.memories.countIntegration(session);
      const after = await loadSession(stores.sessions, address);
      return { results, stats: after.stats };
    },
  };
}

/** IntegrateSession. */
export type IntegrationService = ReturnType<typeof createIntegrationService>;
