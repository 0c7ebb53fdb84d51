/**
 * What a session holds besides its own fields: participants and their turns, as the domain sees them
 * (no protobuf, no SQL), with the rules for their fields.
 */
import { createHash } from "node:crypto";
import { InvalidInputError } from "./errors.js";
import { checkData, checkedJson, checkText, requiredIdOk, textOk, type JsonObject, type SessionStats } from "./session-model.js";

export type ParticipantKind = "user" | "agent" | "system" | "tool";

/** A participant bound to a session. */
export interface Participant {
  participantId: string;
  kind: ParticipantKind;
  displayName: string;
  metadata: JsonObject;
  insights: string[];
  lastIntegratedSeq: number;
  bindTime: Date;
  leaveTime: Date | null;
}

/** A participant to bind, as it arrives (BindParticipant, or one of CreateSession's participants). */
export interface NewParticipant {
  participantId: string;
  /** undefined: not given (invalid). */
  kind: ParticipantKind | undefined;
  displayName: string;
  metadata: JsonObject;
}

/** A participant to bind, checked (see checkParticipant). */
export interface ParticipantValues {
  participantId: string;
  kind: ParticipantKind;
  displayName: string;
  metadata: JsonObject;
}

/**
 * Where a session's conversation stands right after a write: its counters and the last sequence number
 * it gave out (which, unlike stats.turnCount, a truncate does not reset).
 */
export interface ConversationState {
  stats: SessionStats;
  lastSeq: number;
}

/** A tool call made in a turn. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: JsonObject;
}

/** A turn to append, as it arrives. */
export interface NewTurn {
  participantId: string;
  /** Empty: follows the speaker's kind (see ROLE_OF_KIND). */
  role: string;
  content: string;
  toolCalls: ToolCall[];
  metadata: JsonObject;
  /** The metadata as the JSON text checkTurns measured (set by it), so that the writer does not serialize it again. */
  metadataJson?: string;
}

/** A stored turn. */
export interface Turn extends NewTurn {
  seq: number;
  requestId: string;
  createTime: Date;
  /** Set on a summary turn (ListTurns): the compaction it stands for. */
  compaction?: Compaction;
  /** Archived by a compaction (set by ListTurns; other reads leave it out). */
  archived?: boolean;
}

/** One compaction of a session (CompactSession). */
export interface Compaction {
  firstSeq: number;
  upToSeq: number;
  turnsArchived: number;
  summary: string;
  /** "caller", or the integrator that wrote the summary ("rules", "remote"). */
  summarizer: string;
  memoryIds: string[];
  createTime: Date;
}

/** The role of a summary turn. */
export const SUMMARY_ROLE = "summary";
/** Longest summary, in bytes of UTF-8. */
export const MAX_SUMMARY_BYTES = 64 * 1024;

/** A compaction's summary as the turn that stands for it in ListTurns (right after the last turn it archived). */
export function summaryTurn(c: Compaction, archived: boolean): Turn {
  return { seq: c.upToSeq, participantId: "", role: SUMMARY_ROLE, content: c.summary, toolCalls: [], metadata: {}, requestId: "", createTime: c.createTime, compaction: c, archived };
}

/** What the session assigned to an appended turn. */
export interface AppendedTurn {
  seq: number;
  role: string;
  createTime: Date;
}

export const MAX_TURNS_PER_CALL = 100;
export const MAX_CONTENT_BYTES = 64 * 1024;
export const MAX_TOOL_CALLS = 64;
export const MAX_METADATA_BYTES = 16 * 1024;
export const MAX_PARTICIPANTS = 1000;
/** Participants CreateSession binds at most (BindParticipant adds more, up to MAX_PARTICIPANTS). */
export const MAX_PARTICIPANTS_AT_CREATE = 100;
export const MAX_REQUEST_ID = 128;
export const DEFAULT_TURN_PAGE = 100;

/** The role a turn gets when none is given. */
export const ROLE_OF_KIND: Readonly<Record<ParticipantKind, string>> = Object.freeze({ user: "user", agent: "assistant", system: "system", tool: "tool" });

const ROLE = /^[a-z0-9_-]{1,32}$/;

/** Checks a participant id (1 to 256 characters, no control characters). */
export function checkParticipantId(value: string, field = "participant_id"): string {
  return checkText(field, value, 256, { required: true, id: true });
}

