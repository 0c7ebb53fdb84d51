/**
 * The audit log's queue against real Postgres: an event the database cannot take never holds up the
 * others (a NUL in a namespace, a row a constraint refuses), an outage keeps events queued until the
 * database is back (bounded, logged once per episode), and the metrics say so.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source.js";
import { createStores } from "../../src/db/repositories/stores.js";
import { createAuditLog, type AuditLog, type AuditLogger, type AuditRecord } from "../../src/domain/audit-log.js";
import { createMetrics, registerAuditMetrics } from "../../src/handlers/metrics.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { waitFor } from "../faults/harness.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
});
afterAll(async () => {
  await db?.close();
});

/** A logger that keeps what it is told. */
function collectingLogger() {
  const lines: { level: "info" | "warn" | "error"; obj: Record<string, any>; msg: string }[] = [];
  const log: AuditLogger = {
    info: (obj, msg) => lines.push({ level: "info", obj: obj as any, msg }),
    warn: (obj, msg) => lines.push({ level: "warn", obj: obj as any, msg }),
    error: (obj, msg) => lines.push({ level: "error", obj: obj as any, msg }),
  };
  return { log, lines, matching: (re: RegExp) => lines.filter((l) => re.test(l.msg)) };
}

/** An audit log over `dataSource`, with its own logger and metrics registry. */
function auditOn(dataSource: DataSource) {
  const stores = createStores(dataSource);
  const logger = collectingLogger();
  const audit = createAuditLog({ store: stores.audit, sessions: stores.sessions, log: logger.log });
  const metrics = createMetrics();
  registerAuditMetrics(metrics.registry, audit.stats);
  const sample = async (line: string) => {
    const text = await metrics.registry.metrics();
    const hit = text.split("\n").find((l) => l.startsWith(`${line} `));
    return hit === undefined ? undefined : Number(hit.slice(line.length + 1));
  };
  return { audit, ...logger, sample };
}

const tag = () => randomBytes(4).toString("hex");

/** An event with defaults. */
function event(over: Partial<AuditRecord> = {}): AuditRecord {
  return { time: new Date(), namespace: "default", actor: "test-actor", method: "sessiond.v1.SessionService/CreateSession", itemCount: 1, code: "ok", requestId: `r-${tag()}`, ...over };
}

const rowsOf = (requestIds: string[]) => db.sql("SELECT * FROM audit_events WHERE request_id = ANY($1) ORDER BY request_id", [requestIds]);

