/**
 * Small helpers for the console's DOM: elements built from a tag, attributes and children (text always
 * goes in as text nodes, never as HTML), lookups by data-testid, and formatting of API values.
 */
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

type Child = Node | string | number | bigint | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined>;

/** An element; `testid` sets data-testid, `true` sets an empty attribute, false/undefined skip it. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name === "testid" ? "data-testid" : name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** The element with this data-testid (inside `root`); throws when the page lacks it. */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const el = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`the page has no [data-testid="${id}"]`);
  return el;
}

/** Shows `message` in an error element, or hides it when empty. */
export function showError(el: HTMLElement, message: string): void {
  el.textContent = message;
  el.hidden = !message;
}

const numbers = new Intl.NumberFormat("en-US");

/** 12,345 */
export const fmtNumber = (n: number | bigint): string => numbers.format(n);

/** A timestamp in UTC, to the second ("2026-11-02 14:03:07"); "—" when unset. */
export function fmtTime(ts: Timestamp | undefined): string {
  if (!ts) return "—";
  return timestampDate(ts).toISOString().replace("T", " ").slice(0, 19);
}

/** Milliseconds below 10 s ("12.5 ms"), else seconds ("42.1 s"). */
export const fmtMs = (ms: number): string => (ms < 10_000 ? `${Number(ms.toFixed(1))} ms` : `${(ms / 1000).toFixed(1)} s`);

/** A protobuf Duration, as fmtMs; "—" when unset. */
export const fmtDuration = (d: Duration | undefined): string => (d ? fmtMs(Number(d.seconds) * 1000 + d.nanos / 1e6) : "—");

/** Milliseconds from one timestamp to another. */
export const msBetween = (from: Timestamp | undefined, to: Timestamp | undefined): number =>
  from && to ? (Number(to.seconds) - Number(from.seconds)) * 1000 + (to.nanos - from.nanos) / 1e6 : 0;

/** A generated enum's value as people read it: SessionState.SOFT_DELETED -> "soft deleted". */
export function enumLabel(names: Record<number, string>, value: number): string {
  return (names[value] ?? String(value)).replaceAll("_", " ").toLowerCase();
}
