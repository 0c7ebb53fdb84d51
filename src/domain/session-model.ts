/**
 * The Session aggregate as the domain sees it (no protobuf, no SQL), and the rules for its fields.
 */
import { InvalidInputError } from "./errors.js";
import { encodeSessionId } from "./ids.js";

/** JSON object, as stored in Session.data. */
export type JsonObject = { [key: string]: JsonValue };
/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonObject | JsonValue[];

/** Lifecycle state. `soft_deleted` is derived from delete_time; the stored state is kept under it. */
export type SessionState = "active" | "cancelled" | "soft_deleted";

/** Counters of what a session holds. */
export interface SessionStats {
  participantCount: number;
  turnCount: number;
  traceCount: number;
  spanCount: number;
  memoriesExtracted: number;
  integrationCount: number;
  /** Compaction counters; absent where a statement does not read them (AppendTurns). */
  compactionCount?: number;
  archivedTurnCount?: number;
  compactedSeq?: number;
}

/** A session. */
export interface Session {
  /** Database uuid; the global id is derived from it and namespaceId. */
  uuid: string;
  /** Global id (see encodeSessionId). */
  id: string;
  sessionId: string;
  namespace: string;
  /** Database id of the namespace. */
  namespaceId: string;
  user: string;
  workflow: { id: string; version: string };
  data: JsonObject;
  labels: Record<string, string>;
  state: SessionState;
  createTime: Date;
  updateTime: Date;
  /** The last activity (see Session.last_activity_time in the proto). */
  lastActivityTime: Date;
  deleteTime: Date | null;
  expireTime: Date;
  etag: string;
  stats: SessionStats;
  maxRequestsPerMinute: number;
}

/**
 * A session as its store keeps it: the facts the domain derives the global id and the etag from
 * (see sessionOf).
 */
export interface StoredSession extends Omit<Session, "id" | "etag"> {
  /** Bumped by every change; the etag is derived from it. */
  version: number;
}

/**
 * How a call addresses one session: a global id (with the namespace it carries, unless it is of the old
 * form, and the namespace the call names, if any), or a caller id within a namespace.
 */
export type SessionRef = { kind: "uuid"; uuid: string; namespaceId?: string; namespace?: string } | { kind: "external"; namespace: string; sessionId: string };

/** Rows that went with a hard-deleted session. */
export interface DeletedCounts {
  participants: number;
  turns: number;
  traces: number;
  spans: number;
  annotations: number;
  /** Of the turns, those archived by compactions. */
  archivedTurns: number;
  /** Compactions (summaries) deleted. */
  compactions: number;
}

/** Counts of nothing deleted yet. */
export const emptyDeletedCounts = (): DeletedCounts => ({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, archivedTurns: 0, compactions: 0 });

/** Adds `more` to `into` (a count `into` lacks, as progress saved before it existed, counts from 0). */
export function addDeletedCounts(into: DeletedCounts, more: DeletedCounts): void {
  for (const k of Object.keys(more) as (keyof DeletedCounts)[]) into[k] = (into[k] ?? 0) + more[k];
}

/** Filter of ListSessions (and bulk operations). */
export interface SessionFilter {
  user?: string;
  state?: SessionState;
  workflowId?: string;
  labels?: Record<string, string>;
  createTimeAfter?: Date;
  createTimeBefore?: Date;
  /** Last activity at or after. */
  activeAfter?: Date;
  /** Last activity strictly before. */
  activeBefore?: Date;
}

export const DEFAULT_NAMESPACE = "default";
export const DEFAULT_EXPIRES_AFTER_MS = 10 * 60 * 1000;
export const MAX_EXPIRES_AFTER_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_REQUESTS_PER_MINUTE = 10;
export const MAX_REQUESTS_PER_MINUTE = 10_000;
export const MAX_LABELS = 64;
export const MAX_LABEL_KEY = 63;
export const MAX_LABEL_VALUE = 256;
export const MAX_DATA_BYTES = 256 * 1024;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

