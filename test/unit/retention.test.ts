import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { checkPolicy, cutoffsOf, isExpired } from "../../src/domain/retention.js";

const DAY = 86_400_000;
const now = Date.parse("2026-11-30T12:00:00Z");
const session = (createdDaysAgo: number, idleDaysAgo: number, labels: Record<string, string> = {}) => ({
  createTime: new Date(now - createdDaysAgo * DAY),
  lastActivityTime: new Date(now - idleDaysAgo * DAY),
  labels,
});

describe("isExpired", () => {
  const p = { maxAgeMs: 30 * DAY, maxIdleMs: 7 * DAY, purgeMemories: false, holdLabels: ["legal-hold"] };
  it.each([
    ["young and active", session(1, 0), false],
    ["past max_age", session(31, 0), true],
    ["past max_idle", session(10, 8), true],
    ["past both but on hold", session(40, 40, { "legal-hold": "" }), false],
    ["on another label only", session(40, 40, { other: "x" }), true],
  ])("%s", (_, s, expired) => {
    expect(isExpired(p, s, now)).toBe(expired);
  });

  it("never expires anything under a policy without session limits", () => {
    expect(isExpired({ purgeMemories: false, holdLabels: [], sessionlessTraceTtlMs: DAY }, session(1000, 1000), now)).toBe(false);
    expect(cutoffsOf({ purgeMemories: false, holdLabels: [] }, now)).toBeUndefined();
  });

  it("gives the cutoffs the database compares with", () => {
    expect(cutoffsOf(p, now)).toEqual({ createdBefore: new Date(now - 30 * DAY), idleBefore: new Date(now - 7 * DAY), holdLabels: ["legal-hold"] });
  });
});

describe("checkPolicy", () => {
  it("treats 0 as unset (keep forever) and removes repeated hold labels", () => {
    expect(checkPolicy({ maxAgeMs: 0, purgeMemories: true, holdLabels: ["a", "a"] })).toEqual({ maxAgeMs: undefined, maxIdleMs: undefined, purgeMemories: true, holdLabels: ["a"], sessionlessTraceTtlMs: undefined });
  });
  it("refuses more than 64 hold labels", () => {
    expect(() => checkPolicy({ purgeMemories: false, holdLabels: Array.from({ length: 65 }, (_, i) => `k${i}`) })).toThrow(/hold_labels: at most 64/);
  });
});

describe("the default policy from the environment", () => {
  it("reads durations with units, hold labels and purge", () => {
    const c = loadConfig({ SESSIOND_RETENTION_MAX_AGE: "90d", SESSIOND_RETENTION_MAX_IDLE: "12h", SESSIOND_RETENTION_SESSIONLESS_TRACE_TTL: "30m", SESSIOND_RETENTION_HOLD_LABELS: "legal-hold, audit", SESSIOND_RETENTION_PURGE_MEMORIES: "true" });
    expect(c.retentionDefault).toEqual({ maxAgeMs: 90 * DAY, maxIdleMs: 12 * 3_600_000, sessionlessTraceTtlMs: 30 * 60_000, holdLabels: ["legal-hold", "audit"], purgeMemories: true });
    expect(c.sweepIntervalMs).toBe(60_000);
  });
  it("keeps everything by default", () => {
    expect(loadConfig({}).retentionDefault).toEqual({ purgeMemories: false, holdLabels: [], maxAgeMs: undefined, maxIdleMs: undefined, sessionlessTraceTtlMs: undefined });
  });
  it.each([
    [{ SESSIOND_RETENTION_MAX_AGE: "90" }, /^SESSIOND_RETENTION_MAX_AGE: expected a duration/],
    [{ SESSIOND_RETENTION_MAX_IDLE: "10s" }, /^SESSIOND_RETENTION_MAX_IDLE: must be at least 1 minute/],
    [{ SESSIOND_RETENTION_HOLD_LABELS: "bad label" }, /^SESSIOND_RETENTION_HOLD_LABELS: /],
    [{ SESSIOND_RETENTION_PURGE_MEMORIES: "yes" }, /^SESSIOND_RETENTION_PURGE_MEMORIES: must be true or false/],
  ])("names the variable of a bad value %o", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