/** Checks a participant to bind; `prefix` names it in errors (e.g. "participants[1]." gives participants[1].kind). */
export function checkParticipant(p: NewParticipant, prefix = ""): ParticipantValues {
  const participantId = checkParticipantId(p.participantId, `${prefix}participant_id`);
  if (!p.kind) throw new InvalidInputError(`${prefix}kind`, "is required: USER, AGENT, SYSTEM or TOOL");
  return {
    participantId,
    kind: p.kind,
    displayName: checkText(`${prefix}display_name`, p.displayName, 256),
    metadata: checkData(p.metadata, `${prefix}metadata`, MAX_METADATA_BYTES),
  };
}

/** Checks CreateSession's participants: at most MAX_PARTICIPANTS_AT_CREATE, each valid, no participant_id twice. */
export function checkNewParticipants(participants: NewParticipant[]): ParticipantValues[] {
  if (participants.length > MAX_PARTICIPANTS_AT_CREATE) throw new InvalidInputError("participants", `at most ${MAX_PARTICIPANTS_AT_CREATE} per call, got ${participants.length}`);
  const seen = new Map<string, number>();
  return participants.map((p, i) => {
    const checked = checkParticipant(p, `participants[${i}].`);
    const first = seen.get(checked.participantId);
    if (first !== undefined) throw new InvalidInputError(`participants[${i}].participant_id`, `"${checked.participantId}" is already given as participants[${first}]`);
    seen.set(checked.participantId, i);
    return checked;
  });
}

/** Checks the turns of one AppendTurns call; errors name the turn, e.g. turns[3].content. */
export function checkTurns(turns: NewTurn[]): NewTurn[] {
  if (turns.length === 0) throw new InvalidInputError("turns", "must hold at least one turn");
  if (turns.length > MAX_TURNS_PER_CALL) throw new InvalidInputError("turns", `at most ${MAX_TURNS_PER_CALL} per call, got ${turns.length}`);
  for (let i = 0; i < turns.length; i++) {
    const t = turns[i];
    // The common turn passes the tests below without its field names being built (20 turns a call, five
    // names each); any that fails is checked again field by field, which names the field.
    if (!turnOk(t)) checkTurn(t, i);
    t.metadataJson = checkedJson(t.metadata, () => `turns[${i}].metadata`, MAX_METADATA_BYTES);
  }
  return turns;
}

/** Whether {@link checkTurn} accepts `t` (the tool calls' arguments aside, which it checks either way); no field names made. */
function turnOk(t: NewTurn): boolean {
  return (
    requiredIdOk(t.participantId, 256) &&
    (t.role === "" || ROLE.test(t.role)) &&
    t.content !== "" && t.content.length * 3 <= MAX_CONTENT_BYTES && textOk(t.content, Infinity) &&
    t.toolCalls.length === 0
  );
}

/** Checks one turn field by field; throws InvalidInputError naming the first field that fails. */
function checkTurn(t: NewTurn, i: number): void {
  const at = `turns[${i}]`;
  checkParticipantId(t.participantId, `${at}.participant_id`);
  if (t.role !== "" && !ROLE.test(t.role)) throw new InvalidInputError(`${at}.role`, "must be 1 to 32 characters of [a-z0-9_-]");
  if (t.content === "") throw new InvalidInputError(`${at}.content`, "must not be empty");
  const bytes = Buffer.byteLength(t.content, "utf8");
  if (bytes > MAX_CONTENT_BYTES) throw new InvalidInputError(`${at}.content`, `must be at most ${MAX_CONTENT_BYTES} bytes, got ${bytes}`);
  checkText(`${at}.content`, t.content, Infinity);
  if (t.toolCalls.length > MAX_TOOL_CALLS) throw new InvalidInputError(`${at}.tool_calls`, `at most ${MAX_TOOL_CALLS}, got ${t.toolCalls.length}`);
  t.toolCalls.forEach((c, j) => {
    checkText(`${at}.tool_calls[${j}].id`, c.id, 256, { id: true });
    checkText(`${at}.tool_calls[${j}].name`, c.name, 256, { required: true, id: true });
    checkData(c.arguments, `${at}.tool_calls[${j}].arguments`, MAX_CONTENT_BYTES);
  });
}

/** Checks an AppendTurns request_id (empty: none). */
export function checkRequestId(value: string): string {
  return checkText("request_id", value, MAX_REQUEST_ID, { id: true });
}

/** JSON with object keys sorted, so equal requests hash equally whatever the key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Fingerprint of an AppendTurns call's turns: a retry matches it, a reuse with other turns does not. */
export function turnsFingerprint(turns: NewTurn[]): string {
  // The fields a caller sent, not what checkTurns added (metadataJson): fingerprints stored before stay valid.
  const sent = turns.map((t) => ({ participantId: t.participantId, role: t.role, content: t.content, toolCalls: t.toolCalls, metadata: t.metadata }));
  return createHash("sha256").update(canonical(sent)).digest("hex");
}
