/**
 * OTLP trace ingestion's rules, for both OTLP transports (handlers/otlp.ts maps their messages to
 * these types and back):
 * - a span's session is its `session.id` attribute (the OpenInference convention), else its
 *   resource's; spans naming a session are recorded in it (created if missing), the others under none;
 * - a span that breaks the rules of RecordSpans (malformed ids, end before start, over a limit, a bad
 *   session.id) is rejected alone, and so are the spans of a session that refuses spans (cancelled or
 *   deleted): an export answers how many spans it rejected and the first reason (OTLP's
 *   partial_success) instead of failing whole;
 * - anything else (an invalid namespace, the database down) fails the whole export.
 */
import { InvalidInputError, PreconditionError } from "./errors.js";
import { checkText, type JsonObject, type JsonValue } from "./session-model.js";
import { checkSpan, MAX_SPANS_PER_CALL, type SpanInput } from "./trace-model.js";
import type { RecordSpansInput } from "./trace-service.js";

/** The attribute naming the session of a span (on the span, else on its resource). */
export const SESSION_ATTRIBUTE = "session.id";
const SESSION_FIELD = "span.attributes[session.id]";

/** A span of an export, as domain values, with the attributes of the resource that sent it. */
export interface IngestSpan extends SpanInput {
  /** The resource's attributes (shared by the spans of one resource); `session.id` may be here. */
  resourceAttributes: JsonObject;
}

/** An export: its spans in the order they came, and the namespace they go to ("" for the default). */
export interface IngestRequest {
  namespace: string;
  spans: IngestSpan[];
}

/** What an export did not record: how many spans, and the first reason (both 0 / "" when all were). */
export interface IngestResult {
  rejectedSpans: number;
  errorMessage: string;
}

/** Spans recorded in one RecordSpans call: one session's ("" for none), at most MAX_SPANS_PER_CALL. */
export interface IngestBatch {
  sessionId: string;
  spans: SpanInput[];
}

/** How an export is recorded: its batches in order, and the spans rejected before any is recorded. */
export interface IngestPlan extends IngestResult {
  batches: IngestBatch[];
}

/** What ingestion needs of the tracing service (domain/trace-service.ts): RecordSpans, creating sessions. */
export interface SpanRecorder {
  record(input: RecordSpansInput, opts: { createSession?: boolean }): Promise<unknown>;
}

/** The session a span names: its own `session.id` attribute, else its resource's; undefined for none. */
export function sessionOf(span: IngestSpan): JsonValue | undefined {
  return span.attributes[SESSION_ATTRIBUTE] ?? span.resourceAttributes[SESSION_ATTRIBUTE];
}

/** A span's session id, checked with the span. @throws InvalidInputError */
function checkedSessionId(span: IngestSpan): string {
  checkSpan(span, "span");
  const session = sessionOf(span);
  if (session === undefined) return "";
  if (typeof session !== "string") throw new InvalidInputError(SESSION_FIELD, "must be a string");
  return checkText(SESSION_FIELD, session, 256, { required: true, id: true });
}

/**
 * Groups an export's valid spans by session, in batches of at most `maxPerBatch`, and counts the
 * invalid ones. Batches of spans naming a session come first: a trace keeps the session of its first
 * stored span, so a root span without session.id must not make its trace sessionless when its
 * children name the session. Within a session, spans keep their order. Pure.
 */
export function planIngest(spans: IngestSpan[], maxPerBatch = MAX_SPANS_PER_CALL): IngestPlan {
  const groups = new Map<string, SpanInput[]>();
  let rejectedSpans = 0;
  let errorMessage = "";
  for (const span of spans) {
    let sessionId: string;
    try {
      sessionId = checkedSessionId(span);
    } catch (err) {
      rejectedSpans++;
      errorMessage ||= err instanceof Error ? err.message : String(err);
      continue;
    }
    const { resourceAttributes: _resource, ...input } = span;
    const group = groups.get(sessionId) ?? [];
    group.push(input);
    groups.set(sessionId, group);
  }
  const batches: IngestBatch[] = [];
  const ordered = [...groups].sort(([a], [b]) => (a === "" ? 1 : 0) - (b === "" ? 1 : 0));
  for (const [sessionId, group] of ordered) {
    for (let i = 0; i < group.length; i += maxPerBatch) batches.push({ sessionId, spans: group.slice(i, i + maxPerBatch) });
  }
  return { batches, rejectedSpans, errorMessage };
}

/** OTLP ingestion over the tracing service. */
export interface OtlpIngest {
  /**
   * Records an export (see the file comment); returns what it rejected.
   * @throws InvalidInputError for an invalid namespace; any error but a session refusing spans
   */
  ingest(request: IngestRequest): Promise<IngestResult>;
}

/** Ingestion recording through `tracing` (one RecordSpans call per batch). */
export function createOtlpIngest(tracing: SpanRecorder): OtlpIngest {
  return {
    async ingest(request) {
      const plan = planIngest(request.spans);
      let { rejectedSpans, errorMessage } = plan;
      for (const batch of plan.batches) {
        try {
          await tracing.record({ namespace: request.namespace, session: "", sessionId: batch.sessionId, spans: batch.spans }, { createSession: true });
        } catch (err) {
          // A session that refuses spans (cancelled or deleted) rejects its spans, not the whole export.
          if (!(err instanceof PreconditionError)) throw err;
          rejectedSpans += batch.spans.length;
          errorMessage ||= err.message;
        }
      }
      return { rejectedSpans, errorMessage };
    },
  };
}
