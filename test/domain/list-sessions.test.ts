import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/domain/errors.js";
import type { ListSessionsInput } from "../../src/domain/session-service.js";
import { newSession, useDatabase } from "../setup/context.js";
import { seedSessions } from "../setup/seed.js";

const ctx = useDatabase();

const list = (over: Partial<ListSessionsInput>) =>
  ctx.sessions.list({ namespace: "", pageSize: 0, pageToken: "", filter: {}, showDeleted: false, ascending: false, ...over });

async function all(over: Partial<ListSessionsInput>): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = over.pageToken ?? "";
  do {
    const page = await list({ ...over, pageToken });
    ids.push(...page.sessions.map((s) => s.sessionId));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return ids;
}

/**
 * Waits until the database clock is a millisecond past `time`, so that a session created next has a
 * later create_time (create_time has millisecond precision): for tests of the create_time filter.
 */
async function pastMillisecondOf(time: Date): Promise<void> {
  while (!(await ctx.db.sql("SELECT clock_timestamp() >= $1::timestamptz + interval '1 millisecond' AS past", [time]))[0].past);
}

describe("ListSessions", () => {
  it("pages through every session exactly once in create_time order, both directions", async () => {
    await seedSessions(ctx.db.dataSource, 120, "paging", { prefix: "p" });
    const desc = await all({ namespace: "paging", pageSize: 7 });
    expect(desc).toHaveLength(120);
    expect(new Set(desc).size).toBe(120);
    expect(desc[0]).toBe("p120");
    const asc = await all({ namespace: "paging", pageSize: 50, ascending: true });
    expect(asc).toEqual([...desc].reverse());
  });

  it("defaults to 50 per page and caps page_size at 1000", async () => {
    await seedSessions(ctx.db.dataSource, 60, "sizes");
    expect((await list({ namespace: "sizes" })).sessions).toHaveLength(50);
    await expect(list({ namespace: "sizes", pageSize: 1001 })).rejects.toThrow(/^page_size: must be between 1 and 1000/);
    await expect(list({ namespace: "sizes", pageSize: -1 })).rejects.toThrow(InvalidInputError);
  });

  it("stays correct while sessions are inserted between pages", async () => {
    await seedSessions(ctx.db.dataSource, 30, "moving", { prefix: "m" });
    const first = await list({ namespace: "moving", pageSize: 10, ascending: true });
    // New sessions arrive after the first page was served: ascending order must include them at the end, once.
    await ctx.sessions.create(newSession({ namespace: "moving", sessionId: "late-1" }));
    const rest = await all({ namespace: "moving", pageSize: 10, ascending: true, pageToken: first.nextPageToken });
    const seen = [...first.sessions.map((s) => s.sessionId), ...rest];
    expect(seen).toHaveLength(31);
    expect(new Set(seen).size).toBe(31);
    expect(seen.at(-1)).toBe("late-1");

    const firstDesc = await list({ namespace: "moving", pageSize: 10 });
    await ctx.sessions.create(newSession({ namespace: "moving", sessionId: "late-2" }));
    const restDesc = await all({ namespace: "moving", pageSize: 10, pageToken: firstDesc.nextPageToken });
    const seenDesc = [...firstDesc.sessions.map((s) => s.sessionId), ...restDesc];
    expect(seenDesc).toHaveLength(31);
    expect(new Set(seenDesc).size).toBe(31);
  });

  it("filters by user, state, workflow, labels and create_time, and hides soft-deleted sessions unless asked", async () => {
    const ns = "filters";
    const a = await ctx.sessions.create(newSession({ namespace: ns, sessionId: "a", user: "ann", labels: { env: "prod", tier: "1" }, workflow: { id: "wf-x", version: "" } }));
    // The create_time filters below tell a from b by time; the order of the lists comes from the ids.
    await pastMillisecondOf(a.createTime);
    const b = await ctx.sessions.create(newSession({ namespace: ns, sessionId: "b", user: "bob", labels: { env: "prod" } }));
    const c = await ctx.sessions.create(newSession({ namespace: ns, sessionId: "c", user: "ann", labels: { env: "dev" } }));
    await ctx.sessions.cancel({ id: b.id, namespace: "", sessionId: "" });
    await ctx.sessions.softDelete({ id: c.id, namespace: "", sessionId: "" });
    const ids = async (filter: ListSessionsInput["filter"], showDeleted = false) => (await all({ namespace: ns, filter, showDeleted, ascending: true })).join(",");
    expect(await ids({})).toBe("a,b");
    expect(await ids({}, true)).toBe("a,b,c");
    expect(await ids({ user: "ann" })).toBe("a");
    expect(await ids({ user: "ann" }, true)).toBe("a,c");
    expect(await ids({ state: "cancelled" })).toBe("b");
    expect(await ids({ state: "active" })).toBe("a");
    expect(await ids({ state: "soft_deleted" })).toBe("c");
    expect(await ids({ workflowId: "wf-x" })).toBe("a");
    expect(await ids({ labels: { env: "prod" } })).toBe("a,b");
    expect(await ids({ labels: { env: "prod", tier: "1" } })).toBe("a");
    expect(await ids({ labels: { env: "nope" } })).toBe("");
    expect(await ids({ createTimeAfter: b.createTime }, true)).toBe("b,c");
    expect(await ids({ createTimeBefore: b.createTime }, true)).toBe("a");
    await expect(ids({ createTimeAfter: b.createTime, createTimeBefore: a.createTime })).rejects.toThrow(/^filter\.create_time_before/);
  });

  it("returns nothing for a namespace that does not exist, and never another namespace's sessions", async () => {
    await seedSessions(ctx.db.dataSource, 3, "mine");
    expect((await list({ namespace: "nobody" })).sessions).toEqual([]);
    const theirs = await list({ namespace: "mine" });
    expect(theirs.sessions.every((s) => s.namespace === "mine")).toBe(true);
  });

  it("rejects forged tokens and tokens reused with a different request", async () => {
    await seedSessions(ctx.db.dataSource, 5, "tokens");
    const page = await list({ namespace: "tokens", pageSize: 2 });
    expect(page.nextPageToken).not.toBe("");
    await expect(list({ namespace: "tokens", pageToken: "garbage" })).rejects.toThrow(/^page_token: malformed/);
    const [payload, check] = page.nextPageToken.split(".");
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), t: 0 })).toString("base64url");
    await expect(list({ namespace: "tokens", pageToken: `${forged}.${check}` })).rejects.toThrow(/^page_token: malformed or altered/);
    // A well-formed token (right checksum) whose time no stored row can have: malformed, not a database error.
    const outOfRange = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), t: 1e16 })).toString("base64url");
    const sum = createHash("sha256").update(outOfRange).digest("base64url").slice(0, 12);
    await expect(list({ namespace: "tokens", pageToken: `${outOfRange}.${sum}` })).rejects.toThrow(/^page_token: malformed or altered/);
    await expect(list({ namespace: "tokens", pageToken: page.nextPageToken, ascending: true })).rejects.toThrow(/^page_token: was issued for a different request/);
    await expect(list({ namespace: "tokens", pageToken: page.nextPageToken, filter: { user: "x" } })).rejects.toThrow(/^page_token: was issued/);
    await expect(list({ namespace: "tokens", pageToken: page.nextPageToken, pageSize: 3 })).resolves.toBeTruthy();
  });
});

