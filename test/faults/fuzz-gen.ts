/**
 * Request bodies for the fuzzer, built from message descriptors: proto3 JSON trees and protobuf binary
 * written by hand (so values may break every rule: out-of-range integers, wrong wire types, invalid
 * UTF-8, lone surrogates), plus the mutations applied to them. Everything draws from a seeded PRNG, so
 * a case is reproduced from its seed alone.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";

/** A seeded PRNG (mulberry32) with the helpers the generators use. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** A seed for case `index` of a run seeded with `seed` (so one case can be replayed alone). */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

/** Values that steer calls past validation into the handlers: names of things that exist. */
export interface Hints {
  namespaces: string[];
  ids: string[];
  sessionIds: string[];
  /** How many more huge strings the current body may hold (reset per case; keeps bodies bounded). */
  hugeLeft: number;
  /** Likewise for lists of 2,000 elements. */
  longListsLeft: number;
}

/** How many elements a repeated field (or map) gets: a few, or once per body, 2,000. */
function listLength(rng: Rng, hints: Hints): number {
  if (rng.chance(0.05) && hints.longListsLeft > 0) {
    hints.longListsLeft--;
    return 2000;
  }
  return rng.int(4);
}

const LONE = ["\ud800", "\udfff", "a\ud83d", "\ude00b"];
const ODD = ["\u0000", "a\u0000b", "\u202e", "\ufeff", "\u0001\u001f\u007f", "😀", "'\"\\;--", "%00", "../../etc", "${x}", "\r\n"];

/** A string: mostly plausible, often hostile (NULs, lone surrogates, controls), sometimes huge. */
export function pickString(rng: Rng, field: DescField | undefined, hints: Hints): string {
  const name = field?.name ?? "";
  if (rng.chance(0.45)) {
    if (name === "namespace" || name === "name") return rng.pick(hints.namespaces);
    if (name === "id" || name.endsWith("_id") || name === "ids") {
      const pool = rng.chance(0.6) ? hints.ids : hints.sessionIds;
      if (pool.length) return rng.pick(pool);
    }
    if (name === "service") return rng.pick(["", "sessiond.v1.SessionService", "nope"]);
  }
  switch (rng.int(10)) {
    case 0:
      return "";
    case 1:
      return rng.pick(LONE) + rng.pick(["", "x", "abc"]);
    case 2:
      return rng.pick(ODD);
    case 3: {
      if (hints.hugeLeft <= 0) return "big".repeat(100);
      hints.hugeLeft--;
      // Huge: usually below the 8 MiB message limit, sometimes above it.
      const n = rng.pick([1000, 70_000, 300_000, rng.chance(0.15) ? 9_000_000 : 1_500_000]);
      return rng.pick(["a", "é", "\u0000", "😀"]).repeat(rng.chance(0.5) ? n : n >> 2);
    }
    case 4:
      return String.fromCharCode(...Array.from({ length: 1 + rng.int(40) }, () => rng.int(0x10000)));
    default: {
      const chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.:/ ";
      return Array.from({ length: 1 + rng.int(24) }, () => rng.pick(chars.split(""))).join("");
    }
  }
}

const INT_EDGES = [0n, 1n, -1n, 2n ** 31n - 1n, 2n ** 31n, -(2n ** 31n) - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 100n, 1000n, 100_001n];

function pickInt(rng: Rng): bigint {
  return rng.chance(0.5) ? BigInt(rng.int(200)) - 20n : rng.pick(INT_EDGES);
}

// ---- JSON ----

/** A JSON value for `desc`: a proto3 JSON object that is valid in shape, with hostile values. */
export function genJson(rng: Rng, desc: DescMessage, hints: Hints, depth = 0): unknown {
  const special = wktJson(rng, desc, hints, depth);
  if (special !== undefined) return special;
  const out: Record<string, unknown> = {};
  for (const f of desc.fields) {
    if (!rng.chance(depth === 0 ? 0.7 : 0.4)) continue;
    if (f.oneof && Object.keys(out).some((k) => f.oneof!.fields.some((o) => o.jsonName === k))) continue;
    out[f.jsonName] = jsonField(rng, f, hints, depth);
  }
  return out;
}