describe("an event the database cannot take as it is", () => {
  it("a NUL in the namespace does not block the events after it: it is recorded unresolved, with its code", async () => {
    const { audit, lines, sample } = auditOn(db.dataSource);
    const bad = event({ namespace: "acme\u0000x", code: "invalid_argument", requestId: `nul-${tag()}` });
    const later = [event(), event({ namespace: "a".repeat(80), code: "invalid_argument" }), event({ actor: "nul\u0000actor" })];
    audit.record(bad);
    for (const e of later) audit.record(e);
    await audit.flush();
    const rows = await rowsOf([bad.requestId, ...later.map((e) => e.requestId)]);
    expect(rows).toHaveLength(4);
    const byId = new Map(rows.map((r) => [r.request_id, r]));
    expect(byId.get(bad.requestId)).toMatchObject({ namespace: "acme\uFFFDx", namespace_id: null, code: "invalid_argument" });
    // Cut names end in "…", so they never read as a valid (other) namespace.
    expect(byId.get(later[1].requestId)).toMatchObject({ namespace: `${"a".repeat(62)}…`, namespace_id: null });
    expect(byId.get(later[0].requestId).namespace).toBe("default");
    expect(byId.get(later[2].requestId).actor).toBe("nul\uFFFDactor");
    expect(audit.stats()).toEqual({ queued: 0, dropped: { queue_full: 0, unwritable: 0, shutdown: 0 } });
    expect(lines).toEqual([]);
    expect(await sample("sessiond_audit_queue_depth")).toBe(0);
    // A second flush is not needed for what comes next either.
    const next = event();
    audit.record(next);
    await audit.flush();
    expect(await rowsOf([next.requestId])).toHaveLength(1);
  });

  it("a batch with one event the database refuses writes all the others, and drops that one with an error line", async () => {
    await db.sql(`ALTER TABLE audit_events ADD CONSTRAINT test_poison CHECK (request_id NOT LIKE 'poison-%')`);
    try {
      const { audit, matching } = auditOn(db.dataSource);
      const batch = Array.from({ length: 20 }, (_, i) => event({ requestId: i === 13 ? `poison-${tag()}` : `good-${i}-${tag()}` }));
      for (const e of batch) audit.record(e);
      await audit.flush();
      const written = await rowsOf(batch.map((e) => e.requestId));
      expect(written.map((r) => r.request_id).sort()).toEqual(batch.filter((_, i) => i !== 13).map((e) => e.requestId).sort());
      expect(audit.stats().dropped).toEqual({ queue_full: 0, unwritable: 1, shutdown: 0 });
      expect(matching(/audit event dropped/)).toEqual([expect.objectContaining({ level: "error", obj: expect.objectContaining({ event: expect.objectContaining({ request_id: batch[13].requestId }) }) })]);
      expect(audit.stats().queued).toBe(0);
    } finally {
      await db.sql("ALTER TABLE audit_events DROP CONSTRAINT test_poison");
    }
  });

  it("an event refused only with its lookups is written with what is known, with a warning", async () => {
    // Postgres refuses this row only with a namespace id: the second attempt stores it without one.
    await db.sql(`ALTER TABLE audit_events ADD CONSTRAINT test_fallback CHECK (namespace_id IS NULL OR request_id NOT LIKE 'fallback-%')`);
    try {
      await db.sql("INSERT INTO namespaces (name) VALUES ('audit-fallback') ON CONFLICT DO NOTHING");
      const { audit, matching } = auditOn(db.dataSource);
      const batch = [event({ namespace: "audit-fallback" }), event({ namespace: "audit-fallback", requestId: `fallback-${tag()}` }), event({ namespace: "audit-fallback" })];
      for (const e of batch) audit.record(e);
      await audit.flush();
      const rows = new Map((await rowsOf(batch.map((e) => e.requestId))).map((r) => [r.request_id, r]));
      expect(rows.size).toBe(3);
      expect(rows.get(batch[1].requestId)).toMatchObject({ namespace: "audit-fallback", namespace_id: null });
      expect(rows.get(batch[0].requestId).namespace_id).not.toBeNull();
      expect(audit.stats().dropped.unwritable).toBe(0);
      expect(matching(/written without its namespace id/)).toHaveLength(1);
    } finally {
      await db.sql("ALTER TABLE audit_events DROP CONSTRAINT test_fallback");
    }
  });
});

