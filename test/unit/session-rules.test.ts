import { describe, expect, it } from "vitest";
import {
  checkData,
  checkExpiresAfter,
  checkFilter,
  checkLabels,
  checkMaxRequestsPerMinute,
  checkNamespace,
  checkPageSize,
  checkText,
  DEFAULT_EXPIRES_AFTER_MS,
  DEFAULT_MAX_REQUESTS_PER_MINUTE,
  DEFAULT_PAGE_SIZE,
  etagOf,
  type JsonObject,
  MAX_DATA_BYTES,
  MAX_EXPIRES_AFTER_MS,
  MAX_LABEL_KEY,
  MAX_LABEL_VALUE,
  MAX_LABELS,
  MAX_PAGE_SIZE,
  MAX_REQUESTS_PER_MINUTE,
} from "../../src/domain/session-model.js";
import { at, invalidInput, T0 } from "./support/factories.js";

/** `n` labels k0..k(n-1). */
const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]));

describe("checkNamespace", () => {
  it("gives the default namespace for an empty one", () => {
    expect(checkNamespace("")).toBe("default");
  });

  it.each(["a", "0", "team-a", "team_a.prod", "a".repeat(63)])("accepts %s", (ns) => {
    expect(checkNamespace(ns)).toBe(ns);
  });

  it.each(["Team", "-a", ".a", "_a", "a b", "a/b", "a".repeat(64), "é", "a\n"])("rejects %j, naming the field", (ns) => {
    const err = invalidInput(() => checkNamespace(ns));
    expect(err.field).toBe("namespace");
    expect(err.reason).toBe("must be 1 to 63 characters of [a-z0-9_.-], starting with a letter or digit");
  });

  it("names the field it is given", () => {
    expect(invalidInput(() => checkNamespace("A", "filter.namespace")).field).toBe("filter.namespace");
  });
});

describe("checkText", () => {
  it("returns what it accepts, the limit itself included, counted in characters (code points)", () => {
    expect(checkText("user", "", 3)).toBe("");
    expect(checkText("user", "abc", 3)).toBe("abc");
    expect(checkText("user", "😀😀😀", 3)).toBe("😀😀😀");
  });

  it("counts code points where UTF-16 units would say otherwise", () => {
    // 4 code points in 8 units: within a limit of 4 though longer than 4 units; 5 emoji are over it.
    expect(checkText("user", "😀😀😀😀", 4)).toBe("😀😀😀😀");
    expect(invalidInput(() => checkText("user", "😀😀😀😀😀", 4)).reason).toBe("must be at most 4 characters");
    expect(invalidInput(() => checkText("user", "😀😀a", 2)).reason).toBe("must be at most 2 characters");
  });

  it("rejects a value over the limit, naming the field and the limit", () => {
    const err = invalidInput(() => checkText("session_id", "abcd", 3));
    expect(err.field).toBe("session_id");
    expect(err.reason).toBe("must be at most 3 characters");
  });

  it("rejects an empty required value", () => {
    expect(invalidInput(() => checkText("display_name", "", 10, { required: true })).message).toBe("display_name: is required");
  });

  it("rejects control characters in ids only", () => {
    for (const c of ["\t", "\n", "\u001b", "\u007f", "\u0085"]) {
      expect(invalidInput(() => checkText("session_id", `a${c}b`, 10, { id: true })).reason).toBe("must not contain control characters");
      expect(checkText("content", `a${c}b`, 10)).toBe(`a${c}b`);
    }
  });

  it("rejects NUL characters and lone surrogates everywhere (Postgres text cannot hold them)", () => {
    expect(invalidInput(() => checkText("content", "a\u0000b", 10)).reason).toBe("must not contain NUL characters");
    expect(invalidInput(() => checkText("content", "a\ud800b", 10)).reason).toBe("must be valid Unicode (a lone surrogate was found)");
    expect(invalidInput(() => checkText("content", "\udc00", 10)).field).toBe("content");
  });
});

