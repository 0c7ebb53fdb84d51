/**
 * What an erasure (AdminService.ForgetSubject) is made of, as pieces an operation (operations.ts)
 * runs and resumes: the checked request, the cursor of where it stands, and how a committed step moves
 * the cursor and the counts on. The steps themselves run in the operation store, each in the
 * transaction that records it (OperationStore.commitErasure), in this order:
 * 1. `sessions`: the sessions whose user is the subject, a batch at a time, through the deletion every
 *    session takes (their memories purged);
 * 2. `memories`: memories about the subject deleted, and the subject emptied from `integrated_by`;
 * 3. `participants`: one participant of the subject in another session at a time: its turns redacted a
 *    batch at a time (from the last seq done), then the participant itself with the summaries and
 *    other participants' insights that may quote it;
 * 4. `changes`: the recorded session changes (the watch outbox) that carry the subject;
 * 5. `operations`: ended operations whose stored request names the user (a bulk delete by filter.user).
 * Every step is idempotent and selects what is left to do, so an operation taken over by another
 * process goes on from its last committed step and counts nothing twice.
 */
import { createHash } from "node:crypto";
import type { DeletedSession } from "./bulk-delete-store.js";
import { InvalidInputError } from "./errors.js";
import { addDeletedCounts, checkNamespace, checkText, emptyDeletedCounts, type DeletedCounts } from "./session-model.js";

export const DEFAULT_ERASURE_BATCH = 500;
export const MAX_ERASURE_BATCH = 5_000;
/** What redacted text becomes. */
export const REDACTED = "[redacted]";

/** Whom an erasure forgets: an end user (Session.user) or a participant id. */
export type SubjectKind = "user" | "participant";

export interface Subject {
  kind: SubjectKind;
  id: string;
}

/** ForgetSubject's input as it arrives (`subject` undefined: the oneof was not set). */
export interface ErasureInput {
  namespace: string;
  subject?: Subject;
  batchSize: number;
  /** Who asks (an actor as the audit log writes it). */
  actor?: string;
}

/** The steps, in order. */
export type ErasureStep = "sessions" | "memories" | "participants" | "changes" | "operations";

/** Where an erasure stands; `participant` is the one whose turns are being redacted, after `afterSeq`. */
export type ErasureCursor =
  | { step: Exclude<ErasureStep, "participants"> }
  | { step: "participants"; participant?: { uuid: string; sessionUuid: string }; afterSeq?: number }
  | { step: "done" };

/** What an erasure did so far. */
export interface ErasureCounts {
  sessionsDeleted: number;
  deleted: DeletedCounts;
  memoriesDeleted: number;
  memoriesRedacted: number;
  participantsRedacted: number;
  turnsRedacted: number;
  insightsCleared: number;
  summariesRedacted: number;
  changesRedacted: number;
  operationsRedacted: number;
}

/**
 * An erasure's request as its operation stores it. `private` holds the subject id while the work
 * needs it and is dropped when the operation ends (OperationStore.end); `subject` keeps its digest.
 */
export interface ErasureRequest {
  subject: { kind: SubjectKind; sha256: string };
  batchSize: number;
  private?: { id: string };
}

/** One committed step, as WatchOperation and the stream replay it. */
export interface ErasureBatch {
  step: ErasureStep;
  counts: ErasureCounts;
}

/** One step to run in the transaction that records it. */
export interface ErasureWork {
  namespaceId: string;
  subject: Subject;
  cursor: Exclude<ErasureCursor, { step: "done" }>;
  limit: number;
}

/** What a step did: whether its part has more to do, and the rows it touched. */
export interface ErasureStepResult {
  /** Its step has more to do (a full batch was done). */
  more: boolean;
  /** Sessions deleted (`sessions`). */
  sessions?: DeletedSession[];
  /** The participant worked on (`participants`); undefined when none is left. */
  participant?: { uuid: string; sessionUuid: string };
  /** The last turn seq redacted (`participants`). */
  lastSeq?: number;
  counts: Partial<Omit<ErasureCounts, "deleted" | "sessionsDeleted">>;
}

/** An event of ForgetSubject. */
export type ErasureEvent =
  | { type: "started"; operationId: string; namespace: string; subjectKind: SubjectKind; subjectSha256: string }
  | { type: "progress"; step: ErasureStep; counts: ErasureCounts }
  | { type: "summary"; counts: ErasureCounts; elapsedMs: number };

/** Hex SHA-256 of a subject id: what is kept of it once the work is done (the audit log, the operation). */
export function subjectDigest(id: string): string {
  return createHash("sha256").update(id, "utf8").digest("hex");
}

export const emptyErasureCounts = (): ErasureCounts => ({
  sessionsDeleted: 0,
  deleted: emptyDeletedCounts(),
  memoriesDeleted: 0,
  memoriesRedacted: 0,
  participantsRedacted: 0,
  turnsRedacted: 0,
  insightsCleared: 0,
  summariesRedacted: 0,
  changesRedacted: 0,
  operationsRedacted: 0,
});

/** Checks ForgetSubject's input. @throws InvalidInputError naming the field */
export function checkErasure(input: ErasureInput): { namespace: string; subject: Subject; batchSize: number } {
  const namespace = checkNamespace(input.namespace);
  if (!input.subject) throw new InvalidInputError("subject", "set one of user or participant_id");
  const field = input.subject.kind === "user" ? "user" : "participant_id";
  const id = checkText(field, input.subject.id, 256, { required: true, id: true });
  const batchSize = input.batchSize === 0 ? DEFAULT_ERASURE_BATCH : input.batchSize;
  if (batchSize < 1 || batchSize > MAX_ERASURE_BATCH) throw new InvalidInputError("batch_size", `must be between 1 and ${MAX_ERASURE_BATCH}`);
  return { namespace, subject: { kind: input.subject.kind, id }, batchSize };
}

/** The cursor after a committed step. */
export function nextCursor(cursor: ErasureWork["cursor"], r: ErasureStepResult): ErasureCursor {
  switch (cursor.step) {
    case "sessions":
      return r.more ? cursor : { step: "memories" };
    case "memories":
      return r.more ? cursor : { step: "participants" };
    case "participants":
      if (!r.participant) return { step: "changes" };
      return r.more ? { step: "participants", participant: r.participant, afterSeq: r.lastSeq } : { step: "participants" };
    case "changes":
      return r.more ? cursor : { step: "operations" };
    case "operations":
      return r.more ? cursor : { step: "done" };
  }
}

/** The counts after a committed step. Pure: `before` is left as it was. */
export function addCounts(before: ErasureCounts, r: ErasureStepResult): ErasureCounts {
  const after: ErasureCounts = { ...before, deleted: { ...before.deleted } };
  for (const s of r.sessions ?? []) {
    after.sessionsDeleted++;
    addDeletedCounts(after.deleted, s.counts);
    after.memoriesDeleted += s.memories;
  }
  for (const [k, n] of Object.entries(r.counts) as [keyof ErasureStepResult["counts"], number][]) after[k] += n;
  return after;
}