describe("a database outage", () => {
  // A role of its own: the outage is that role being refused (CONNECTION LIMIT 0, its sessions
  // terminated), which the client sees as Postgres refusing connections, while the test keeps its own.
  const role = `audit_outage_${tag()}`;
  let roleDb: DataSource;
  beforeAll(async () => {
    const password = tag();
    await db.sql(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    await db.sql(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    roleDb = createDataSource({ url: url.toString(), poolSize: 2, connectTimeoutMs: 2000 });
    await roleDb.initialize();
  });
  afterAll(async () => {
    if (roleDb?.isInitialized) await roleDb.destroy();
    await db.sql(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`);
    await db.sql(`DROP ROLE IF EXISTS ${role}`);
  });
  const stop = async () => {
    await db.sql(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
    await db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [role]);
  };
  const start = () => db.sql(`ALTER ROLE ${role} CONNECTION LIMIT -1`);

  it("keeps events queued (at most 50,000, the oldest dropped) and writes them once it is over, logging each change once", async () => {
    const { audit, lines, matching, sample } = auditOn(roleDb);
    const actor = `outage-${tag()}`;
    await stop();
    try {
      audit.record(event({ actor, requestId: "first" }));
      for (let i = 0; i < 3; i++) await audit.flush();
      expect(audit.stats().queued).toBe(1);
      expect(matching(/falling behind/)).toHaveLength(1);
      expect(await sample("sessiond_audit_queue_depth")).toBe(1);
      // Over the bound: the oldest go.
      for (let i = 0; i < 50_004; i++) audit.record(event({ actor, requestId: `q-${i}` }));
      await audit.flush();
      expect(audit.stats()).toEqual({ queued: 50_000, dropped: { queue_full: 5, unwritable: 0, shutdown: 0 } });
      expect(matching(/audit queue full/)).toHaveLength(1);
      expect(await sample("sessiond_audit_queue_depth")).toBe(50_000);
      expect(await sample('sessiond_audit_events_dropped_total{reason="queue_full"}')).toBe(5);
      expect((await db.sql("SELECT count(*)::int AS n FROM audit_events WHERE actor = $1", [actor]))[0].n).toBe(0);
    } finally {
      await start();
    }
    // No new event and no explicit flush: the log retries by itself.
    await waitFor(() => audit.stats().queued === 0, 60_000);
    await waitFor(() => matching(/caught up/).length === 1);
    const [{ n, oldest }] = await db.sql("SELECT count(*)::int AS n, min(request_id) FILTER (WHERE request_id = 'first') AS oldest FROM audit_events WHERE actor = $1", [actor]);
    expect({ n, oldest }).toEqual({ n: 50_000, oldest: null });
    expect(await rowsOf(["q-50003"])).toHaveLength(1);
    expect(matching(/falling behind/)).toHaveLength(1);
    expect(matching(/audit queue full/)).toHaveLength(1);
    expect(matching(/caught up/)[0]).toMatchObject({ level: "info", obj: { dropped: 5 } });
    expect(lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual([expect.stringMatching(/audit queue full/)]);
    expect(await sample("sessiond_audit_queue_depth")).toBe(0);
  });

  it("a database that refuses every row for a reason of its own (a revoked grant) keeps them queued, not dropped", async () => {
    const { audit, matching } = auditOn(roleDb);
    const batch = [event(), event(), event()];
    await db.sql(`REVOKE INSERT ON audit_events FROM ${role}`);
    try {
      for (const e of batch) audit.record(e);
      await audit.flush();
      expect(audit.stats()).toEqual({ queued: 3, dropped: { queue_full: 0, unwritable: 0, shutdown: 0 } });
      expect(matching(/falling behind/)).toHaveLength(1);
    } finally {
      await db.sql(`GRANT INSERT ON audit_events TO ${role}`);
    }
    await waitFor(() => audit.stats().queued === 0 && matching(/caught up/).length === 1);
    expect(await rowsOf(batch.map((e) => e.requestId))).toHaveLength(3);
  });

  it("drops what is still queued at close with an error line and a count", async () => {
    const { audit, matching, sample } = auditOn(roleDb);
    await stop();
    try {
      audit.record(event());
      audit.record(event());
      await audit.close();
      expect(audit.stats()).toEqual({ queued: 0, dropped: { queue_full: 0, unwritable: 0, shutdown: 2 } });
      expect(matching(/dropped at shutdown/)).toEqual([expect.objectContaining({ level: "error", obj: { dropped: 2 } })]);
      expect(await sample('sessiond_audit_events_dropped_total{reason="shutdown"}')).toBe(2);
      expect(await sample('sessiond_audit_events_dropped_total{reason="unwritable"}')).toBe(0);
    } finally {
      await start();
    }
  });
});

describe("metrics", () => {
  it("count events dropped as unwritable, with every reason present from 0", async () => {
    const { audit, sample } = auditOn(db.dataSource);
    for (const reason of ["queue_full", "unwritable", "shutdown"]) expect(await sample(`sessiond_audit_events_dropped_total{reason="${reason}"}`)).toBe(0);
    await db.sql(`ALTER TABLE audit_events ADD CONSTRAINT test_poison2 CHECK (request_id NOT LIKE 'poison2-%')`);
    try {
      audit.record(event({ requestId: `poison2-${tag()}` }));
      audit.record(event({ requestId: `poison2-${tag()}` }));
      audit.record(event());
      await audit.flush();
    } finally {
      await db.sql("ALTER TABLE audit_events DROP CONSTRAINT test_poison2");
    }
    expect(await sample('sessiond_audit_events_dropped_total{reason="unwritable"}')).toBe(2);
    expect(await sample("sessiond_audit_queue_depth")).toBe(0);
  });
});