const NAMESPACE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const LABEL_KEY = /^[A-Za-z0-9_.-]+$/;
// C0/C1 control characters (tab and newline included): never part of an id.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Returns the namespace to use ("default" when empty). @throws InvalidInputError */
export function checkNamespace(value: string, field = "namespace"): string {
  if (value === "") return DEFAULT_NAMESPACE;
  if (!NAMESPACE.test(value)) throw new InvalidInputError(field, "must be 1 to 63 characters of [a-z0-9_.-], starting with a letter or digit");
  return value;
}

/**
 * Whether `value` has more than `max` characters (code points), counted only when its UTF-16 length
 * leaves a doubt: a code point takes one or two UTF-16 units. (Spreading the string into an array of
 * code points, per turn, was 2-3 % of the server's CPU under an AppendTurns load.)
 */
function longerThan(value: string, max: number): boolean {
  if (value.length <= max) return false;
  if (value.length > 2 * max) return true;
  let n = 0;
  for (const _ of value) if (++n > max) return true;
  return false;
}

/**
 * Whether {@link checkText} accepts `value` without the identifier rules (at most `max` characters, no
 * NUL, no lone surrogate): a hot path's test before it names the field, which only an error needs.
 */
export function textOk(value: string, max: number): boolean {
  return !longerThan(value, max) && !value.includes("\u0000") && value.isWellFormed();
}

/** Whether {@link checkText} accepts `value` with `{ required: true, id: true }`; like {@link textOk}, names no field. */
export function requiredIdOk(value: string, max: number): boolean {
  return value !== "" && textOk(value, max) && !CONTROL.test(value);
}

/** Checks an identifier-like string: at most `max` characters, no control characters. */
export function checkText(field: string, value: string, max: number, { required = false, id = false } = {}): string {
  if (required && value === "") throw new InvalidInputError(field, "is required");
  if (longerThan(value, max)) throw new InvalidInputError(field, `must be at most ${max} characters`);
  if (id && CONTROL.test(value)) throw new InvalidInputError(field, "must not contain control characters");
  if (value.includes("\u0000")) throw new InvalidInputError(field, "must not contain NUL characters");
  if (!value.isWellFormed()) throw new InvalidInputError(field, "must be valid Unicode (a lone surrogate was found)");
  return value;
}

/** Checks a label map against the documented limits. */
export function checkLabels(labels: Record<string, string>, field = "labels"): Record<string, string> {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) throw new InvalidInputError(field, `at most ${MAX_LABELS} labels, got ${keys.length}`);
  for (const key of keys) {
    if (key.length === 0 || key.length > MAX_LABEL_KEY || !LABEL_KEY.test(key)) {
      throw new InvalidInputError(`${field}[${JSON.stringify(key.slice(0, 80))}]`, `key must be 1 to ${MAX_LABEL_KEY} characters of [A-Za-z0-9_.-]`);
    }
    checkText(`${field}[${JSON.stringify(key)}]`, labels[key], MAX_LABEL_VALUE);
  }
  return labels;
}

/** What JSON.stringify writes for a NUL or a lone surrogate (and, rarely, for text that only looks like one). */
const MAYBE_UNSTORABLE = /\\u(?:0000|d[89a-f])/i;

/** A string Postgres text and jsonb cannot hold: a NUL character or a lone UTF-16 surrogate. */
const unstorable = (s: string) => s.includes("\u0000") || !s.isWellFormed();

function hasUnstorable(value: JsonValue): boolean {
  if (typeof value === "string") return unstorable(value);
  if (Array.isArray(value)) return value.some(hasUnstorable);
  if (value && typeof value === "object") return Object.entries(value).some(([k, v]) => unstorable(k) || hasUnstorable(v));
  return false;
}

/** A field name given as is or made on demand. */
function nameOf(field: string | (() => string)): string {
  return typeof field === "string" ? field : field();
}