describe("last activity", () => {
  const OLD = new Date("2001-02-03T04:05:06.789Z");
  /** Sets a session's last activity far in the past, so that any writer's now() is later. */
  const age = (uuid: string) => ctx.db.sql("UPDATE sessions SET last_activity_time = $2 WHERE id = $1", [uuid, OLD]);
  const lastActivity = async (uuid: string): Promise<Date> => (await ctx.db.sql("SELECT last_activity_time AS t FROM sessions WHERE id = $1", [uuid]))[0].t;
  const byId = (id: string) => ({ id, namespace: "", sessionId: "" });
  const traceHex = () => randomBytes(16).toString("hex");
  const span = (traceId: string) => ({
    traceId,
    spanId: randomBytes(8).toString("hex"),
    parentSpanId: "",
    name: "step",
    kind: 1,
    startTime: new Date(),
    endTime: new Date(),
    statusCode: 0,
    statusMessage: "",
    attributes: {},
    events: [],
  });

  it("starts at creation and moves with every writer of what the session holds, not with reads, cancel or soft delete", async () => {
    const ns = "activity";
    const s = await ctx.sessions.create(newSession({ namespace: ns, sessionId: "busy" }));
    expect(s.lastActivityTime).toEqual(s.createTime);
    const other = await ctx.sessions.create(newSession({ namespace: ns, sessionId: "other" }));
    const moved = async (what: string, write: () => Promise<unknown>, uuid = s.uuid) => {
      await age(uuid);
      await write();
      expect((await lastActivity(uuid)).getTime(), what).toBeGreaterThan(OLD.getTime());
    };
    const c = ctx.services.conversations;
    await moved("a participant bound", () => c.bind({ address: byId(s.id), participantId: "u", kind: "user", displayName: "", metadata: {} }));
    await moved("a participant bound again", () => c.bind({ address: byId(s.id), participantId: "u", kind: "user", displayName: "U", metadata: {} }));
    await moved("turns appended", () => c.append(byId(s.id), [{ participantId: "u", role: "", content: "hi", toolCalls: [], metadata: {} }], ""));
    await moved("an update", () => ctx.sessions.update({ address: byId(s.id), paths: ["data"], values: { data: { a: 1 }, labels: {}, user: "", workflow: { id: "", version: "" } }, etag: "" }));
    const t = traceHex();
    await moved("spans recorded", () => ctx.services.tracing.record({ namespace: ns, session: s.id, sessionId: "", spans: [span(t)] }));
    await moved("spans recorded into its trace by a call under another session", () => ctx.services.tracing.record({ namespace: ns, session: other.id, sessionId: "", spans: [span(t)] }));
    const note = (label: string) =>
      ctx.services.tracing.annotate({ namespace: ns, target: { kind: "trace", traceId: t }, name: "q", annotatorKind: "human", label, score: undefined, explanation: "", metadata: {}, identifier: "reviewer-1" });
    await moved("an annotation on its trace", () => note("ok"));
    await moved("that annotation changed", () => note("better"));
    await moved("a truncate", () => ctx.sessions.truncate(byId(s.id)));
    // Not activity: reading, listing, refreshing the secret, cancelling, soft-deleting.
    await age(s.uuid);
    await ctx.sessions.get(byId(s.id), false);
    await list({ namespace: ns });
    await ctx.sessions.refreshClientSecret(byId(s.id), undefined);
    await ctx.sessions.cancel(byId(s.id));
    await ctx.sessions.softDelete(byId(s.id));
    expect(await lastActivity(s.uuid)).toEqual(OLD);
    expect((await ctx.sessions.get(byId(s.id), true)).lastActivityTime).toEqual(OLD);
  });

  it("selects sessions by an activity window, and refuses a window that ends before it starts", async () => {
    const ns = "activity-window";
    const [a, b, c] = [await ctx.sessions.create(newSession({ namespace: ns, sessionId: "a" })), await ctx.sessions.create(newSession({ namespace: ns, sessionId: "b" })), await ctx.sessions.create(newSession({ namespace: ns, sessionId: "c" }))];
    const times = [new Date("2030-01-01T00:00:00.000Z"), new Date("2030-01-02T00:00:00.000Z"), new Date("2030-01-03T00:00:00.000Z")];
    for (const [i, s] of [a, b, c].entries()) await ctx.db.sql("UPDATE sessions SET last_activity_time = $2 WHERE id = $1", [s.uuid, times[i]]);
    const ids = async (filter: ListSessionsInput["filter"]) => (await all({ namespace: ns, filter, ascending: true })).join(",");
    expect(await ids({ activeBefore: times[1] })).toBe("a");
    expect(await ids({ activeAfter: times[1] })).toBe("b,c");
    expect(await ids({ activeAfter: times[0], activeBefore: times[2] })).toBe("a,b");
    expect((await list({ namespace: ns, filter: { activeBefore: times[1] } })).sessions[0].lastActivityTime).toEqual(times[0]);
    await expect(ids({ activeAfter: times[2], activeBefore: times[1] })).rejects.toThrow(/^filter\.active_before: must be later than active_after/);
    // A page token belongs to its window.
    const first = await list({ namespace: ns, pageSize: 1, ascending: true, filter: { activeBefore: times[2] } });
    expect(first.nextPageToken).not.toBe("");
    await expect(list({ namespace: ns, pageSize: 1, ascending: true, filter: { activeBefore: times[1] }, pageToken: first.nextPageToken })).rejects.toThrow(InvalidInputError);
    expect((await list({ namespace: ns, pageSize: 1, ascending: true, filter: { activeBefore: times[2] }, pageToken: first.nextPageToken })).sessions.map((s) => s.sessionId)).toEqual(["b"]);
  });
});
