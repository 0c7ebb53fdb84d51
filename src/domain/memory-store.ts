/**
 * The storage memories and integration need (memory-service.ts, integration-service.ts), declared by the domain and
 * implemented in db/.
 */
import type { ExtractedMemory, IntegratorConfig } from "./integrator-contract.js";
import type { Cursor } from "./page-token.js";
import type { SessionRow } from "./session-store.js";

/** A memory as its store keeps it: by database ids (memory-service.ts shows it with global ids). */
export interface StoredMemory {
  uuid: string;
  sourceSessionUuid: string | null;
  subjectParticipantId: string;
  subjectUser: string;
  content: string;
  metadata: Record<string, unknown>;
  integratedBy: string;
  createTime: Date;
}

/** Which memories a list or delete selects (all set fields must match). */
export interface MemorySelector {
  ids?: string[];
  sourceSessionUuid?: string;
  subjectParticipantId?: string;
  subjectUser?: string;
}

/** What one participant's integration stores, in one transaction. */
export interface IntegrationWrite {
  namespaceId: string;
  sessionUuid: string;
  participantId: string;
  /** The mark the integration started from; the write is refused when it moved meanwhile. */
  fromSeq: number;
  toSeq: number;
  insights: string[];
  memories: ExtractedMemory[];
}

/** Memory storage bound to one connection or transaction. */
export interface MemoryStore {
  /** One page, newest first, after `after`. */
  list(namespaceId: string, sel: MemorySelector, after: Cursor | undefined, limit: number): Promise<StoredMemory[]>;
  /** Deletes the selected memories; returns how many. */
  delete(namespaceId: string, sel: MemorySelector): Promise<number>;
  /**
   * Stores one participant's integration: locks the session row (the order every writer follows),
   * advances the mark only if it is still `fromSeq` and the last integrated turn still exists, appends
   * the insights, inserts the memories and counts them on the session. Returns false, writing nothing,
   * when the mark moved meanwhile (a concurrent integration got there first) or the turns were
   * truncated while the integrator was working.
   */
  writeIntegration(w: IntegrationWrite): Promise<string[] | false>;
  /** Counts one integration run on the session. */
  countIntegration(session: SessionRow): Promise<void>;
  integratorConfig(namespaceId: string): Promise<IntegratorConfig>;
  setIntegratorConfig(namespaceId: string, config: IntegratorConfig): Promise<IntegratorConfig>;
}