/** Checks a JSON object (session data by default): no NUL characters, at most `max` bytes as JSON. */
export function checkData(data: JsonObject, field = "data", max = MAX_DATA_BYTES): JsonObject {
  checkedJson(data, field, max);
  return data;
}

/** {@link checkData}, returning the JSON text it measured (for a writer that stores it as is). */
export function checkedJson(data: JsonValue, field: string | (() => string), max: number): string {
  // (No closure made per call: the build keeps function names, which costs each named closure a
  // defineProperty; this runs for every span's attributes.)
  const json = JSON.stringify(data);
  // JSON.stringify writes a NUL as \u0000 and a lone surrogate as \udXXX: without either escape in the
  // text there is neither in the data; with one (or a literal "\\u0000" a caller wrote), look closer.
  if (MAYBE_UNSTORABLE.test(json) && hasUnstorable(data)) throw new InvalidInputError(nameOf(field), "must not contain NUL characters or lone surrogates (Postgres jsonb cannot store them)");
  // Bytes are at most 3 a UTF-16 unit: short texts skip the exact count.
  const bytes = json.length * 3 <= max ? json.length : Buffer.byteLength(json, "utf8");
  if (bytes > max) throw new InvalidInputError(nameOf(field), `must be at most ${max} bytes as JSON, got ${bytes}`);
  return json;
}

/** Resolves expires_after (ms, undefined when unset) against its default and bounds. */
export function checkExpiresAfter(ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_EXPIRES_AFTER_MS;
  if (!(ms > 0)) throw new InvalidInputError("expires_after", "must be positive");
  if (ms > MAX_EXPIRES_AFTER_MS) throw new InvalidInputError("expires_after", `must be at most ${MAX_EXPIRES_AFTER_MS / 1000} seconds (24 hours)`);
  return ms;
}

/** Resolves max_requests_per_minute (0 = default). */
export function checkMaxRequestsPerMinute(value: number): number {
  if (value === 0) return DEFAULT_MAX_REQUESTS_PER_MINUTE;
  if (value < 0 || value > MAX_REQUESTS_PER_MINUTE) throw new InvalidInputError("max_requests_per_minute", `must be between 1 and ${MAX_REQUESTS_PER_MINUTE}`);
  return value;
}

/** Resolves page_size (0 = the default of the list, DEFAULT_PAGE_SIZE unless given). */
export function checkPageSize(value: number, dflt = DEFAULT_PAGE_SIZE): number {
  if (value === 0) return dflt;
  if (value < 0 || value > MAX_PAGE_SIZE) throw new InvalidInputError("page_size", `must be between 1 and ${MAX_PAGE_SIZE}`);
  return value;
}

/** Checks a list filter. */
export function checkFilter(filter: SessionFilter, field = "filter"): SessionFilter {
  if (filter.user !== undefined) checkText(`${field}.user`, filter.user, 256);
  if (filter.workflowId !== undefined) checkText(`${field}.workflow_id`, filter.workflowId, 256);
  if (filter.labels) checkLabels(filter.labels, `${field}.labels`);
  if (filter.createTimeAfter && filter.createTimeBefore && filter.createTimeAfter >= filter.createTimeBefore) {
    throw new InvalidInputError(`${field}.create_time_before`, "must be later than create_time_after");
  }
  if (filter.activeAfter && filter.activeBefore && filter.activeAfter >= filter.activeBefore) {
    throw new InvalidInputError(`${field}.active_before`, "must be later than active_after");
  }
  return filter;
}

/** The etag of a stored version. */
export function etagOf(version: number): string {
  return `"v${version}"`;
}

/** The session a stored one is, with its global id and etag. */
export function sessionOf({ version, ...stored }: StoredSession): Session {
  return { ...stored, id: encodeSessionId(stored.namespaceId, stored.uuid), etag: etagOf(version) };
}
