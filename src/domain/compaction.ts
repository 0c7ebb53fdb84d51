/**
 * CompactSession: the turns up to a point are archived (kept, out of the live list) and one summary
 * stands for them. In order:
 * 1. Bounds are checked against the session as read (again under its row lock when writing): compacting
 *    up to the session's compacted_seq is a no-op answered with that compaction; below it, past the last
 *    turn, or with no live turn in the range is FAILED_PRECONDITION.
 * 2. The session is integrated (IntegrateSession) until every participant that has not left has its
 *    mark at up_to_seq or past it, so no memory is lost to the archive; a failed integrator stops the
 *    compaction before anything is archived (UNAVAILABLE, the participant and reason named).
 * 3. The summary is the caller's, or the integrator's (SummaryInput: the summary so far and the turns to
 *    archive, INTEGRATION_CHUNK at a time, outside any transaction).
 * 4. One transaction records the compaction, moves compacted_seq and the counters, and records the
 *    COMPACTED change for watchers.
 */
import { MAX_SUMMARY_BYTES, type Compaction, type Turn } from "./conversation-model.js";
import { IntegratorUnavailableError, InvalidInputError, NotFoundError, PreconditionError } from "./errors.js";
import { INTEGRATION_CHUNK, type Integrator, type IntegratorConfig } from "./integrator-contract.js";
import type { IntegrationResult, IntegrationService } from "./integration-service.js";
import { checkText, sessionOf, type Session } from "./session-model.js";
import { loadSession, type SessionAddress } from "./session-service.js";
import type { Stores } from "./stores.js";
import type { Changed } from "./watch-model.js";

/** Input of CompactSession. */
export interface CompactInput {
  address: SessionAddress;
  upToSeq: number;
  /** The caller's summary; empty: the integrator's. */
  summary: string;
}

/** What CompactSession did. */
export interface CompactResult {
  session: Session;
  compaction: Compaction;
  integration: IntegrationResult[];
  alreadyCompacted: boolean;
}

/** Integration runs a compaction makes at most before giving up on marks that do not reach up_to_seq. */
const MAX_INTEGRATION_RUNS = 10;

export interface CompactionDeps {
  stores: Stores;
  integration: IntegrationService;
  integratorFor(config: IntegratorConfig): Integrator;
  changed?: Changed;
}

