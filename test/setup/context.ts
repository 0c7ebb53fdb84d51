/**
 * Per-file fixtures: a fresh database cloned from the migrated template, and the services over it.
 */
import { afterAll, beforeAll, inject } from "vitest";
import { createServicesOn } from "../../src/app.js";
import type { Services } from "../../src/domain/services.js";
import type { SessionService } from "../../src/domain/session-service.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";

/** Registers beforeAll/afterAll hooks that give the file its own database and services. */
export function useDatabase() {
  const ctx = {} as { db: TestDatabase; services: Services; sessions: SessionService };
  beforeAll(async () => {
    ctx.db = await createTestDatabase(inject("database"));
    ctx.services = createServicesOn(ctx.db.dataSource).services;
    ctx.sessions = ctx.services.sessions;
  });
  afterAll(async () => {
    await ctx.db?.close();
  });
  return ctx;
}

/** An address by caller id in a namespace. */
export const byKey = (sessionId: string, namespace = "default") => ({ id: "", namespace, sessionId });
/** An address by global id. */
export const byId = (id: string) => ({ id, namespace: "", sessionId: "" });

/** CreateSession input with defaults. */
export function newSession(over: Partial<Parameters<SessionService["create"]>[0]> = {}): Parameters<SessionService["create"]>[0] {
  return { namespace: "", sessionId: "", user: "", workflow: { id: "", version: "" }, data: {}, labels: {}, maxRequestsPerMinute: 0, ...over };
}