describe("checkLabels", () => {
  it("accepts up to MAX_LABELS labels with keys and values at their limits", () => {
    const m = labels(MAX_LABELS);
    expect(checkLabels(m)).toBe(m);
    const edge = { ["k".repeat(MAX_LABEL_KEY)]: "v".repeat(MAX_LABEL_VALUE), "A.b_c-9": "" };
    expect(checkLabels(edge)).toBe(edge);
  });

  it("rejects more than MAX_LABELS labels, naming the field and the count", () => {
    const err = invalidInput(() => checkLabels(labels(MAX_LABELS + 1)));
    expect(err.field).toBe("labels");
    expect(err.reason).toBe(`at most ${MAX_LABELS} labels, got ${MAX_LABELS + 1}`);
  });

  it.each(["", "a b", "a/b", "ä", "k".repeat(MAX_LABEL_KEY + 1)])("rejects the key %j, naming it in the field path", (key) => {
    const err = invalidInput(() => checkLabels({ [key]: "v" }));
    expect(err.field).toBe(`labels[${JSON.stringify(key.slice(0, 80))}]`);
    expect(err.reason).toBe(`key must be 1 to ${MAX_LABEL_KEY} characters of [A-Za-z0-9_.-]`);
  });

  it("rejects a value over the limit or with a NUL, naming the label", () => {
    expect(invalidInput(() => checkLabels({ tier: "v".repeat(MAX_LABEL_VALUE + 1) }))).toMatchObject({ field: 'labels["tier"]', reason: `must be at most ${MAX_LABEL_VALUE} characters` });
    expect(invalidInput(() => checkLabels({ tier: "a\u0000" }, "filter.labels")).field).toBe('filter.labels["tier"]');
  });
});

describe("checkData", () => {
  it("accepts JSON objects up to MAX_DATA_BYTES as JSON", () => {
    const data = { s: "x".repeat(MAX_DATA_BYTES - 8) }; // {"s":"…"} is 8 bytes of syntax
    expect(Buffer.byteLength(JSON.stringify(data))).toBe(MAX_DATA_BYTES);
    expect(checkData(data)).toBe(data);
  });

  it("rejects one byte more, counting UTF-8 bytes, naming the field and the size", () => {
    const err = invalidInput(() => checkData({ s: "x".repeat(MAX_DATA_BYTES - 7) }));
    expect(err.field).toBe("data");
    expect(err.reason).toBe(`must be at most ${MAX_DATA_BYTES} bytes as JSON, got ${MAX_DATA_BYTES + 1}`);
    expect(invalidInput(() => checkData({ s: "é".repeat(6) }, "metadata", 16)).reason).toBe("must be at most 16 bytes as JSON, got 20");
  });

  it("rejects NUL characters and lone surrogates in values and keys, at any depth", () => {
    const cases: JsonObject[] = [{ a: "\u0000" }, { "k\u0000": 1 }, { a: [1, { b: "\ud800" }] }, { a: { "\udfff": true } }];
    for (const data of cases) {
      const err = invalidInput(() => checkData(data, "metadata"));
      expect(err.field).toBe("metadata");
      expect(err.reason).toBe("must not contain NUL characters or lone surrogates (Postgres jsonb cannot store them)");
    }
  });

  it("accepts text that only looks like an escaped NUL or surrogate, and paired surrogates", () => {
    const data = { a: "\\u0000 and \\ud800, written out", "\\uD83D": "😀", b: ["x\\u0000"] };
    expect(checkData(data)).toBe(data);
  });

  it("accepts numbers, booleans, null and nested arrays", () => {
    const data = { n: -1.5e10, b: false, z: null, l: [[1], [{ x: "y" }]] };
    expect(checkData(data)).toBe(data);
  });
});

