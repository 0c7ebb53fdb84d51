/**
 * The storage TraceService needs (trace-service.ts), declared by the domain and implemented in db/.
 */
import type { Cursor } from "./page-token.js";
import type { Annotation, AnnotatorKind, Span, Trace } from "./trace-model.js";

/** What RecordSpans stored. */
export interface RecordResult {
  recorded: number;
  duplicate: number;
  tracesCreated: number;
}

/** An annotation target, resolved to what the store keeps. */
export interface ResolvedTarget {
  kind: "session" | "trace" | "span";
  /** The session the target belongs to (counted there), if any. */
  sessionUuid: string | null;
  traceUuid: string | null;
  spanRowId: string | null;
  /** The OpenTelemetry trace id of a trace or span target (null for a session). */
  otelTraceId: string | null;
  /** The OpenTelemetry span id of a span target (null otherwise). */
  otelSpanId: string | null;
  /** Names the target among all of the namespace's: annotations are listed by it. */
  key: string;
}

/** Values of an annotation. */
export interface AnnotationValues {
  name: string;
  annotatorKind: AnnotatorKind;
  label: string;
  score: number | null;
  explanation: string;
  metadata: Record<string, unknown>;
  identifier: string;
}

/** What TraceStore.delete removed. */
export interface DeletedTraces {
  traces: number;
  spans: number;
  annotations: number;
}

/** Trace, span and annotation storage bound to one connection or transaction. */
export interface TraceStore {
  /**
   * Stores spans, atomically (no transaction needed): when `sessionUuid` is given, that session is
   * locked first and nothing is written unless it is active (else its state comes back as `refused`).
   * Creates missing traces under `sessionUuid`, stores the spans that are new (a span already stored,
   * or named twice in the call, is a duplicate), folds them into their traces' summaries, and counts
   * them on the traces' sessions. Spans of a trace that exists go to that trace, whatever session it
   * belongs to.
   */
  record(namespaceId: string, sessionUuid: string | null, spans: Span[]): Promise<RecordResult | { refused: "missing" | "cancelled" | "soft_deleted" }>;
  /** One page of a session's traces (or those under no session), newest first. */
  list(namespaceId: string, sessionUuid: string | null, after: Cursor | undefined, limit: number): Promise<(Trace & { createTime: Date })[]>;
  /** A trace by OpenTelemetry id, with (the earliest of) its spans. */
  get(namespaceId: string, traceId: string): Promise<{ trace: Trace; spans: Span[] } | undefined>;
  /** Deletes traces (call inside a transaction); their spans and annotations go with them and are counted. */
  delete(namespaceId: string, traceIds: string[]): Promise<DeletedTraces>;
  /**
   * Resolves a trace or span target; undefined when it does not exist in the namespace. In a
   * transaction it keeps the target from being deleted until commit, so an annotation stored next
   * cannot lose it.
   */
  resolve(namespaceId: string, traceId: string, spanId?: string): Promise<ResolvedTarget | undefined>;
  /** Inserts, or with an identifier upserts, an annotation (call inside a transaction); counts new ones on the session. */
  annotate(namespaceId: string, target: ResolvedTarget, values: AnnotationValues): Promise<{ annotation: Annotation; created: boolean }>;
  /** One page of a target's annotations (by its key), newest first. */
  annotations(namespaceId: string, key: string, after: Cursor | undefined, limit: number): Promise<Annotation[]>;
}
