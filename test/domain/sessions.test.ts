import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AlreadyExistsError, ConflictError, InvalidInputError, NotFoundError, PreconditionError } from "../../src/domain/errors.js";
import { parseSecret } from "../../src/domain/access.js";
import { encodeGlobalId, encodeSessionId } from "../../src/domain/ids.js";
import { createServicesOn } from "../../src/app.js";
import type { NewParticipant } from "../../src/domain/conversation-model.js";
import { createSessionService } from "../../src/domain/session-service.js";
import type { Stores } from "../../src/domain/stores.js";
import { byId, byKey, newSession, useDatabase } from "../setup/context.js";
import { countContents, seedContents } from "../setup/seed.js";

const ctx = useDatabase();

describe("CreateSession", () => {
  it("applies the documented defaults and returns a global id that encodes the namespace's uuid and the session's", async () => {
    const s = await ctx.sessions.create(newSession({ user: "u1" }));
    expect(s.namespace).toBe("default");
    expect(s.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(s.id).toBe(encodeSessionId(s.namespaceId, s.uuid));
    const hex = (uuid: string) => uuid.replaceAll("-", "");
    expect(Buffer.from(s.id, "base64url").toString("hex")).toBe(Buffer.from("Session:\x01", "latin1").toString("hex") + hex(s.namespaceId) + hex(s.uuid));
    expect(await ctx.db.sql("SELECT id FROM namespaces WHERE name = 'default'")).toEqual([{ id: s.namespaceId }]);
    expect(s.state).toBe("active");
    expect(s.maxRequestsPerMinute).toBe(10);
    expect(s.expireTime.getTime() - s.createTime.getTime()).toBe(10 * 60 * 1000);
    expect(s.stats).toEqual({ participantCount: 0, turnCount: 0, traceCount: 0, spanCount: 0, memoriesExtracted: 0, integrationCount: 0, compactionCount: 0, archivedTurnCount: 0, compactedSeq: 0 });
    const [row] = await ctx.db.sql("SELECT s.user_id, s.max_requests_per_minute, n.name FROM sessions s JOIN namespaces n ON n.id = s.namespace_id WHERE s.id = $1", [s.uuid]);
    expect(row).toEqual({ user_id: "u1", max_requests_per_minute: 10, name: "default" });
  });

  it("stores what it is given", async () => {
    const { clientSecret, participants, ...s } = await ctx.sessions.create(
      newSession({ namespace: "acme", sessionId: "chat-1", workflow: { id: "wf", version: "3" }, data: { a: [1, "x", { b: null }] }, labels: { env: "prod" }, expiresAfterMs: 60_000, maxRequestsPerMinute: 99 }),
    );
    const got = await ctx.sessions.get(byKey("chat-1", "acme"), false);
    expect(got).toEqual(s);
    // The client secret is returned once; only its hash is stored.
    expect(clientSecret.value).toMatch(/^cs_[A-Za-z0-9_-]{43}_[A-Za-z0-9_-]{43}$/);
    expect(parseSecret(clientSecret.value)).toEqual({ kind: "cs", uuid: s.uuid, namespaceId: s.namespaceId });
    expect(clientSecret.expireTime).toEqual(s.expireTime);
    const [stored] = await ctx.db.sql("SELECT encode(client_secret_hash, 'hex') AS h FROM sessions WHERE id = $1", [s.uuid]);
    expect(stored.h).toBe(createHash("sha256").update(clientSecret.value).digest("hex"));
    expect(got.data).toEqual({ a: [1, "x", { b: null }] });
    expect(got.expireTime.getTime() - got.createTime.getTime()).toBe(60_000);
    expect(participants).toEqual([]);
  });

  it("rejects a session_id already taken in the namespace, but not in another one", async () => {
    await ctx.sessions.create(newSession({ sessionId: "dup" }));
    await expect(ctx.sessions.create(newSession({ sessionId: "dup" }))).rejects.toThrow(AlreadyExistsError);
    await expect(ctx.sessions.create(newSession({ sessionId: "dup", namespace: "other" }))).resolves.toMatchObject({ sessionId: "dup" });
  });

  it.each([
    ["namespace", newSession({ namespace: "Bad Name" })],
    ["labels", newSession({ labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])) })],
    ['labels["k"]', newSession({ labels: { k: "v".repeat(257) } })],
    ["labels[", newSession({ labels: { ["x".repeat(64)]: "v" } })],
    ["labels[", newSession({ labels: { "has space": "v" } })],
    ["session_id", newSession({ sessionId: "a\nb" })],
    ["session_id", newSession({ sessionId: "x".repeat(257) })],
    ["expires_after", newSession({ expiresAfterMs: 25 * 3600 * 1000 })],
    ["max_requests_per_minute", newSession({ maxRequestsPerMinute: -1 })],
    ["data", newSession({ data: { big: "x".repeat(300 * 1024) } })],
    ["data", newSession({ data: { nul: "a\u0000b" } })],
    ["user", newSession({ user: "a\u0000b" })],
    ['labels["k"]', newSession({ labels: { k: "a\u0000b" } })],
  ])("rejects a bad %s with a message naming it, writing nothing", async (field, input) => {
    const before = await ctx.db.sql("SELECT count(*)::int AS n FROM sessions");
    const err = await ctx.sessions.create(input).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message.startsWith(field)).toBe(true);
    expect(await ctx.db.sql("SELECT count(*)::int AS n FROM sessions")).toEqual(before);
  });
});

