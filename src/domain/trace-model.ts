/**
 * Traces, spans and annotations as the domain sees them (no protobuf, no SQL), with the rules and
 * limits for their fields.
 */
import { InvalidInputError } from "./errors.js";
import { checkData, checkedJson, checkText, textOk, type JsonObject, type JsonValue } from "./session-model.js";

/** A span to record (times already decoded; undefined when missing). */
export interface SpanInput {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  /** OpenTelemetry span kind, 0 to 5. */
  kind: number;
  startTime: Date | undefined;
  endTime: Date | undefined;
  /** OpenTelemetry status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  attributes: JsonObject;
  events: SpanEvent[];
}

/** An event during a span. */
export interface SpanEvent {
  name: string;
  time: Date;
  attributes: JsonObject;
}

/** A checked span, as stored. */
export interface Span extends SpanInput {
  startTime: Date;
  endTime: Date;
  /**
   * The attributes and events as the JSON text validation measured (set by checkSpan), so that the
   * writer does not serialize them a second time.
   */
  attributesJson?: string;
  eventsJson?: string;
}

/** A trace as listed. */
export interface Trace {
  uuid: string;
  /** Database id of its namespace (and its session's). */
  namespaceId: string;
  traceId: string;
  /** Database id of its session; null for a trace under no session. */
  sessionUuid: string | null;
  rootSpanName: string;
  spanCount: number;
  startTime: Date | null;
  endTime: Date | null;
  statusCode: number;
}

export type AnnotatorKind = "human" | "llm" | "code";

/** What an annotation is about, as it arrives. */
export type AnnotationTargetInput =
  | { kind: "session"; id: string }
  | { kind: "sessionId"; sessionId: string }
  | { kind: "trace"; traceId: string }
  | { kind: "span"; traceId: string; spanId: string }
  | { kind: "none" };

/** A stored annotation. */
export interface Annotation {
  uuid: string;
  /** A session target names the session's namespace too (its global id carries it). */
  target: { kind: "session"; namespaceId: string; sessionUuid: string } | { kind: "trace"; traceId: string } | { kind: "span"; traceId: string; spanId: string };
  name: string;
  annotatorKind: AnnotatorKind;
  label: string;
  score: number | null;
  explanation: string;
  metadata: JsonObject;
  identifier: string;
  createTime: Date;
  updateTime: Date;
}

export const MAX_SPANS_PER_CALL = 1000;
export const MAX_SPAN_NAME = 1024;
export const MAX_STATUS_MESSAGE = 4096;
export const MAX_ATTRIBUTES_BYTES = 32 * 1024;
export const MAX_EVENTS = 128;
export const MAX_EVENTS_BYTES = 64 * 1024;
export const MAX_TRACE_IDS_PER_CALL = 1000;
export const MAX_EXPLANATION_BYTES = 16 * 1024;
export const MAX_ANNOTATION_METADATA_BYTES = 16 * 1024;

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

const ALL_ZERO = /^0+$/;
/** A trace id as checkTraceId returns it (lowercase hex, not all zero). */
const isTraceId = (v: string) => TRACE_ID.test(v) && !ALL_ZERO.test(v);
/** A span id as checkSpanId returns it. */
const isSpanId = (v: string) => SPAN_ID.test(v) && !ALL_ZERO.test(v);

/** Checks a trace id (32 hex characters, not all zero) and returns it in lowercase. */
export function checkTraceId(value: string, field = "trace_id"): string {
  const id = value.toLowerCase();
  if (!TRACE_ID.test(id) || /^0+$/.test(id)) throw new InvalidInputError(field, "must be 32 hex characters, not all zero");
  return id;
}

/** Checks a span id (16 hex characters, not all zero) and returns it in lowercase. */
export function checkSpanId(value: string, field = "span_id"): string {
  const id = value.toLowerCase();
  if (!SPAN_ID.test(id) || /^0+$/.test(id)) throw new InvalidInputError(field, "must be 16 hex characters, not all zero");
  return id;
}

/** Checks one span; errors name `at` (e.g. spans[3]). Returns it normalized (lowercase ids). */
export function checkSpan(s: SpanInput, at: string): Span {
  // Field names (`spans[3].name`) are made only for an error: a call checks up to 1,000 spans.
  const traceId = isTraceId(s.traceId) ? s.traceId : checkTraceId(s.traceId, `${at}.trace_id`);
  const spanId = isSpanId(s.spanId) ? s.spanId : checkSpanId(s.spanId, `${at}.span_id`);
  const parentSpanId = !s.parentSpanId ? "" : isSpanId(s.parentSpanId) ? s.parentSpanId : checkSpanId(s.parentSpanId, `${at}.parent_span_id`);
  if (s.name === "" || !textOk(s.name, MAX_SPAN_NAME)) checkText(`${at}.name`, s.name, MAX_SPAN_NAME, { required: true });
  if (!Number.isInteger(s.kind) || s.kind < 0 || s.kind > 5) throw new InvalidInputError(`${at}.kind`, `unknown kind ${s.kind}`);
  if (!s.startTime) throw new InvalidInputError(`${at}.start_time`, "is required");
  if (!s.endTime) throw new InvalidInputError(`${at}.end_time`, "is required");
  if (s.endTime < s.startTime) throw new InvalidInputError(`${at}.end_time`, "must not be before start_time");
  if (!Number.isInteger(s.statusCode) || s.statusCode < 0 || s.statusCode > 2) throw new InvalidInputError(`${at}.status_code`, `unknown status code ${s.statusCode}`);
  if (!textOk(s.statusMessage, MAX_STATUS_MESSAGE)) checkText(`${at}.status_message`, s.statusMessage, MAX_STATUS_MESSAGE);
  const attributesJson = checkedJson(s.attributes, () => `${at}.attributes`, MAX_ATTRIBUTES_BYTES);
  if (s.events.length > MAX_EVENTS) throw new InvalidInputError(`${at}.events`, `at most ${MAX_EVENTS}, got ${s.events.length}`);
  let eventsJson = "[]";
  if (s.events.length) {
    s.events.forEach((e, i) => checkText(`${at}.events[${i}].name`, e.name, MAX_SPAN_NAME, { required: true }));
    try {
      // The events serialized once; what they hold is checked with them (an event's attributes can
      // only be too large if all the events are).
      eventsJson = checkedJson(s.events as unknown as JsonValue, `${at}.events`, MAX_EVENTS_BYTES);
    } catch (err) {
      // Name the event at fault when one is.
      s.events.forEach((e, i) => checkData(e.attributes, `${at}.events[${i}].attributes`, MAX_EVENTS_BYTES));
      throw err;
    }
  }
  return { ...s, traceId, spanId, parentSpanId, startTime: s.startTime, endTime: s.endTime, attributesJson, eventsJson };
}

/** Checks a RecordSpans batch; errors name the span, e.g. spans[3].end_time. */
export function checkSpans(spans: SpanInput[]): Span[] {
  if (spans.length === 0) throw new InvalidInputError("spans", "must hold at least one span");
  if (spans.length > MAX_SPANS_PER_CALL) throw new InvalidInputError("spans", `at most ${MAX_SPANS_PER_CALL} per call, got ${spans.length}`);
  return spans.map((s, i) => checkSpan(s, `spans[${i}]`));
}

/** Orders a trace's spans as a tree: parents before children, siblings by start time; orphans are roots. */
export function spanTree(spans: Span[]): { span: Span; depth: number }[] {
  const byStart = [...spans].sort((a, b) => a.startTime.getTime() - b.startTime.getTime() || a.spanId.localeCompare(b.spanId));
  const ids = new Set(byStart.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of byStart) {
    if (s.parentSpanId && ids.has(s.parentSpanId) && s.parentSpanId !== s.spanId) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else {
      roots.push(s);
    }
  }
  const out: { span: Span; depth: number }[] = [];
  const seen = new Set<string>();
  const visit = (s: Span, depth: number) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    out.push({ span: s, depth });
    for (const c of children.get(s.spanId) ?? []) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  // Spans caught in a parent cycle (a malformed trace) still appear, as roots.
  for (const s of byStart) visit(s, 0);
  return out;
}