function jsonField(rng: Rng, f: DescField, hints: Hints, depth: number): unknown {
  switch (f.fieldKind) {
    case "scalar":
      return jsonScalar(rng, f.scalar, f, hints);
    case "enum":
      return jsonEnum(rng, f.enum.values.map((v) => v.name));
    case "message":
      return depth > 4 ? {} : genJson(rng, f.message, hints, depth + 1);
    case "list": {
      const n = listLength(rng, hints);
      return Array.from({ length: n }, () =>
        f.listKind === "scalar" ? jsonScalar(rng, f.scalar, f, hints) : f.listKind === "enum" ? jsonEnum(rng, f.enum.values.map((v) => v.name)) : depth > 4 ? {} : genJson(rng, f.message, hints, depth + 1),
      );
    }
    case "map": {
      const m: Record<string, unknown> = {};
      for (let i = listLength(rng, hints); i > 0; i--) {
        const key = f.mapKey === ScalarType.STRING ? pickString(rng, undefined, hints) : String(pickInt(rng));
        m[key] = f.mapKind === "scalar" ? jsonScalar(rng, f.scalar, f, hints) : f.mapKind === "enum" ? jsonEnum(rng, f.enum.values.map((v) => v.name)) : depth > 4 ? {} : genJson(rng, f.message, hints, depth + 1);
      }
      return m;
    }
  }
}

function jsonEnum(rng: Rng, names: string[]): unknown {
  return rng.pick<unknown>([rng.pick(names), rng.pick(names), 1, 99, -1, 2 ** 31, "NOT_A_VALUE", ""]);
}

function jsonScalar(rng: Rng, t: ScalarType, f: DescField | undefined, hints: Hints): unknown {
  switch (t) {
    case ScalarType.STRING:
      return pickString(rng, f, hints);
    case ScalarType.BYTES:
      return rng.chance(0.8) ? Buffer.from(rng.bytes(rng.int(64))).toString("base64") : rng.pick(["!!not base64", "=", "a"]);
    case ScalarType.BOOL:
      return rng.pick<unknown>([true, false, "true", 1]);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick<unknown>([0, -0, 1.5, 1e308, -1e308, 3.5e38, "NaN", "Infinity", "-Infinity", 5e-324]);
    default: {
      const v = pickInt(rng);
      return rng.chance(0.5) ? v.toString() : Number(v);
    }
  }
}

function wktJson(rng: Rng, desc: DescMessage, hints: Hints, depth: number): unknown {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return rng.pick(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456789+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "nope", ""]);
    case "google.protobuf.Duration":
      return rng.pick(["1s", "-1s", "1.5s", "315576000001s", "s", "1"]);
    case "google.protobuf.FieldMask":
      return rng.pick(["", "labels", "labels,data,user", "no_such_field", "a.b.c", "LABELS"]);
    case "google.protobuf.Struct":
      return rng.chance(0.1) ? deepJson(rng, 2 + rng.int(3000), true) : { k: pickString(rng, undefined, hints), n: 1, l: [1, "x", null], o: { [pickString(rng, undefined, hints)]: true } };
    case "google.protobuf.Value":
      return rng.chance(0.1) ? deepJson(rng, 2 + rng.int(3000), rng.chance(0.5)) : pickString(rng, undefined, hints);
    case "google.protobuf.ListValue":
      return [1, "two", { three: 3 }];
    case "google.protobuf.Any":
      return rng.pick([{ "@type": "type.googleapis.com/nope.Nope" }, { "@type": "" }, {}]);
    case "google.protobuf.Empty":
      return {};
  }
  if (desc.typeName.startsWith("google.protobuf.") && desc.typeName.endsWith("Value")) {
    const f = desc.fields[0];
    return f.fieldKind === "scalar" ? jsonScalar(rng, f.scalar, f, hints) : null;
  }
  void depth;
  return undefined;
}

/** Nested objects (or arrays) `n` levels deep. */
export function deepJson(rng: Rng, n: number, objects: boolean): unknown {
  let v: unknown = rng.pick<unknown>([1, "x", null, true]);
  for (let i = 0; i < n; i++) v = objects ? { a: v } : [v];
  return v;
}

