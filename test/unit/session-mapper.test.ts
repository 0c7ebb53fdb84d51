import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { SessionFilterSchema, SessionSchema, SessionState } from "../../gen/sessiond/v1/session_pb.js";
import type { SessionState as DomainState } from "../../src/domain/session-model.js";
import { clientSecretToProto, dataFromProto, deletedCountsToProto, durationToMs, filterFromProto, sessionToProto } from "../../src/handlers/session-mapper.js";
import { at, invalidInput, session, T0 } from "./support/factories.js";

describe("sessionToProto", () => {
  it("maps every field of a session", () => {
    const s = session();
    const p = sessionToProto(s);
    expect(p).toMatchObject({
      id: s.id,
      sessionId: "chat-1",
      namespace: "default",
      user: "alice@example.com",
      workflow: { id: "support", version: "3" },
      data: s.data,
      labels: { team: "core", tier: "gold" },
      state: SessionState.ACTIVE,
      etag: '"v1"',
      stats: s.stats,
      maxRequestsPerMinute: 10,
    });
    expect(timestampDate(p.createTime!)).toEqual(T0);
    expect(timestampDate(p.updateTime!)).toEqual(at(1_000));
    expect(timestampDate(p.lastActivityTime!)).toEqual(at(2_000));
    expect(timestampDate(p.expireTime!)).toEqual(at(600_000));
  });

  it("leaves delete_time unset for a live session and sets it for a soft-deleted one", () => {
    expect(sessionToProto(session()).deleteTime).toBeUndefined();
    const p = sessionToProto(session({ state: "soft_deleted", deleteTime: at(2_000) }));
    expect(p.state).toBe(SessionState.SOFT_DELETED);
    expect(timestampDate(p.deleteTime!)).toEqual(at(2_000));
  });

  it.each([
    ["active", SessionState.ACTIVE],
    ["cancelled", SessionState.CANCELLED],
    ["soft_deleted", SessionState.SOFT_DELETED],
  ] as [DomainState, SessionState][])("maps the state %s to its enum value", (state, proto) => {
    expect(sessionToProto(session({ state })).state).toBe(proto);
  });

  it("survives the wire: binary encoding and decoding give the same message", () => {
    const p = sessionToProto(session({ data: {}, labels: {} }));
    expect(fromBinary(SessionSchema, toBinary(SessionSchema, p))).toEqual(p);
    const full = sessionToProto(session({ deleteTime: at(3) }));
    expect(fromBinary(SessionSchema, toBinary(SessionSchema, full))).toEqual(full);
  });
});

describe("filterFromProto", () => {
  it("gives an empty filter when the message is unset", () => {
    expect(filterFromProto(undefined)).toEqual({});
  });

  it("drops unset fields: empty strings, UNSPECIFIED state, no labels, no times", () => {
    expect(filterFromProto(create(SessionFilterSchema))).toEqual({
      user: undefined,
      state: undefined,
      workflowId: undefined,
      labels: undefined,
      createTimeAfter: undefined,
      createTimeBefore: undefined,
      activeAfter: undefined,
      activeBefore: undefined,
    });
  });

  it("maps every field that is set", () => {
    const f = create(SessionFilterSchema, {
      user: "u",
      state: SessionState.CANCELLED,
      workflowId: "w",
      labels: { a: "b" },
      createTimeAfter: timestampFromDate(T0),
      createTimeBefore: timestampFromDate(at(60_000)),
      activeAfter: timestampFromDate(at(1_000)),
      activeBefore: timestampFromDate(at(2_000)),
    });
    expect(filterFromProto(f)).toEqual({
      user: "u",
      state: "cancelled",
      workflowId: "w",
      labels: { a: "b" },
      createTimeAfter: T0,
      createTimeBefore: at(60_000),
      activeAfter: at(1_000),
      activeBefore: at(2_000),
    });
  });

  it.each([
    [SessionState.ACTIVE, "active"],
    [SessionState.CANCELLED, "cancelled"],
    [SessionState.SOFT_DELETED, "soft_deleted"],
  ] as [SessionState, DomainState][])("maps the state enum %d to %s", (state, domain) => {
    expect(filterFromProto(create(SessionFilterSchema, { state })).state).toBe(domain);
  });

  it("rejects a state number it does not know, naming the field under the given path", () => {
    const err = invalidInput(() => filterFromProto(create(SessionFilterSchema, { state: 99 as SessionState }), "filter.filter"));
    expect(err.field).toBe("filter.filter.state");
    expect(err.reason).toBe("unknown state 99");
  });

  it("rejects times outside years 1 to 9999, naming the bound", () => {
    const tooLate = create(SessionFilterSchema, { createTimeAfter: timestampFromMs(Date.UTC(10_000, 0, 1)) });
    expect(invalidInput(() => filterFromProto(tooLate))).toMatchObject({ field: "filter.create_time_after", reason: "must be a valid time between years 1 and 9999" });
    const tooEarly = create(SessionFilterSchema, { createTimeBefore: { seconds: -62_200_000_000n, nanos: 0 } });
    expect(invalidInput(() => filterFromProto(tooEarly)).field).toBe("filter.create_time_before");
  });

  it("keeps the first and last instants of the allowed range", () => {
    const first = new Date("0001-01-01T00:00:00.000Z");
    const last = new Date("9999-12-31T23:59:59.999Z");
    const f = filterFromProto(create(SessionFilterSchema, { createTimeAfter: timestampFromDate(first), createTimeBefore: timestampFromDate(last) }));
    expect(f.createTimeAfter).toEqual(first);
    expect(f.createTimeBefore).toEqual(last);
  });
});

const duration = (seconds: bigint, nanos: number) => create(DurationSchema, { seconds, nanos });

describe("durationToMs", () => {
  it("is undefined when the duration is unset", () => {
    expect(durationToMs(undefined, "expires_after")).toBeUndefined();
  });

  it("converts seconds and nanos to ms", () => {
    expect(durationToMs(duration(90n, 0), "expires_after")).toBe(90_000);
    expect(durationToMs(duration(1n, 500_000_000), "expires_after")).toBe(1_500);
    expect(durationToMs(duration(0n, 0), "expires_after")).toBe(0);
  });

  it("rejects a negative duration, naming the field", () => {
    expect(invalidInput(() => durationToMs(duration(-1n, 0), "expires_after"))).toMatchObject({ field: "expires_after", reason: "must be positive" });
    expect(invalidInput(() => durationToMs(duration(0n, -1), "config.timeout")).field).toBe("config.timeout");
  });
});

describe("small conversions", () => {
  it("deletedCountsToProto copies every count", () => {
    const counts = { participants: 2, turns: 10, traces: 1, spans: 5, annotations: 3, archivedTurns: 4, compactions: 2 };
    expect(deletedCountsToProto(counts)).toMatchObject(counts);
  });

  it("clientSecretToProto carries the value and the expiry", () => {
    const p = clientSecretToProto({ value: "cs_abc", expireTime: at(600_000) });
    expect(p.value).toBe("cs_abc");
    expect(timestampDate(p.expireTime!)).toEqual(at(600_000));
  });

  it("dataFromProto gives an empty object for unset data and the object itself otherwise", () => {
    expect(dataFromProto(undefined)).toEqual({});
    const data = { a: [1, { b: null }] };
    expect(dataFromProto(data)).toBe(data);
  });
});
