import { createHash } from "node:crypto";
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