/** Serializes a JSON tree, or mutates it first: wrong types, unknown keys, raw-text damage. */
export function mutateJson(rng: Rng, tree: unknown): { body: Uint8Array; mutation: string } {
  const text = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
  const m = rng.int(12);
  const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
  switch (m) {
    case 0:
      return { body: new Uint8Array(0), mutation: "empty" };
    case 1:
      return { body: rng.bytes(1 + rng.int(200)), mutation: "random-bytes" };
    case 2: {
      const s = enc(text(tree));
      return { body: s.subarray(0, rng.int(s.length + 1)), mutation: "truncated" };
    }
    case 3:
      return { body: enc(rng.pick(["null", "[]", "1", '"x"', "true", "{}{}", "{", "{\"a\":}", "\ufeff{}", "{\"__proto__\":{\"x\":1}}"])), mutation: "odd-top-level" };
    case 4:
      return { body: enc(`{"x":${"[".repeat(20_000)}${"]".repeat(20_000)}}`), mutation: "deep-nesting-raw" };
    case 5: {
      // Raw text for numbers JSON.stringify cannot write.
      const s = text(tree).replace(/:(-?\d+)([,}])/g, (_all, _n, end) => `:${rng.pick(["1e400", "-1e400", "1e-400", "0x10", "01", "99999999999999999999999", "-0", "1.0"])}${end}`);
      return { body: enc(s), mutation: "raw-numbers" };
    }
    case 6: {
      const s = text(tree);
      const pos = rng.int(s.length + 1);
      return { body: Buffer.concat([Buffer.from(s.slice(0, pos)), Buffer.from(rng.bytes(1 + rng.int(4))), Buffer.from(s.slice(pos))]), mutation: "inserted-bytes" };
    }
    default: {
      const n = 1 + rng.int(3);
      for (let i = 0; i < n; i++) tree = retype(rng, tree, 0);
      return { body: enc(text(tree)), mutation: "retyped" };
    }
  }
}

/** Replaces one random node of the tree with a value of another type (or adds an unknown key). */
function retype(rng: Rng, v: unknown, depth: number): unknown {
  const wrong = () => rng.pick<unknown>([null, 0, -1, 1.5, "str", "", true, [], {}, [1, 2], { a: 1 }, "\ud800", "\u0000", 2 ** 64, -(2 ** 63)]);
  if (v !== null && typeof v === "object" && depth < 6 && rng.chance(0.8)) {
    if (Array.isArray(v)) {
      if (v.length === 0) return rng.chance(0.5) ? [wrong()] : wrong();
      const i = rng.int(v.length);
      const copy = [...v];
      copy[i] = retype(rng, copy[i], depth + 1);
      return copy;
    }
    const keys = Object.keys(v);
    const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    if (keys.length === 0 || rng.chance(0.15)) {
      copy[rng.pick(["unknownField", "__proto__", "constructor", "@type", ""])] = wrong();
      return copy;
    }
    const k = rng.pick(keys);
    copy[k] = retype(rng, copy[k], depth + 1);
    return copy;
  }
  return wrong();
}

// ---- binary ----

type Bytes = Buffer;
const B = (xs: ArrayLike<number>) => Buffer.from(Array.from(xs));
const cat = (...parts: Bytes[]) => Buffer.concat(parts);

/** A varint of any 64-bit value (or an overlong encoding of it). */
function varint(v: bigint, overlong = false): Bytes {
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  while (x > 0x7fn) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  if (overlong) {
    out[out.length - 1] |= 0x80;
    out.push(0x80, 0x80, 0x80, 0);
  }
  return B(out);
}

const tag = (no: number, wt: number) => varint(BigInt(no) * 8n + BigInt(wt));
const ld = (no: number, bytes: Bytes) => cat(tag(no, 2), varint(BigInt(bytes.length)), bytes);

/** Bytes of a string field: UTF-8, or what UTF-8 forbids. */
function stringBytes(rng: Rng, f: DescField | undefined, hints: Hints): Bytes {
  switch (rng.int(8)) {
    case 0:
      return B([0xed, 0xa0, 0x80]); // a surrogate encoded as if it were a character (CESU-8)
    case 1:
      return B([0xff, 0xfe, 0x41]);
    case 2:
      return B([0xc0, 0x80]); // overlong NUL
    default:
      return Buffer.from(pickString(rng, f, hints), "utf8");
  }
}

function scalarBinary(rng: Rng, no: number, t: ScalarType, f: DescField | undefined, hints: Hints): Bytes {
  switch (t) {
    case ScalarType.STRING:
      return ld(no, stringBytes(rng, f, hints));
    case ScalarType.BYTES:
      return ld(no, Buffer.from(rng.bytes(rng.int(64))));
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return cat(tag(no, 1), Buffer.from(rng.bytes(8)));
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return cat(tag(no, 5), Buffer.from(rng.bytes(4)));
    default:
      return cat(tag(no, 0), varint(pickInt(rng), rng.chance(0.05)));
  }
}

