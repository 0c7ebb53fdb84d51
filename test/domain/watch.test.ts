/**
 * The watches against a real database, without the server: what every writer records (one change per
 * change, numbered densely per session, in the writer's own statement), the order under concurrent
 * writers, the feed's order and the sweeper's pruning, and a resume from a position whose changes were
 * pruned (a snapshot with resync).
 */
import { describe, expect, it } from "vitest";
import { createServicesOn } from "../../src/app.js";
import type { SessionWatchEvent } from "../../src/domain/watch-model.js";
import { byId, newSession, useDatabase } from "../setup/context.js";

const ctx = useDatabase();

/** The events of a watch until `stop` says so (or `max` of them), then the watch is cancelled. */
async function take(events: AsyncGenerator<SessionWatchEvent>, stop: (e: SessionWatchEvent) => boolean, max = 10_000): Promise<SessionWatchEvent[]> {
  const out: SessionWatchEvent[] = [];
  for await (const e of events) {
    out.push(e);
    if (stop(e) || out.length >= max) break;
  }
  return out;
}

const changesOf = (uuid: string) => ctx.db.sql<{ change: string; kind: string; at_seq: string }>("SELECT change, kind, at_seq FROM session_changes WHERE session_id = $1 ORDER BY change", [uuid]);

describe("recorded changes", () => {
  it("every writer records its change in its own statement, numbered 1, 2, 3, ... per session, with the seq it came after", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "w-rec", participants: [{ participantId: "u", kind: "user", displayName: "", metadata: {} }] }));
    const address = byId(s.id);
    await ctx.services.conversations.append(address, [{ participantId: "u", role: "", content: "hi", toolCalls: [], metadata: {} }], "");
    await ctx.services.conversations.bind({ address, participantId: "b", kind: "agent", displayName: "", metadata: {} });
    await ctx.sessions.update({ address, paths: ["labels"], values: { data: {}, labels: { a: "1" }, user: "", workflow: { id: "", version: "" } }, etag: "" });
    await ctx.services.conversations.unbind(address, "b");
    await ctx.sessions.refreshClientSecret(address, undefined);
    await ctx.sessions.truncate(address);
    await ctx.sessions.softDelete(address);
    await ctx.sessions.softDelete(address); // already soft-deleted: nothing changes, nothing recorded
    await ctx.sessions.undelete(address);
    await ctx.sessions.cancel(address);
    await ctx.sessions.delete(address, "");
    const rows = await changesOf(s.uuid);
    expect(rows.map((r) => [Number(r.change), r.kind, Number(r.at_seq)])).toEqual([
      [1, "created", 0],
      [2, "participant_bound", 1],
      [3, "updated", 1],
      [4, "participant_unbound", 1],
      [5, "updated", 1],
      [6, "truncated", 1],
      [7, "soft_deleted", 1],
      [8, "undeleted", 1],
      [9, "cancelled", 1],
      [10, "deleted", 1],
    ]);
    // The snapshot never holds the secret's hash.
    const [snap] = await ctx.db.sql<{ session: Record<string, unknown> }>("SELECT session FROM session_changes WHERE session_id = $1 AND kind = 'cancelled'", [s.uuid]);
    expect(Object.keys(snap.session)).not.toContain("client_secret_hash");
  });

  it("concurrent writers of one session get dense change numbers in commit order, and a watcher sees every change and every turn once, in order", async () => {
    const s = await ctx.sessions.create(newSession({ namespace: "w-rec", participants: [{ participantId: "u", kind: "user", displayName: "", metadata: {} }] }));
    const address = byId(s.id);
    const watch = ctx.services.watches.watchSession({ address, afterSeq: 0, afterChange: 0 }, new AbortController().signal);
    const first = await watch.next();
    expect(first.value?.type).toBe("snapshot");
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      writes.push(ctx.services.conversations.append(address, [{ participantId: "u", role: "", content: `t${i}`, toolCalls: [], metadata: {} }], ""));
      writes.push(ctx.services.conversations.bind({ address, participantId: `p${i}`, kind: "agent", displayName: "", metadata: {} }));
    }
    await Promise.all(writes);
    // Until everything is in: 20 turns and 21 changes (whichever of them came last).
    const events = await take(watch, (e) => e.position.seq === 20 && e.position.change === 21, 200);
    await watch.return(undefined);
    const turns = events.filter((e) => e.type === "turn").map((e) => e.position.seq);
    const changes = events.filter((e) => e.type === "change").map((e) => e.position.change);
    expect(turns).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(changes).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    // Positions never go back, and each change comes after exactly the turns it was made after.
    for (let i = 1; i < events.length; i++) {
      expect(events[i].position.seq).toBeGreaterThanOrEqual(events[i - 1].position.seq);
      expect(events[i].position.change).toBeGreaterThanOrEqual(events[i - 1].position.change);
    }
    const rows = await changesOf(s.uuid);
    for (const e of events) if (e.type === "change") expect(Number(rows.find((r) => Number(r.change) === e.change.change)!.at_seq)).toBe(e.position.seq);
  });
});

describe("pruning", () => {
  it("the sweeper deletes changes older than the watch retention; a watch resuming from a pruned position starts again from a snapshot (resync)", async () => {
    const { services } = createServicesOn(ctx.db.dataSource, { watchLimits: { retentionMs: 3_600_000 } });
    const s = await services.sessions.create(newSession({ namespace: "w-prune", participants: [{ participantId: "u", kind: "user", displayName: "", metadata: {} }] }));
    const address = byId(s.id);
    for (let i = 0; i < 3; i++) await services.sessions.update({ address, paths: ["labels"], values: { data: {}, labels: { n: String(i) }, user: "", workflow: { id: "", version: "" } }, etag: "" });
    await services.conversations.append(address, [{ participantId: "u", role: "", content: "kept", toolCalls: [], metadata: {} }], "");
    // Changes 1..3 are two hours old; 4 is new.
    await ctx.db.sql("UPDATE session_changes SET create_time = now() - interval '2 hours' WHERE session_id = $1 AND change <= 3", [s.uuid]);
    await services.sweeper.pass();
    expect((await changesOf(s.uuid)).map((r) => Number(r.change))).toEqual([4]);

    // From change 1: 2 and 3 are gone, so a snapshot sums them up, then the turns after after_seq.
    const events = await take(services.watches.watchSession({ address, afterSeq: 0, afterChange: 1 }, new AbortController().signal), (e) => e.type === "caught_up");
    expect(events.map((e) => e.type)).toEqual(["snapshot", "turn", "caught_up"]);
    const snap = events[0];
    expect(snap.type === "snapshot" && [snap.resync, snap.session.labels, snap.position.change]).toEqual([true, { n: "2" }, 4]);
    // From change 3, what follows (4) is still there: exactly it, no snapshot.
    const exact = await take(services.watches.watchSession({ address, afterSeq: 0, afterChange: 3 }, new AbortController().signal), (e) => e.type === "caught_up");
    expect(exact.map((e) => (e.type === "change" ? `change:${e.change.kind}` : e.type))).toEqual(["change:updated", "turn", "caught_up"]);
  });
});