export function createCompactionService(deps: CompactionDeps) {
  const { stores, integration } = deps;
  const changed = deps.changed ?? (() => {});

  /** Integrates until every participant that has not left is integrated up to `upToSeq`; returns each one's results summed. */
  async function integrateUpTo(address: SessionAddress, session: Session, upToSeq: number, signal: AbortSignal): Promise<IntegrationResult[]> {
    const total = new Map<string, IntegrationResult>();
    for (let run = 0; run < MAX_INTEGRATION_RUNS; run++) {
      const { results } = await integration.integrate(address, signal);
      for (const r of results) {
        const t = total.get(r.participantId);
        if (!t) total.set(r.participantId, { ...r, memoryIds: [...r.memoryIds] });
        else {
          t.turnsIntegrated += r.turnsIntegrated;
          t.insightsAdded += r.insightsAdded;
          t.memoriesCreated += r.memoriesCreated;
          t.memoryIds.push(...r.memoryIds);
          t.lastIntegratedSeq = r.lastIntegratedSeq;
          t.error = r.error;
          if (r.outcome !== "nothing_new") t.outcome = r.outcome;
        }
        if (r.outcome === "failed") {
          throw new IntegratorUnavailableError(`integrating participant "${r.participantId}" before the compaction failed (${r.error}); nothing was archived, retry`);
        }
      }
      const behind = (await stores.conversations.participants(session, { activeOnly: true })).filter((p) => p.lastIntegratedSeq < upToSeq);
      // Marks stop at the last turn, and a participant with no turn past its mark has nothing to feed.
      if (!behind.length || results.every((r) => r.outcome === "nothing_new")) return [...total.values()];
    }
    // Over MAX_INTEGRATION_RUNS x 10,000 turns behind: what was integrated stays; nothing is archived yet.
    throw new PreconditionError(`up_to_seq: the session's participants are still being integrated up to ${upToSeq} (a long backlog); nothing was archived, call again`);
  }

  /** The integrator's summary of the turns after the session's compacted_seq up to `upToSeq`, after the previous summary. */
  async function summarize(session: Session, upToSeq: number, signal: AbortSignal): Promise<{ summary: string; summarizer: string }> {
    const config = await stores.memories.integratorConfig(session.namespaceId);
    const integrator = deps.integratorFor(config);
    const compactedSeq = session.stats.compactedSeq ?? 0;
    let summary = compactedSeq ? ((await stores.conversations.compaction(session, compactedSeq))?.summary ?? "") : "";
    const participants = (await stores.conversations.participants(session)).map((p) => ({ participantId: p.participantId, kind: p.kind, displayName: p.displayName }));
    for (let after = compactedSeq; after < upToSeq; ) {
      const turns: Turn[] = await stores.conversations.turns({ session, afterSeq: after, untilSeq: upToSeq, limit: INTEGRATION_CHUNK });
      if (!turns.length) break;
      const deadline = AbortSignal.timeout(config.timeoutMs);
      let next: string | undefined;
      try {
        next = await integrator.summarize(
          { namespace: session.namespace, session: { id: session.id, sessionId: session.sessionId, user: session.user }, participants, previousSummary: summary, turns },
          AbortSignal.any([signal, deadline]),
        );
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const reason = deadline.aborted ? `it did not answer within ${config.timeoutMs} ms` : (err instanceof Error ? err.message : String(err)).slice(0, 300);
        throw new IntegratorUnavailableError(`the namespace's integrator failed to summarize (${reason}); nothing was archived, retry or give a summary`);
      }
      if (next === undefined) throw new PreconditionError("summary: the namespace's integrator makes no summary; give one");
      summary = next;
      after = turns[turns.length - 1].seq;
    }
    checkSummary(summary, "the integrator's summary");
    return { summary, summarizer: config.kind };
  }

  return {
    async compact(input: CompactInput, signal: AbortSignal): Promise<CompactResult> {
      if (!Number.isSafeInteger(input.upToSeq) || input.upToSeq <= 0) throw new InvalidInputError("up_to_seq", `must be between 1 and ${Number.MAX_SAFE_INTEGER}`);
      if (input.summary) checkSummary(input.summary, "summary");
      const before = await loadSession(stores.sessions, input.address);
      if (before.state !== "active") throw new PreconditionError(`session ${before.id} is ${before.state === "cancelled" ? "cancelled" : "deleted"}; compacting it is not allowed`);
      const already = async () => {
        const compaction = await stores.conversations.compaction(before, input.upToSeq);
        if (!compaction) throw new PreconditionError(`up_to_seq: session ${before.id} is compacted up to ${input.upToSeq}, but that compaction was truncated away`);
        return { session: before, compaction, integration: [], alreadyCompacted: true };
      };
      const compactedSeq = before.stats.compactedSeq ?? 0;
      if (input.upToSeq === compactedSeq) return already();
      if (input.upToSeq < compactedSeq) checkBounds(before, input.upToSeq, compactedSeq, Infinity);
      // The turn up_to_seq must be there (checked again under the row lock when writing).
      const [last] = await stores.conversations.turns({ session: before, afterSeq: input.upToSeq - 1, untilSeq: input.upToSeq, limit: 1 });
      if (!last) throw new PreconditionError(`up_to_seq: session ${before.id} has no turn ${input.upToSeq} (past its last turn, or truncated away)`);
      const integrated = await integrateUpTo(input.address, before, input.upToSeq, signal);
      const written = input.summary ? { summary: input.summary, summarizer: "caller" } : await summarize(before, input.upToSeq, signal);
      const memoryIds = integrated.flatMap((r) => r.memoryIds);
      const outcome = await stores.transaction((tx) => tx.conversations.compact(before, { upToSeq: input.upToSeq, ...written, memoryIds }));
      if (!outcome.ok) {
        if (outcome.reason === "already") return already();
        if (outcome.reason === "gone") throw new NotFoundError(`session ${before.id} not found (deleted during the compaction)`);
        if (outcome.reason === "inactive") throw new PreconditionError(`session ${before.id} was cancelled or soft-deleted during the compaction; nothing was archived`);
        checkBounds(before, input.upToSeq, outcome.compactedSeq, outcome.lastSeq);
        throw new PreconditionError(`up_to_seq: session ${before.id} has no turn after ${outcome.compactedSeq} up to ${input.upToSeq} to archive`);
      }
      changed(before.namespaceId, { uuid: before.uuid }, true);
      return { session: sessionOf(outcome.session), compaction: outcome.compaction, integration: integrated, alreadyCompacted: false };
    },
  };
}

/** @throws PreconditionError when up_to_seq is below the session's compacted_seq or past its last turn. */
function checkBounds(session: Session, upToSeq: number, compactedSeq: number, lastSeq: number) {
  if (upToSeq < compactedSeq) throw new PreconditionError(`up_to_seq: session ${session.id} is already compacted up to ${compactedSeq}; compact up to a later turn`);
  if (upToSeq > lastSeq) throw new PreconditionError(`up_to_seq: session ${session.id} has no turn ${upToSeq} (its last turn is ${lastSeq})`);
}

function checkSummary(summary: string, field: string) {
  checkText(field, summary, MAX_SUMMARY_BYTES);
  if (Buffer.byteLength(summary, "utf8") > MAX_SUMMARY_BYTES) throw new InvalidInputError(field, `must be at most ${MAX_SUMMARY_BYTES} bytes`);
}

export type CompactionService = ReturnType<typeof createCompactionService>;