/** Protobuf binary for `desc`, written field by field with values that may break every rule. */
export function genBinary(rng: Rng, desc: DescMessage, hints: Hints, depth = 0): Bytes {
  const out: Bytes[] = [];
  for (const f of desc.fields) {
    if (!rng.chance(depth === 0 ? 0.7 : 0.4)) continue;
    const n = f.fieldKind === "list" || f.fieldKind === "map" ? listLength(rng, hints) : 1;
    for (let i = 0; i < n; i++) out.push(fieldBinary(rng, f, hints, depth));
  }
  if (rng.chance(0.1)) out.push(ld(9999, Buffer.from(rng.bytes(5)))); // an unknown field
  if (desc.typeName === "google.protobuf.Value" && depth < 3 && rng.chance(0.2)) out.push(deepValue(rng, 200 + rng.int(3000)));
  return cat(...out);
}

function fieldBinary(rng: Rng, f: DescField, hints: Hints, depth: number): Bytes {
  const no = f.number;
  if (rng.chance(0.03)) return cat(tag(no, rng.pick([0, 1, 2, 5, 3, 4, 6, 7])), Buffer.from(rng.bytes(rng.int(6)))); // wrong wire type
  const nested = (d: DescMessage) => (depth > 4 ? Buffer.alloc(0) : genBinary(rng, d, hints, depth + 1));
  switch (f.fieldKind) {
    case "scalar":
      return scalarBinary(rng, no, f.scalar, f, hints);
    case "enum":
      return cat(tag(no, 0), varint(rng.chance(0.6) ? BigInt(rng.pick(f.enum.values).number) : pickInt(rng)));
    case "message":
      return ld(no, nested(f.message));
    case "list":
      if (f.listKind === "message") return ld(no, nested(f.message));
      if (f.listKind === "enum") return cat(tag(no, 0), varint(pickInt(rng)));
      if (f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES && rng.chance(0.5)) {
        return ld(no, cat(varint(pickInt(rng)), rng.chance(0.2) ? B([0x80]) : Buffer.alloc(0))); // packed, sometimes cut short
      }
      return scalarBinary(rng, no, f.scalar, f, hints);
    case "map": {
      const key = f.mapKey === ScalarType.STRING ? ld(1, stringBytes(rng, undefined, hints)) : scalarBinary(rng, 1, f.mapKey, undefined, hints);
      const value =
        f.mapKind === "message" ? ld(2, nested(f.message)) : f.mapKind === "enum" ? cat(tag(2, 0), varint(pickInt(rng))) : scalarBinary(rng, 2, f.scalar, undefined, hints);
      return ld(no, cat(key, value));
    }
  }
}

/** A google.protobuf.Value nested `n` levels deep through list_value (field 6) / values (field 1). */
function deepValue(rng: Rng, n: number): Bytes {
  let inner: Bytes = cat(tag(4, 1), Buffer.from(rng.bytes(8))); // number_value
  for (let i = 0; i < n; i++) inner = ld(6, ld(1, inner));
  return inner;
}

/** Protobuf bytes as generated, or damaged: bit flips, truncation, random bytes, bad lengths. */
export function mutateBinary(rng: Rng, b: Bytes): { body: Uint8Array; mutation: string } {
  switch (rng.int(10)) {
    case 0:
      return { body: new Uint8Array(0), mutation: "empty" };
    case 1:
      return { body: rng.bytes(1 + rng.int(300)), mutation: "random-bytes" };
    case 2:
      return { body: b.subarray(0, rng.int(b.length + 1)), mutation: "truncated" };
    case 3: {
      const c = Buffer.from(b);
      for (let i = 1 + rng.int(4); i > 0 && c.length; i--) c[rng.int(c.length)] ^= 1 << rng.int(8);
      return { body: c, mutation: "bit-flips" };
    }
    case 4:
      return { body: cat(b, tag(1 + rng.int(30), 2), varint(rng.pick([2n ** 40n, 2n ** 31n, 2n ** 64n - 1n, 100n])), B([1, 2])), mutation: "huge-length" };
    case 5:
      return { body: cat(b, tag(0, rng.int(6))), mutation: "field-zero" };
    default:
      return { body: b, mutation: "generated" };
  }
}