describe("checkExpiresAfter", () => {
  it("defaults when unset and accepts up to 24 hours", () => {
    expect(checkExpiresAfter(undefined)).toBe(DEFAULT_EXPIRES_AFTER_MS);
    expect(checkExpiresAfter(1)).toBe(1);
    expect(checkExpiresAfter(MAX_EXPIRES_AFTER_MS)).toBe(MAX_EXPIRES_AFTER_MS);
  });

  it.each([
    [0, "must be positive"],
    [-5, "must be positive"],
    [Number.NaN, "must be positive"],
    [MAX_EXPIRES_AFTER_MS + 1, "must be at most 86400 seconds (24 hours)"],
  ])("rejects %d ms, naming expires_after", (ms, reason) => {
    expect(invalidInput(() => checkExpiresAfter(ms))).toMatchObject({ field: "expires_after", reason });
  });
});

describe("checkMaxRequestsPerMinute", () => {
  it("gives the default for 0 and accepts 1 to the maximum", () => {
    expect(checkMaxRequestsPerMinute(0)).toBe(DEFAULT_MAX_REQUESTS_PER_MINUTE);
    expect(checkMaxRequestsPerMinute(1)).toBe(1);
    expect(checkMaxRequestsPerMinute(MAX_REQUESTS_PER_MINUTE)).toBe(MAX_REQUESTS_PER_MINUTE);
  });

  it.each([-1, MAX_REQUESTS_PER_MINUTE + 1])("rejects %d, naming max_requests_per_minute", (n) => {
    expect(invalidInput(() => checkMaxRequestsPerMinute(n))).toMatchObject({ field: "max_requests_per_minute", reason: `must be between 1 and ${MAX_REQUESTS_PER_MINUTE}` });
  });
});

describe("checkPageSize", () => {
  it("gives the list's default for 0, DEFAULT_PAGE_SIZE unless told", () => {
    expect(checkPageSize(0)).toBe(DEFAULT_PAGE_SIZE);
    expect(checkPageSize(0, 100)).toBe(100);
  });

  it("accepts 1 to MAX_PAGE_SIZE as given", () => {
    expect(checkPageSize(1)).toBe(1);
    expect(checkPageSize(MAX_PAGE_SIZE)).toBe(MAX_PAGE_SIZE);
  });

  it.each([-1, MAX_PAGE_SIZE + 1])("rejects %d, naming page_size", (n) => {
    expect(invalidInput(() => checkPageSize(n))).toMatchObject({ field: "page_size", reason: `must be between 1 and ${MAX_PAGE_SIZE}` });
  });
});

describe("checkFilter", () => {
  it("accepts an empty filter and a full one", () => {
    expect(checkFilter({})).toEqual({});
    const f = { user: "u", state: "active" as const, workflowId: "w", labels: { a: "b" }, createTimeAfter: T0, createTimeBefore: at(1) };
    expect(checkFilter(f)).toBe(f);
  });

  it("names the nested field of what is wrong", () => {
    expect(invalidInput(() => checkFilter({ user: "x".repeat(257) })).field).toBe("filter.user");
    expect(invalidInput(() => checkFilter({ workflowId: "\u0000" })).field).toBe("filter.workflow_id");
    expect(invalidInput(() => checkFilter({ labels: { "a b": "c" } })).field).toBe('filter.labels["a b"]');
    expect(invalidInput(() => checkFilter({ user: "x".repeat(257) }, "selector.filter")).field).toBe("selector.filter.user");
  });

  it("rejects an empty or reversed time range, naming create_time_before", () => {
    for (const [after, before] of [[T0, T0], [at(1), T0]]) {
      expect(invalidInput(() => checkFilter({ createTimeAfter: after, createTimeBefore: before }))).toMatchObject({ field: "filter.create_time_before", reason: "must be later than create_time_after" });
    }
  });
});

describe("etagOf", () => {
  it("quotes the version as an HTTP entity tag", () => {
    expect(etagOf(1)).toBe('"v1"');
    expect(etagOf(42)).toBe('"v42"');
  });
});
