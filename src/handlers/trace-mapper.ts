/**
 * Protobuf <-> domain conversions for spans, traces and annotations.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { InvalidInputError } from "../domain/errors.js";
import { encodeGlobalId, encodeSessionId } from "../domain/ids.js";
import type { Annotation as DomainAnnotation, AnnotationTargetInput, AnnotatorKind as DomainAnnotator, Span as DomainSpan, SpanInput, Trace as DomainTrace } from "../domain/trace-model.js";
import {
  AnnotationSchema,
  AnnotatorKind,
  SpanSchema,
  TraceSchema,
  type Annotation,
  type AnnotationTarget,
  type Span,
  type SpanKind,
  type StatusCode,
  type Trace,
} from "../../gen/sessiond/v1/trace_pb.js";

/** The first instants of years 1 and 10000 (ms since the epoch). */
const YEAR_1 = new Date("0001-01-01T00:00:00Z").getTime();
const YEAR_10000 = new Date("+010000-01-01T00:00:00Z").getTime();

/** `t` as a Date; `field` (made only for an error) names it when it is outside years 1 to 9999. */
function time(t: Timestamp | undefined, field: () => string): Date | undefined {
  if (!t) return undefined;
  const d = timestampDate(t);
  const ms = d.getTime();
  if (!(ms >= YEAR_1 && ms < YEAR_10000)) throw new InvalidInputError(field(), "must be a valid time between years 1 and 9999");
  return d;
}

/** protobuf Span -> domain span input (validated by the domain). */
export function spanFromProto(s: Span, at: string): SpanInput {
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    name: s.name,
    kind: s.kind,
    startTime: time(s.startTime, () => `${at}.start_time`),
    endTime: time(s.endTime, () => `${at}.end_time`),
    statusCode: s.statusCode,
    statusMessage: s.statusMessage,
    attributes: s.attributes ?? {},
    events: s.events.map((e, i) => ({ name: e.name, time: time(e.time, () => `${at}.events[${i}].time`) ?? new Date(0), attributes: e.attributes ?? {} })),
  };
}

/** Domain span -> protobuf Span. */
export function spanToProto(s: DomainSpan): Span {
  return create(SpanSchema, {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    name: s.name,
    kind: s.kind as SpanKind,
    startTime: timestampFromDate(s.startTime),
    endTime: timestampFromDate(s.endTime),
    statusCode: s.statusCode as StatusCode,
    statusMessage: s.statusMessage,
    attributes: s.attributes,
    events: s.events.map((e) => ({ name: e.name, time: timestampFromDate(e.time), attributes: e.attributes })),
  });
}

/** Domain trace -> protobuf Trace. */
export function traceToProto(t: DomainTrace): Trace {
  return create(TraceSchema, {
    id: encodeGlobalId("Trace", t.uuid),
    traceId: t.traceId,
    session: t.sessionUuid ? encodeSessionId(t.namespaceId, t.sessionUuid) : "",
    rootSpanName: t.rootSpanName,
    spanCount: t.spanCount,
    startTime: t.startTime ? timestampFromDate(t.startTime) : undefined,
    duration: t.startTime && t.endTime ? durationFromMs(t.endTime.getTime() - t.startTime.getTime()) : undefined,
    statusCode: t.statusCode as StatusCode,
  });
}

/** protobuf AnnotationTarget -> domain target input. */
export function targetFromProto(t: AnnotationTarget | undefined): AnnotationTargetInput {
  const v = t?.target;
  switch (v?.case) {
    case "session":
      return { kind: "session", id: v.value };
    case "sessionId":
      return { kind: "sessionId", sessionId: v.value };
    case "traceId":
      return { kind: "trace", traceId: v.value };
    case "span":
      return { kind: "span", traceId: v.value.traceId, spanId: v.value.spanId };
    default:
      return { kind: "none" };
  }
}

const ANNOTATOR: Record<DomainAnnotator, AnnotatorKind> = { human: AnnotatorKind.HUMAN, llm: AnnotatorKind.LLM, code: AnnotatorKind.CODE };

/** protobuf AnnotatorKind -> domain; undefined when unset. @throws InvalidInputError on unknown values */
export function annotatorFromProto(k: AnnotatorKind): DomainAnnotator | undefined {
  if (k === AnnotatorKind.UNSPECIFIED) return undefined;
  const found = (Object.keys(ANNOTATOR) as DomainAnnotator[]).find((d) => ANNOTATOR[d] === k);
  if (!found) throw new InvalidInputError("annotator_kind", `unknown kind ${k}`);
  return found;
}

/** Domain annotation -> protobuf Annotation. */
export function annotationToProto(a: DomainAnnotation): Annotation {
  const target =
    a.target.kind === "session"
      ? { case: "session" as const, value: encodeSessionId(a.target.namespaceId, a.target.sessionUuid) }
      : a.target.kind === "trace"
        ? { case: "traceId" as const, value: a.target.traceId }
        : { case: "span" as const, value: { traceId: a.target.traceId, spanId: a.target.spanId } };
  return create(AnnotationSchema, {
    id: encodeGlobalId("Annotation", a.uuid),
    target: { target },
    name: a.name,
    annotatorKind: ANNOTATOR[a.annotatorKind],
    label: a.label,
    score: a.score ?? undefined,
    explanation: a.explanation,
    metadata: a.metadata,
    identifier: a.identifier,
    createTime: timestampFromDate(a.createTime),
    updateTime: timestampFromDate(a.updateTime),
  });
}
