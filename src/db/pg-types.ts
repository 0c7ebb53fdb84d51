/**
 * How sessiond's pool turns Postgres values into JavaScript: node-postgres's own parsers, except for
 * `timestamptz`. Postgres writes it as `2026-11-30 04:02:23.123456+00` (the ISO style, with the
 * session's offset), which V8's Date parser reads directly once the space is a `T` and the offset has
 * minutes; node-postgres's general parser (postgres-date) matched it with several regular expressions
 * per value, 1.5-2 % of the server's CPU under the read and append loads. Anything else (BC dates, years
 * past 9999, `infinity`, offsets with seconds) goes to that parser. Rows of one statement often share a
 * time (the turns of one append have their transaction's), so the last value read is remembered.
 */
import pg from "pg";

const TIMESTAMPTZ = 1184;
const ISO = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(:\d\d)?$/;
const general = pg.types.getTypeParser(TIMESTAMPTZ, "text") as (text: string) => Date | number | null;

let lastText = "";
let lastMs = 0;

/** A timestamptz value, as Postgres writes it in text. */
export function parseTimestamptz(text: string): Date | number | null {
  if (text === lastText) return new Date(lastMs);
  const m = ISO.exec(text);
  if (!m) return general(text);
  const date = new Date(`${m[1]}T${m[2]}${m[3]}${m[4] ?? ":00"}`);
  lastText = text;
  lastMs = date.getTime();
  return date;
}

/** The `types` of sessiond's pool (node-postgres's CustomTypesConfig). */
export const sessiondTypes = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === TIMESTAMPTZ && format !== "binary") return parseTimestamptz;
    return pg.types.getTypeParser(oid, format);
  },
};
