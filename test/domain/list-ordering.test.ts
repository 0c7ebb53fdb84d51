/**
 * Every keyset list follows creation order, also for rows created within one millisecond: rows made
 * by one multi-row INSERT share create_time (now(), the transaction's start), so only their
 * time-ordered ids (sessiond_uuid_v7()) tell them apart. Each list is read page by page, both ways
 * where it offers both.
 */
import { describe, expect, it } from "vitest";
import { useDatabase, newSession } from "../setup/context.js";

const ctx = useDatabase();

const N = 40;

/** Every page of a list, concatenated. */
async function pages<T>(read: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>): Promise<T[]> {
  const all: T[] = [];
  let token = "";
  do {
    const page = await read(token);
    all.push(...page.items);
    token = page.nextPageToken;
  } while (token);
  return all;
}

/** "<prefix>1" ... "<prefix>n": the creation order. */
const names = (prefix: string, n = N) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

/** A namespace and one session in it; returns their ids. */
async function namespaceWithSession(namespace: string) {
  const session = await ctx.sessions.create(newSession({ namespace, sessionId: "s" }));
  return { namespaceId: session.namespaceId, sessionUuid: session.uuid };
}

describe("lists of rows created within one millisecond", () => {
  it("ListSessions: in creation order, both directions, across pages", async () => {
    const { namespaceId } = await namespaceWithSession("same-ms-sessions");
    const [{ distinct }] = await ctx.db.sql(
      `WITH s AS (INSERT INTO sessions (namespace_id, external_id, expire_time, max_requests_per_minute)
                  SELECT $1, 'x' || g, now() + interval '1 hour', 10 FROM generate_series(1, $2) g ORDER BY g RETURNING create_time)
       SELECT count(DISTINCT create_time)::int AS distinct FROM s`,
      [namespaceId, N],
    );
    expect(distinct).toBe(1);
    const list = (ascending: boolean, pageSize: number) =>
      pages((pageToken) => ctx.sessions.list({ namespace: "same-ms-sessions", pageSize, pageToken, filter: {}, showDeleted: false, ascending }).then((p) => ({ items: p.sessions.map((s) => s.sessionId), nextPageToken: p.nextPageToken })));
    expect(await list(true, 7)).toEqual(["s", ...names("x")]);
    expect(await list(false, 6)).toEqual([...names("x")].reverse().concat("s"));
  });

  it("ListTraces: newest first across pages", async () => {
    const { namespaceId, sessionUuid } = await namespaceWithSession("same-ms-traces");
    // Trace ids that sort against creation order, so neither they nor luck can pass for it.
    await ctx.db.sql(
      `INSERT INTO traces (namespace_id, session_id, otel_trace_id) SELECT $1, $2, lpad(to_hex(1000 - g), 32, '0') FROM generate_series(1, $3) g ORDER BY g`,
      [namespaceId, sessionUuid, N],
    );
    const listed = await pages((pageToken) =>
      ctx.services.tracing.list({ namespace: "same-ms-traces", session: "", sessionId: "s", withoutSession: false, pageSize: 7, pageToken }).then((p) => ({ items: p.traces.map((t) => t.traceId), nextPageToken: p.nextPageToken })),
    );
    const created = Array.from({ length: N }, (_, i) => (1000 - i - 1).toString(16).padStart(32, "0"));
    expect(listed).toEqual(created.reverse());
  });

  it("ListAnnotations: newest first across pages", async () => {
    const { namespaceId, sessionUuid } = await namespaceWithSession("same-ms-annotations");
    await ctx.db.sql(
      `INSERT INTO annotations (namespace_id, session_id, target_kind, target_key, name, annotator_kind, label)
       SELECT $1, $2::uuid, 'session', 'session:' || $2::text, 'quality', 'human', 'a' || g FROM generate_series(1, $3) g ORDER BY g`,
      [namespaceId, sessionUuid, N],
    );
    const listed = await pages((pageToken) =>
      ctx.services.tracing.annotations({ namespace: "same-ms-annotations", target: { kind: "sessionId", sessionId: "s" }, pageSize: 7, pageToken }).then((p) => ({ items: p.annotations.map((a) => a.label), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("a").reverse());
  });

  it("ListMemories: newest first across pages", async () => {
    const { namespaceId, sessionUuid } = await namespaceWithSession("same-ms-memories");
    await ctx.db.sql(
      `INSERT INTO memories (namespace_id, source_session_id, subject_user, content) SELECT $1, $2, 'u', 'm' || g FROM generate_series(1, $3) g ORDER BY g`,
      [namespaceId, sessionUuid, N],
    );
    const listed = await pages((pageToken) =>
      ctx.services.memories.list({ namespace: "same-ms-memories", subjectParticipantId: "", subjectUser: "", sourceSession: "", sourceSessionId: "", pageSize: 7, pageToken }).then((p) => ({ items: p.memories.map((m) => m.content), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("m").reverse());
  });

  it("ListApiKeys: newest first across pages", async () => {
    const { namespaceId } = await namespaceWithSession("same-ms-keys");
    await ctx.db.sql(
      `INSERT INTO api_keys (namespace_id, display_name, role, secret_hash, secret_prefix)
       SELECT $1, 'k' || g, 'reader', sha256(g::text::bytea), 'sk_' || g FROM generate_series(1, $2) g ORDER BY g`,
      [namespaceId, N],
    );
    const listed = await pages((pageToken) =>
      ctx.services.apiKeys.list({ namespace: "same-ms-keys", showRevoked: false, pageSize: 7, pageToken }).then((p) => ({ items: p.keys.map((k) => k.displayName), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("k").reverse());
  });

  it("ListAuditEvents: newest first across pages, for events of one time", async () => {
    await ctx.db.sql(
      `INSERT INTO audit_events (time, namespace, actor, method, item_count, code, request_id)
       SELECT '2026-01-01T00:00:00Z', '', 'same-ms-actor', 'm', 1, 'ok', 'r' || g FROM generate_series(1, $1) g ORDER BY g`,
      [N],
    );
    const listed = await pages((pageToken) =>
      ctx.services.audit.list({ namespace: "", actor: "same-ms-actor", pageSize: 7, pageToken }).then((p) => ({ items: p.events.map((e) => e.requestId), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("r").reverse());
  });

  it("ListNamespaces: oldest first across pages", async () => {
    await ctx.db.sql(`INSERT INTO namespaces (name) SELECT 'same-ms-ns-' || g FROM generate_series(1, $1) g ORDER BY g`, [N]);
    const listed = await pages((pageToken) =>
      ctx.services.namespaces.list({ pageSize: 7, pageToken }).then((p) => ({ items: p.namespaces.map((n) => n.name), nextPageToken: p.nextPageToken })),
    );
    expect(listed.filter((name) => name.startsWith("same-ms-ns-"))).toEqual(names("same-ms-ns-"));
  });
});

describe("lists of rows whose ids the service chooses", () => {
  it("CreateSession makes time-ordered ids: sessions created back to back list in creation order", async () => {
    const created: string[] = [];
    for (const id of names("c", 20)) created.push((await ctx.sessions.create(newSession({ namespace: "back-to-back", sessionId: id }))).uuid);
    expect([...created].sort()).toEqual(created);
    const listed = await pages((pageToken) =>
      ctx.sessions.list({ namespace: "back-to-back", pageSize: 6, pageToken, filter: {}, showDeleted: false, ascending: true }).then((p) => ({ items: p.sessions.map((s) => s.sessionId), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("c", 20));
  });

  it("CreateApiKey makes time-ordered ids: keys created back to back list newest first", async () => {
    const { namespaceId } = await namespaceWithSession("back-to-back-keys");
    expect(namespaceId).toBeTruthy();
    const created: string[] = [];
    for (const name of names("k", 20)) created.push((await ctx.services.apiKeys.create({ namespace: "back-to-back-keys", displayName: name, role: "reader", createdBy: "test", expiresAfterMs: undefined })).key.uuid);
    expect([...created].sort()).toEqual(created);
    const listed = await pages((pageToken) =>
      ctx.services.apiKeys.list({ namespace: "back-to-back-keys", showRevoked: false, pageSize: 6, pageToken }).then((p) => ({ items: p.keys.map((k) => k.displayName), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("k", 20).reverse());
  });

  it("the audit log keeps the order of events recorded within one millisecond", async () => {
    const time = new Date("2026-02-01T00:00:00.000Z");
    for (const id of names("e")) ctx.services.audit.record({ time, namespace: "", actor: "same-ms-recorder", method: "m", itemCount: 1, code: "ok", requestId: id });
    const listed = await pages((pageToken) =>
      ctx.services.audit.list({ namespace: "", actor: "same-ms-recorder", pageSize: 7, pageToken }).then((p) => ({ items: p.events.map((e) => e.requestId), nextPageToken: p.nextPageToken })),
    );
    expect(listed).toEqual(names("e").reverse());
  });
});
