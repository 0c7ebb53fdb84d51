import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BulkDeleteSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import { loadConfig } from "../../src/config.js";
import { MAX_BULK_IDS } from "../../src/domain/bulk-delete.js";
import { encodeSessionId } from "../../src/domain/ids.js";

describe("SESSIOND_BOOTSTRAP_ADMIN_KEY", () => {
  it("is refused at start when shorter than 32 characters, without echoing it", () => {
    expect(() => loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "short-secret-value" })).toThrow(/^SESSIOND_BOOTSTRAP_ADMIN_KEY: must be at least 32 characters \(got 18\)$/);
    expect(() => loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "has a space in it and is long enough!!" })).toThrow(/printable ASCII/);
    expect(loadConfig({ SESSIOND_BOOTSTRAP_ADMIN_KEY: "x".repeat(32) }).bootstrapAdminKey).toBe("x".repeat(32));
  });
});

describe("SESSIOND_MAX_MESSAGE_BYTES", () => {
  it("makes room by default for the most session global ids one BulkDeleteSessions takes, in binary and in JSON", () => {
    const ids = Array.from({ length: MAX_BULK_IDS }, () => encodeSessionId(crypto.randomUUID(), crypto.randomUUID()));
    const request = create(BulkDeleteSessionsRequestSchema, { namespace: "n".repeat(63), selector: { case: "ids", value: { values: ids } }, batchSize: 5000 });
    const limit = loadConfig({}).readMaxBytes;
    expect(limit).toBe(8 * 1024 * 1024);
    expect(toBinary(BulkDeleteSessionsRequestSchema, request).length).toBeLessThan(limit);
    expect(Buffer.byteLength(toJsonString(BulkDeleteSessionsRequestSchema, request))).toBeLessThan(limit);
  });
});

describe("bulk operation limits", () => {
  it("configuration bounds the slots to half the pool, and the wait for a connection to a few seconds by default", () => {
    expect(loadConfig({})).toMatchObject({ dbConnectTimeoutMs: 3000, maxBulkOperations: 4, bulkQueueSize: 16, operationLeaseMs: 9000, operationPollMs: 2000 });
    expect(loadConfig({ SESSIOND_DB_POOL_SIZE: "4", SESSIOND_MAX_BULK_OPERATIONS: "8" }).maxBulkOperations).toBe(2);
    expect(loadConfig({ SESSIOND_DB_POOL_SIZE: "1" }).maxBulkOperations).toBe(1);
    expect(() => loadConfig({ SESSIOND_MAX_BULK_OPERATIONS: "0" })).toThrow(/^SESSIOND_MAX_BULK_OPERATIONS: must be between 1/);
  });
});

describe("DATABASE_URL's pgbouncer parameter", () => {
  it("accepts true or false and refuses anything else, naming the variable but not echoing the URL", () => {
    expect(loadConfig({ DATABASE_URL: "postgres://u:secret@db:6432/s?pgbouncer=true" }).databaseUrl).toBe("postgres://u:secret@db:6432/s?pgbouncer=true");
    expect(loadConfig({ DATABASE_URL: "postgres://u@db/s?sslmode=disable&pgbouncer=false" }).databaseUrl).toContain("pgbouncer=false");
    const err = (() => {
      try {
        loadConfig({ DATABASE_URL: "postgres://u:secret@db:6432/s?pgbouncer=yes" });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toBe('DATABASE_URL: pgbouncer must be true or false, got "yes"');
    expect(err?.message).not.toContain("secret");
  });
});

describe("watch settings", () => {
  it("default to 10,000 watchers, a 1,000-item buffer, 15 s heartbeats, a 5 s poll, 24 h of changes and 4 reads (at most half the pool)", () => {
    expect(loadConfig({}).watch).toEqual({ maxWatchers: 10_000, buffer: 1000, heartbeatMs: 15_000, pollMs: 5000, retentionMs: 24 * 3_600_000, reads: 4 });
    expect(loadConfig({ SESSIOND_DB_POOL_SIZE: "4", SESSIOND_WATCH_READS: "8" }).watch.reads).toBe(2);
    expect(loadConfig({ SESSIOND_WATCH_RETENTION: "2h" }).watch.retentionMs).toBe(7_200_000);
    expect(loadConfig({}).listenDatabaseUrl).toBeUndefined();
  });

  it("refuse bad values, naming the variable", () => {
    expect(() => loadConfig({ SESSIOND_WATCH_RETENTION: "30s" })).toThrow(/^SESSIOND_WATCH_RETENTION: must be at least 1m$/);
    expect(() => loadConfig({ SESSIOND_WATCH_RETENTION: "1 day" })).toThrow(/^SESSIOND_WATCH_RETENTION: expected a duration/);
    expect(() => loadConfig({ SESSIOND_WATCH_BUFFER: "5" })).toThrow(/^SESSIOND_WATCH_BUFFER: must be between 10/);
    expect(() => loadConfig({ SESSIOND_MAX_WATCHERS: "-1" })).toThrow(/^SESSIOND_MAX_WATCHERS: expected a whole number/);
    expect(() => loadConfig({ SESSIOND_LISTEN_DATABASE_URL: "postgres://u:secret@db/s?sslmode=allow" })).toThrow(/^SESSIOND_LISTEN_DATABASE_URL: sslmode/);
  });
});