describe("CreateSession with participants", () => {
  const user: NewParticipant = { participantId: "alice", kind: "user", displayName: "Alice", metadata: { tz: "UTC" } };
  const agent: NewParticipant = { participantId: "bot", kind: "agent", displayName: "", metadata: {} };
  /** Sessions and participants stored under the caller id `sessionId`, in any namespace. */
  const rowsOf = async (sessionId: string) =>
    (
      await ctx.db.sql(
        "SELECT (SELECT count(*)::int FROM sessions WHERE external_id = $1) AS sessions, (SELECT count(*)::int FROM participants p JOIN sessions s ON s.namespace_id = p.namespace_id AND s.id = p.session_id WHERE s.external_id = $1) AS participants",
        [sessionId],
      )
    )[0];

  it("binds them in order with the session, counts them, and they can append turns at once", async () => {
    const { clientSecret: _, participants, ...s } = await ctx.sessions.create(newSession({ namespace: "with-p", sessionId: "chat", participants: [user, agent] }));
    expect(participants.map((p) => [p.participantId, p.kind, p.displayName, p.metadata, p.leaveTime])).toEqual([
      ["alice", "user", "Alice", { tz: "UTC" }, null],
      ["bot", "agent", "", {}, null],
    ]);
    expect(s.stats.participantCount).toBe(2);
    expect(await ctx.sessions.get(byId(s.id), false)).toEqual(s);
    expect(await ctx.services.conversations.participants(byId(s.id))).toEqual(participants);
    const appended = await ctx.services.conversations.append(
      byId(s.id),
      [
        { participantId: "alice", role: "", content: "hi", toolCalls: [], metadata: {} },
        { participantId: "bot", role: "", content: "hello", toolCalls: [], metadata: {} },
      ],
      "",
    );
    expect(appended.turns.map((t) => [t.seq, t.role])).toEqual([
      [1, "user"],
      [2, "assistant"],
    ]);
    // A later BindParticipant finds them bound: not new, not counted again.
    expect((await ctx.services.conversations.bind({ address: byId(s.id), ...agent, displayName: "Bot" })).created).toBe(false);
    expect((await ctx.sessions.get(byId(s.id), false)).stats.participantCount).toBe(2);
  });

  it("takes up to 100 participants", async () => {
    const many = Array.from({ length: 100 }, (_, i): NewParticipant => ({ participantId: `p${i}`, kind: i % 2 ? "agent" : "user", displayName: `P ${i}`, metadata: { i } }));
    const created = await ctx.sessions.create(newSession({ namespace: "with-p", sessionId: "crowd", participants: many }));
    expect(created.participants.map((p) => p.participantId)).toEqual(many.map((p) => p.participantId));
    expect(created.stats.participantCount).toBe(100);
    expect(await rowsOf("crowd")).toEqual({ sessions: 1, participants: 100 });
  });

  it.each<[string, NewParticipant[], string]>([
    ["an unset kind", [user, { ...agent, kind: undefined }], "participants[1].kind"],
    ["an empty participant_id", [{ ...user, participantId: "" }], "participants[0].participant_id"],
    ["a participant_id with a control character", [user, { ...agent, participantId: "b\nc" }], "participants[1].participant_id"],
    ["a participant_id given twice", [user, agent, { ...agent, kind: "tool" }], "participants[2].participant_id"],
    ["a display_name over 256 characters", [{ ...user, displayName: "x".repeat(257) }], "participants[0].display_name"],
    ["metadata over 16 KiB", [user, { ...agent, metadata: { big: "x".repeat(17_000) } }], "participants[1].metadata"],
    ["more than 100 participants", Array.from({ length: 101 }, (_, i) => ({ ...user, participantId: `p${i}` })), "participants"],
  ])("refuses %s naming it, and creates nothing", async (_name, participants, field) => {
    const sessionId = `bad-${field}-${participants.length}`;
    const err = await ctx.sessions.create(newSession({ namespace: "with-p", sessionId, participants })).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.field).toBe(field);
    expect(await rowsOf(sessionId)).toEqual({ sessions: 0, participants: 0 });
  });

  it("binds nothing when the session_id is taken", async () => {
    await ctx.sessions.create(newSession({ namespace: "with-p", sessionId: "taken", participants: [user] }));
    await expect(ctx.sessions.create(newSession({ namespace: "with-p", sessionId: "taken", participants: [user, agent] }))).rejects.toThrow(AlreadyExistsError);
    expect(await rowsOf("taken")).toEqual({ sessions: 1, participants: 1 });
  });

  it("leaves no session behind when binding fails in the database", async () => {
    const { stores } = createServicesOn(ctx.db.dataSource);
    // The participants go in, then the connection is lost before the commit.
    const failing: Stores["transaction"] = (work) =>
      stores.transaction((tx) =>
        work({
          ...tx,
          conversations: {
            ...tx.conversations,
            bindNew: async (session, participants) => {
              await tx.conversations.bindNew(session, participants);
              throw new Error("connection lost");
            },
          },
        }),
      );
    const sessions = createSessionService({ stores: { sessions: stores.sessions, transaction: failing }, operations: ctx.services.operations });
    await expect(sessions.create(newSession({ namespace: "with-p", sessionId: "lost", participants: [user, agent] }))).rejects.toThrow("connection lost");
    expect(await rowsOf("lost")).toEqual({ sessions: 0, participants: 0 });
  });
});

