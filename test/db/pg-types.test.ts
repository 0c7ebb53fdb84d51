/** sessiond's timestamptz parser (db/pg-types.ts) against node-postgres's own, on what Postgres writes. */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { parseTimestamptz } from "../../src/db/pg-types.js";
import { useDatabase } from "../setup/context.js";

const ctx = useDatabase();

const general = pg.types.getTypeParser(1184, "text") as (text: string) => unknown;
const same = (text: string) => expect(parseTimestamptz(text), text).toEqual(general(text));

describe("parseTimestamptz", () => {
  it("reads Postgres's ISO output as node-postgres does, with every offset form and precision", () => {
    for (const text of [
      "2026-11-30 04:02:23.123456+00",
      "2026-11-30 04:02:23.123999+05:30",
      "2026-11-30 04:02:23-03",
      "2026-11-30 04:02:23.1-09:30",
      "1970-01-01 00:00:00+00",
      "0099-06-15 12:00:00.5+00",
      "9999-12-31 23:59:59.999999+00",
      "2000-02-29 00:00:00+14",
    ]) {
      same(text);
      same(text); // the remembered last value gives the same again
    }
  });

  it("leaves the forms it does not read to node-postgres's parser", () => {
    for (const text of ["infinity", "-infinity", "0044-03-15 12:00:00+00 BC", "12345-01-01 00:00:00+00", "1880-01-01 00:00:00+00:53:28"]) same(text);
  });

  it("returns a new Date each time, even for the remembered value", () => {
    const a = parseTimestamptz("2026-11-30 04:02:23.5+00") as Date;
    const b = parseTimestamptz("2026-11-30 04:02:23.5+00") as Date;
    expect(a).not.toBe(b);
    a.setTime(0);
    expect((parseTimestamptz("2026-11-30 04:02:23.5+00") as Date).toISOString()).toBe("2026-11-30T04:02:23.500Z");
  });

  it("agrees with node-postgres on 10,000 random times and offsets", () => {
    for (let i = 0; i < 10_000; i++) {
      const ms = Math.floor(Math.random() * 8e12) - 2e12;
      const offsetMin = (Math.floor(Math.random() * 57) - 28) * 30;
      const local = new Date(ms + offsetMin * 60_000).toISOString().replace("T", " ").replace("Z", "");
      const frac = Math.random() < 0.5 ? local.replace(/\.\d+$/, "") : `${local}${String(Math.floor(Math.random() * 1000)).padStart(3, "0")}`;
      const sign = offsetMin < 0 ? "-" : "+";
      const abs = Math.abs(offsetMin);
      const off = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}${abs % 60 ? `:${String(abs % 60).padStart(2, "0")}` : ""}`;
      same(`${frac}${off}`);
    }
  });

  it("agrees with node-postgres on what Postgres writes in several time zones", async () => {
    for (const zone of ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Europe/Amsterdam"]) {
      // A connection of its own, in that zone (text output of timestamptz follows the session's TimeZone).
      const client = new pg.Client({ connectionString: ctx.db.url, options: `-c TimeZone=${zone}` });
      await client.connect();
      try {
        const { rows } = await client.query<{ t: string }>(
          "SELECT (timestamptz '1960-01-01 00:00:00.000001+00' + g * interval '37 days 3 hours 17 minutes 0.123457 seconds')::text AS t FROM generate_series(0, 800) g",
        );
        expect(rows[1].t).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d\d/);
        for (const { t } of rows) same(t);
      } finally {
        await client.end();
      }
    }
  });
});
