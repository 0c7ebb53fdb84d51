/**
 * The integrator contract as the domain sees it: IntegrateSession hands an integrator one participant's
 * new turns and stores what comes back. Implementations: the built-in rules (integrators/rules.ts) and
 * a remote IntegratorService (handlers/integrators.ts).
 */
import type { Participant, ParticipantKind, Turn } from "./conversation-model.js";
import type { JsonObject } from "./session-model.js";

/** What an integrator is given. */
export interface IntegratorInput {
  namespace: string;
  session: { id: string; sessionId: string; user: string };
  /** The participant integrating, with its insights so far. */
  participant: Participant;
  /** Every participant of the session (speakers' kinds and names). */
  participants: { participantId: string; kind: ParticipantKind; displayName: string }[];
  /** The session's turns after the participant's mark, in sequence order. */
  turns: Turn[];
}

/** A memory an integrator extracted. */
export interface ExtractedMemory {
  content: string;
  subjectParticipantId: string;
  subjectUser: string;
  metadata: JsonObject;
}

/** What an integrator returns. */
export interface IntegratorOutput {
  insights: string[];
  memories: ExtractedMemory[];
}

/** What an integrator is given to summarize (CompactSession), a chunk of the turns to archive at a time. */
export interface SummaryInput {
  namespace: string;
  session: { id: string; sessionId: string; user: string };
  participants: { participantId: string; kind: ParticipantKind; displayName: string }[];
  /** The summary so far: the previous compaction's, then the one made of the earlier chunks ("" at first). */
  previousSummary: string;
  /** The next chunk of the turns to archive, in sequence order. */
  turns: Turn[];
}

/** Turns a participant's new turns into insights and memories. May throw; the caller records FAILED. */
export interface Integrator {
  integrate(input: IntegratorInput, signal: AbortSignal): Promise<IntegratorOutput>;
  /**
   * A summary standing for input.previousSummary and input.turns, or undefined when the integrator makes
   * none (a remote one may not). May throw.
   */
  summarize(input: SummaryInput, signal: AbortSignal): Promise<string | undefined>;
}

/** Which integrator a namespace uses. */
export interface IntegratorConfig {
  kind: "rules" | "remote";
  url: string;
  timeoutMs: number;
}

export const DEFAULT_INTEGRATOR_TIMEOUT_MS = 10_000;
export const MAX_INTEGRATOR_TIMEOUT_MS = 120_000;
/** Turns per Integrate call; a longer backlog takes several calls. */
export const INTEGRATION_CHUNK = 200;
/** Integrate calls per participant in one IntegrateSession (10,000 turns); the rest waits for the next run. */
export const MAX_CHUNKS_PER_RUN = 50;
export const MAX_INSIGHTS = 100;
export const MAX_INSIGHT_CHARS = 2048;
export const MAX_MEMORIES = 1000;
export const MAX_MEMORY_BYTES = 8 * 1024;