describe("GetSession", () => {
  it("finds a session by global id and by namespace + session_id", async () => {
    const { clientSecret: _, participants: _p, ...s } = await ctx.sessions.create(newSession({ sessionId: "get-me", namespace: "ns-get" }));
    expect(await ctx.sessions.get(byId(s.id), false)).toEqual(s);
    expect(await ctx.sessions.get({ id: s.id, namespace: "ns-get", sessionId: "" }, false)).toEqual(s);
    expect(await ctx.sessions.get(byKey("get-me", "ns-get"), false)).toEqual(s);
  });

  it("reports NOT_FOUND for unknown ids, other namespaces and soft-deleted sessions without show_deleted", async () => {
    const s = await ctx.sessions.create(newSession({ sessionId: "hidden", namespace: "ns-a" }));
    await ctx.sessions.create(newSession({ namespace: "ns-b" }));
    await expect(ctx.sessions.get(byId(encodeSessionId(crypto.randomUUID(), crypto.randomUUID())), false)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.get(byId(encodeSessionId(s.namespaceId, crypto.randomUUID())), false)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.get({ id: s.id, namespace: "ns-b", sessionId: "" }, false)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.get(byKey("hidden", "ns-b"), false)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.get(byKey("hidden", "no-such-ns"), false)).rejects.toThrow(NotFoundError);
    await ctx.sessions.softDelete(byId(s.id));
    await expect(ctx.sessions.get(byId(s.id), false)).rejects.toThrow(NotFoundError);
    expect((await ctx.sessions.get(byId(s.id), true)).state).toBe("soft_deleted");
  });

  it("rejects malformed ids and ids of another kind as invalid, naming the field", async () => {
    await expect(ctx.sessions.get(byId("not an id!"), false)).rejects.toThrow(/^id: not a valid Session id/);
    await expect(ctx.sessions.get(byId(Buffer.from("Session:123").toString("base64url")), false)).rejects.toThrow(/^id: not a valid Session id/);
    await expect(ctx.sessions.get(byId(encodeGlobalId("Trace", crypto.randomUUID())), false)).rejects.toThrow(/^id: is a Trace id, expected a Session id/);
    await expect(ctx.sessions.get({ id: "", namespace: "", sessionId: "" }, false)).rejects.toThrow(/^id: id or session_id is required/);
    await expect(ctx.sessions.get({ id: encodeSessionId(crypto.randomUUID(), crypto.randomUUID()), namespace: "", sessionId: "x" }, false)).rejects.toThrow(InvalidInputError);
  });

  it("finds a session by a global id of the old form (the uuid alone), with or without its namespace", async () => {
    const { clientSecret: _, participants: _p, ...s } = await ctx.sessions.create(newSession({ namespace: "ns-old-id" }));
    const old = Buffer.from(`Session:${s.uuid}`).toString("base64url");
    expect(await ctx.sessions.get(byId(old), false)).toEqual(s);
    expect(await ctx.sessions.get({ id: old, namespace: "ns-old-id", sessionId: "" }, false)).toEqual(s);
    await ctx.sessions.create(newSession({ namespace: "ns-old-other" }));
    await expect(ctx.sessions.get({ id: old, namespace: "ns-old-other", sessionId: "" }, false)).rejects.toThrow(`session ${old} not found`);
  });

  it("changes, cancels and deletes a session addressed by a global id of the old form", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "ns-old-write" }));
    const old = byId(Buffer.from(`Session:${s.uuid}`).toString("base64url"));
    expect((await ctx.sessions.update({ address: old, paths: ["user"], values: { data: {}, labels: {}, user: "bob", workflow: { id: "", version: "" } }, etag: s.etag })).user).toBe("bob");
    expect(await ctx.sessions.cancel(old)).toMatchObject({ id: s.id, state: "cancelled" });
    expect((await ctx.sessions.delete(old, "")).id).toBe(s.id);
    await expect(ctx.sessions.get(byId(s.id), true)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.cancel(old)).rejects.toThrow(NotFoundError);
  });

  it("reports NOT_FOUND for a global id whose namespace is not the session's, or not the one the call names", async () => {
    const { clientSecret: _, participants: _p, ...s } = await ctx.sessions.create(newSession({ namespace: "ns-id-a" }));
    const b = await ctx.sessions.create(newSession({ namespace: "ns-id-b" }));
    // The session's uuid under another namespace's uuid names no session, with or without a namespace.
    const forged = encodeSessionId(b.namespaceId, s.uuid);
    await expect(ctx.sessions.get(byId(forged), false)).rejects.toThrow(`session ${forged} not found`);
    await expect(ctx.sessions.get({ id: forged, namespace: "ns-id-b", sessionId: "" }, false)).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.get({ id: forged, namespace: "ns-id-a", sessionId: "" }, false)).rejects.toThrow(NotFoundError);
    // Its own id with another namespace, existing or not.
    await expect(ctx.sessions.get({ id: s.id, namespace: "ns-id-b", sessionId: "" }, false)).rejects.toThrow(`session ${s.id} not found`);
    await expect(ctx.sessions.get({ id: s.id, namespace: "ns-id-none", sessionId: "" }, false)).rejects.toThrow(NotFoundError);
    // Writes through such an address find nothing either, and change nothing.
    await expect(ctx.sessions.cancel({ id: s.id, namespace: "ns-id-b", sessionId: "" })).rejects.toThrow(NotFoundError);
    await expect(ctx.sessions.delete(byId(forged), "")).rejects.toThrow(NotFoundError);
    expect(await ctx.sessions.get(byId(s.id), false)).toEqual(s);
  });
});

