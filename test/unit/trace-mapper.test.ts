import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AnnotationTargetSchema, AnnotatorKind, SpanKind, SpanSchema, StatusCode } from "../../gen/sessiond/v1/trace_pb.js";
import { decodeGlobalId, decodeSessionId, encodeSessionId } from "../../src/domain/ids.js";
import type { AnnotatorKind as DomainAnnotator } from "../../src/domain/trace-model.js";
import { annotationToProto, annotatorFromProto, spanFromProto, spanToProto, targetFromProto, traceToProto } from "../../src/handlers/trace-mapper.js";
import { annotation, at, invalidInput, span, T0, trace } from "./support/factories.js";

describe("spans", () => {
  it("round-trip: a span written out and read back is the span recorded", () => {
    const s = span();
    expect(spanFromProto(spanToProto(s), "spans[0]")).toEqual(s);
  });

  it("round-trip a root span without attributes or events", () => {
    const s = span({ parentSpanId: "", attributes: {}, events: [], statusCode: 0, kind: 0 });
    expect(spanFromProto(spanToProto(s), "spans[0]")).toEqual(s);
  });

  it("pass kind and status code through as their OpenTelemetry numbers", () => {
    const p = spanToProto(span({ kind: 2, statusCode: 2, statusMessage: "boom" }));
    expect(p).toMatchObject({ kind: SpanKind.SERVER, statusCode: StatusCode.ERROR, statusMessage: "boom" });
  });

  it("leave unset times undefined for the domain to reject, and give unset attributes as {}", () => {
    const input = spanFromProto(create(SpanSchema, { traceId: "t", spanId: "s", name: "n", events: [{ name: "e" }] }), "spans[3]");
    expect(input).toMatchObject({ startTime: undefined, endTime: undefined, attributes: {} });
    expect(input.events).toEqual([{ name: "e", time: new Date(0), attributes: {} }]);
  });

  it("reject times outside years 1 to 9999, naming the span and the event", () => {
    const late = timestampFromMs(Date.UTC(10_000, 0, 1));
    expect(invalidInput(() => spanFromProto(create(SpanSchema, { startTime: late }), "spans[3]"))).toMatchObject({ field: "spans[3].start_time", reason: "must be a valid time between years 1 and 9999" });
    expect(invalidInput(() => spanFromProto(create(SpanSchema, { endTime: late }), "spans[3]")).field).toBe("spans[3].end_time");
    expect(invalidInput(() => spanFromProto(create(SpanSchema, { events: [{ name: "a" }, { name: "b", time: late }] }), "spans[0]")).field).toBe("spans[0].events[1].time");
  });
});

describe("traceToProto", () => {
  it("maps a trace with its session, start time and duration", () => {
    const t = trace();
    const p = traceToProto(t);
    expect(p).toMatchObject({ traceId: t.traceId, rootSpanName: "agent.run", spanCount: 4, statusCode: StatusCode.ERROR });
    expect(decodeGlobalId("Trace", p.id)).toBe(t.uuid);
    expect(decodeSessionId(p.session)).toEqual({ namespaceId: t.namespaceId, uuid: t.sessionUuid });
    expect(timestampDate(p.startTime!)).toEqual(T0);
    expect(durationMs(p.duration!)).toBe(1_500);
  });

  it("leaves session empty for a trace under no session, and start and duration unset before any span", () => {
    const p = traceToProto(trace({ sessionUuid: null, startTime: null, endTime: null }));
    expect(p.session).toBe("");
    expect(p.startTime).toBeUndefined();
    expect(p.duration).toBeUndefined();
  });
});

describe("annotation targets", () => {
  it.each([
    ["a session by global id", { case: "session" as const, value: "U2Vzc2lvbjp4" }, { kind: "session", id: "U2Vzc2lvbjp4" }],
    ["a session by caller id", { case: "sessionId" as const, value: "chat-1" }, { kind: "sessionId", sessionId: "chat-1" }],
    ["a trace", { case: "traceId" as const, value: "abc" }, { kind: "trace", traceId: "abc" }],
    ["a span", { case: "span" as const, value: { traceId: "abc", spanId: "def" } }, { kind: "span", traceId: "abc", spanId: "def" }],
  ])("map %s", (_name, target, expected) => {
    expect(targetFromProto(create(AnnotationTargetSchema, { target }))).toEqual(expected);
  });

  it("give kind none for an unset target or an unset message", () => {
    expect(targetFromProto(create(AnnotationTargetSchema))).toEqual({ kind: "none" });
    expect(targetFromProto(undefined)).toEqual({ kind: "none" });
  });
});

describe("annotator kinds", () => {
  it.each([
    [AnnotatorKind.HUMAN, "human"],
    [AnnotatorKind.LLM, "llm"],
    [AnnotatorKind.CODE, "code"],
  ] as [AnnotatorKind, DomainAnnotator][])("map the enum %d to %s and back", (proto, domain) => {
    expect(annotatorFromProto(proto)).toBe(domain);
    expect(annotationToProto(annotation({ annotatorKind: domain })).annotatorKind).toBe(proto);
  });

  it("read UNSPECIFIED as unset and reject an unknown number, naming annotator_kind", () => {
    expect(annotatorFromProto(AnnotatorKind.UNSPECIFIED)).toBeUndefined();
    expect(invalidInput(() => annotatorFromProto(9 as AnnotatorKind))).toMatchObject({ field: "annotator_kind", reason: "unknown kind 9" });
  });
});

describe("annotationToProto", () => {
  it("maps every field of an annotation on a session, its target as the session's global id", () => {
    const a = annotation();
    const p = annotationToProto(a);
    expect(p).toMatchObject({ name: "quality", annotatorKind: AnnotatorKind.LLM, label: "good", score: 0.75, explanation: "answered the question", metadata: { judge: "j1" }, identifier: "judge-1" });
    expect(decodeGlobalId("Annotation", p.id)).toBe(a.uuid);
    const target = a.target as { namespaceId: string; sessionUuid: string };
    expect(p.target?.target).toEqual({ case: "session", value: encodeSessionId(target.namespaceId, target.sessionUuid) });
    expect(timestampDate(p.createTime!)).toEqual(T0);
    expect(timestampDate(p.updateTime!)).toEqual(at(5));
  });

  it("gives a trace target as its OpenTelemetry trace id and a span target as both ids", () => {
    expect(annotationToProto(annotation({ target: { kind: "trace", traceId: "abc" } })).target?.target).toEqual({ case: "traceId", value: "abc" });
    const spanTarget = annotationToProto(annotation({ target: { kind: "span", traceId: "abc", spanId: "def" } })).target?.target;
    expect(spanTarget?.case).toBe("span");
    expect(spanTarget?.value).toMatchObject({ traceId: "abc", spanId: "def" });
  });

  it("leaves score unset when there is none, and keeps a score of 0", () => {
    expect(annotationToProto(annotation({ score: null })).score).toBeUndefined();
    expect(annotationToProto(annotation({ score: 0 })).score).toBe(0);
  });
});