describe("UpdateSession", () => {
  const values = { data: { k: 1 }, labels: { team: "a" }, user: "new-user", workflow: { id: "wf2", version: "9" } };

  it("changes only the fields in the mask and moves the etag", async () => {
    const s = await ctx.sessions.create(newSession({ user: "old", labels: { keep: "me" } }));
    const u = await ctx.sessions.update({ address: byId(s.id), paths: ["data", "workflow.version"], values, etag: "" });
    expect(u.data).toEqual({ k: 1 });
    expect(u.workflow).toEqual({ id: "", version: "9" });
    expect(u.user).toBe("old");
    expect(u.labels).toEqual({ keep: "me" });
    expect(u.etag).not.toBe(s.etag);
    expect(u.updateTime.getTime()).toBeGreaterThanOrEqual(s.updateTime.getTime());
  });

  it("aborts on a stale etag and succeeds with the current one", async () => {
    const s = await ctx.sessions.create(newSession());
    const u = await ctx.sessions.update({ address: byId(s.id), paths: ["user"], values, etag: s.etag });
    await expect(ctx.sessions.update({ address: byId(s.id), paths: ["user"], values, etag: s.etag })).rejects.toThrow(ConflictError);
    await expect(ctx.sessions.update({ address: byId(s.id), paths: ["labels"], values, etag: u.etag })).resolves.toMatchObject({ labels: { team: "a" } });
  });

  it("rejects an empty mask and unknown or read-only paths", async () => {
    const s = await ctx.sessions.create(newSession());
    await expect(ctx.sessions.update({ address: byId(s.id), paths: [], values, etag: "" })).rejects.toThrow(/^update_mask: name at least one/);
    await expect(ctx.sessions.update({ address: byId(s.id), paths: ["state"], values, etag: "" })).rejects.toThrow(/^update_mask: unknown or read-only field "state"/);
    await expect(ctx.sessions.update({ address: byId(s.id), paths: ["nope"], values, etag: "" })).rejects.toThrow(/^update_mask: unknown/);
    await expect(ctx.sessions.update({ address: byId(s.id), paths: ["labels"], values: { ...values, labels: { "b@d": "x" } }, etag: "" })).rejects.toThrow(/^session\.labels\[/);
  });
});

describe("soft delete, undelete, cancel", () => {
  it("soft delete is idempotent and undelete restores the previous state", async () => {
    const s = await ctx.sessions.create(newSession());
    await ctx.sessions.cancel(byId(s.id));
    const d1 = await ctx.sessions.softDelete(byId(s.id));
    const d2 = await ctx.sessions.softDelete(byId(s.id));
    expect(d1.state).toBe("soft_deleted");
    expect(d2.deleteTime).toEqual(d1.deleteTime);
    expect(d2.etag).toBe(d1.etag);
    const u = await ctx.sessions.undelete(byId(s.id));
    expect(u.state).toBe("cancelled");
    expect(u.deleteTime).toBeNull();
  });

  it("undelete of an active session is a failed precondition", async () => {
    const s = await ctx.sessions.create(newSession());
    await expect(ctx.sessions.undelete(byId(s.id))).rejects.toThrow(PreconditionError);
  });

  it("cancel sets CANCELLED, is idempotent, and keeps the session readable", async () => {
    const s = await ctx.sessions.create(newSession());
    const c1 = await ctx.sessions.cancel(byId(s.id));
    const c2 = await ctx.sessions.cancel(byId(s.id));
    expect(c1.state).toBe("cancelled");
    expect(c2).toEqual(c1);
    expect((await ctx.sessions.get(byId(s.id), false)).state).toBe("cancelled");
  });
});

describe("TruncateSession", () => {
  it("clears data, turns, insights and integration marks; keeps participants and traces", async () => {
    const s = await ctx.sessions.create(newSession({ data: { x: 1 } }));
    await seedContents(ctx.db.dataSource, [s.uuid], { participants: 2, turnsPerParticipant: 3, traces: 2, spansPerTrace: 4, annotationsPerTrace: 1 });
    await ctx.db.sql("UPDATE participants SET insights = '[\"likes tea\"]', last_integrated_seq = 6 WHERE session_id = $1", [s.uuid]);
    const { session, turnsDeleted } = await ctx.sessions.truncate(byId(s.id));
    expect(turnsDeleted).toBe(6);
    expect(session.data).toEqual({});
    expect(session.stats.turnCount).toBe(0);
    expect(session.stats.participantCount).toBe(2);
    const counts = await countContents(ctx.db.dataSource, [s.uuid]);
    expect(counts).toMatchObject({ participants: 2, turns: 0, traces: 2, spans: 8, annotations: 2 });
    expect(await ctx.db.sql("SELECT insights, last_integrated_seq FROM participants WHERE session_id = $1", [s.uuid])).toEqual([
      { insights: [], last_integrated_seq: "0" },
      { insights: [], last_integrated_seq: "0" },
    ]);
  });
});

describe("DeleteSession", () => {
  it("cascades through participants, turns, traces, spans and annotations, reports the counts, and keeps memories", async () => {
    const keep = await ctx.sessions.create(newSession());
    const s = await ctx.sessions.create(newSession());
    const shape = { participants: 2, turnsPerParticipant: 5, traces: 3, spansPerTrace: 4, annotationsPerTrace: 1, memories: 2 };
    await seedContents(ctx.db.dataSource, [s.uuid, keep.uuid], shape);
    const totalSpans = async () => (await ctx.db.sql("SELECT count(*)::int AS n FROM spans"))[0].n;
    const spansBefore = await totalSpans();

    const { deleted } = await ctx.sessions.delete(byId(s.id), "");
    expect(deleted).toEqual({ participants: 2, turns: 10, traces: 3, spans: 12, annotations: 3, archivedTurns: 0, compactions: 0 });

    expect(await countContents(ctx.db.dataSource, [s.uuid])).toEqual({ sessions: 0, participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0, memories: 0 });
    expect(await totalSpans()).toBe(spansBefore - 12);
    // The other session is untouched.
    expect(await countContents(ctx.db.dataSource, [keep.uuid])).toEqual({ sessions: 1, participants: 2, turns: 10, traces: 3, spans: 12, annotations: 3, memories: 2 });
    // Memories of the deleted session survive with an empty source.
    const orphans = await ctx.db.sql("SELECT count(*)::int AS n FROM memories WHERE source_session_id IS NULL");
    expect(orphans[0].n).toBe(2);

    await expect(ctx.sessions.delete(byId(s.id), "")).rejects.toThrow(NotFoundError);
  });

  it("deletes soft-deleted sessions too, and honours the etag", async () => {
    const s = await ctx.sessions.create(newSession());
    const d = await ctx.sessions.softDelete(byId(s.id));
    await expect(ctx.sessions.delete(byId(s.id), s.etag)).rejects.toThrow(ConflictError);
    await expect(ctx.sessions.delete(byId(s.id), d.etag)).resolves.toMatchObject({ deleted: { participants: 0 } });
  });

  it("answers a delete by either address with the session's ids and namespace, and a stale or malformed etag with the current one", async () => {
    const a = await ctx.sessions.create(newSession({ namespace: "del-a", sessionId: "one" }));
    const b = await ctx.sessions.create(newSession({ namespace: "del-a", sessionId: "two" }));
    const c = await ctx.sessions.create(newSession({ namespace: "del-a", sessionId: "three" }));
    await ctx.sessions.update({ address: byId(c.id), paths: ["user"], values: { data: {}, labels: {}, user: "x", workflow: { id: "", version: "" } }, etag: "" });
    expect(await ctx.sessions.delete(byKey("one", "del-a"), "")).toEqual({ id: a.id, sessionId: "one", namespace: "del-a", deleted: expect.any(Object) });
    expect(await ctx.sessions.delete(byId(b.id), b.etag)).toEqual({ id: b.id, sessionId: "two", namespace: "del-a", deleted: expect.any(Object) });
    // c is at version 2 now: the etag of version 1 is stale, and the error says which etag is current.
    await expect(ctx.sessions.delete(byId(c.id), c.etag)).rejects.toThrow(`etag: the session changed since (etag ${c.etag}, now "v2"); read it again and retry`);
    // Etags that only look like one: not the current etag, whatever version they spell.
    for (const etag of ["v2", '"v02"', '"v2147483648"', '"v999999999999999"', '"V2"', '"v2" ']) {
      await expect(ctx.sessions.delete(byKey("three", "del-a"), etag), etag).rejects.toThrow(`etag: the session changed since (etag ${etag}, now "v2"); read it again and retry`);
    }
    expect(await ctx.sessions.get(byId(c.id), false)).toMatchObject({ id: c.id });
    await expect(ctx.sessions.delete(byKey("one", "del-a"), "")).rejects.toThrow('session "one" not found in namespace "del-a"');
    await expect(ctx.sessions.delete(byKey("one", "del-none"), "")).rejects.toThrow('session "one" not found in namespace "del-none"');
    // A process that never saw the namespace's name reads the session first, and answers the same.
    const fresh = createServicesOn(ctx.db.dataSource).services.sessions;
    expect(await fresh.delete(byId(c.id), '"v2"')).toEqual({ id: c.id, sessionId: "three", namespace: "del-a", deleted: expect.any(Object) });
  });
});
