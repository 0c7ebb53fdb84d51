/**
 * SIGTERM while clients are busy: the process drains and exits 0 on its own; every call either
 * succeeds or ends with `unavailable` (never internal or unknown, never a clean end of a stream cut
 * short); every write a client was told succeeded is in the database; no session is half deleted.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ParticipantKind } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";
import { encodeSessionId } from "../../src/domain/ids.js";
import { createTestDatabase, type TestDatabase } from "../setup/databases.js";
import { grpcTransport, transports } from "../setup/server.js";
import { countContents, namespaceIdOf, seedContents, seedSessions } from "../setup/seed.js";
import { spawnServer } from "./harness.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject("database"));
});
afterAll(async () => {
  await db?.close();
});

/**
 * The code a failed call ended with, as gRPC defines it. One correction for the connect-node client:
 * a request its own HTTP/2 stack never sent, because the server's GOAWAY arrived between queueing and
 * sending it, is closed locally with REFUSED_STREAM, which connect-node reports as `internal`
 * ("Stream closed with error code NGHTTP2_REFUSED_STREAM"). gRPC's status mapping makes REFUSED_STREAM
 * `unavailable` (not processed, safe to retry), and that is what it is: the server never saw it.
 */
const codeOf = (err: unknown) => {
  const e = ConnectError.from(err);
  return e.code === Code.Internal && /NGHTTP2_REFUSED_STREAM/.test(e.rawMessage) ? Code.Unavailable : e.code;
};

describe("SIGTERM under load", () => {
  it("drains, exits 0, answers only OK or UNAVAILABLE, and loses no acknowledged write", async () => {
    const ns = "sigterm";
    const doomed = await seedSessions(db.dataSource, 600, ns, { user: "doomed" });
    const namespaceId = await namespaceIdOf(db.dataSource, ns);
    await seedContents(db.dataSource, doomed, { participants: 2, turnsPerParticipant: 2, traces: 1, spansPerTrace: 3, annotationsPerTrace: 1 });
    const server = await spawnServer({ databaseUrl: db.url, env: { SESSIOND_SHUTDOWN_GRACE_MS: "8000" } });
    const ts = transports(server.url);
    const clients = [grpcTransport(server.url), ts["connect/http1.1"], ts["connect/http2"], ts["grpc-web/http1.1"]].map((t) => createClient(SessionService, t));

    const acknowledged: { external: string; turns: bigint[] }[] = [];
    const codes = new Map<Code | "ok", number>();
    const count = (code: Code | "ok") => codes.set(code, (codes.get(code) ?? 0) + 1);
    let stopped = false;

    // Writers: create a session, bind a participant, append turns; each success is remembered.
    const writer = async (w: number) => {
      const client = clients[w % clients.length];
      for (let i = 0; !stopped; i++) {
        try {
          const external = `w${w}-${i}`;
          const { session } = await client.createSession({ namespace: ns, sessionId: external });
          count("ok");
          const entry = { external, turns: [] as bigint[] };
          acknowledged.push(entry);
          await client.bindParticipant({ id: session!.id, participantId: "u", kind: ParticipantKind.USER });
          count("ok");
          for (let t = 0; t < 3; t++) {
            const res = await client.appendTurns({ id: session!.id, turns: [{ participantId: "u", content: `turn ${t}` }] });
            count("ok");
            entry.turns.push(...res.turns.map((x) => x.seq));
          }
        } catch (err) {
          count(codeOf(err));
          if (codeOf(err) === Code.Unavailable) return;
          throw new Error(`writer ${w} over ${["grpc", "connect/http1.1", "connect/http2", "grpc-web/http1.1"][w % clients.length]}: ${String(err)}`);
        }
      }
    };
    // A bulk delete streaming in small batches when the signal arrives.
    const reported = new Set<string>();
    let bulkEnd: unknown = "running";
    const bulk = (async () => {
      try {
        for await (const m of clients[0].bulkDeleteSessions({ namespace: ns, selector: { case: "ids", value: { values: doomed.map((u) => encodeSessionId(namespaceId, u)) } }, batchSize: 5 })) {
          if (m.event.case === "progress") for (const r of m.event.value.results) reported.add(r.identifier);
        }
        bulkEnd = "ok";
      } catch (err) {
        bulkEnd = codeOf(err);
      }
    })();

    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    // Wait until load is really running: writes acknowledged and batches committed.
    while (acknowledged.length < 16 || reported.size < 50) {
      if (bulkEnd !== "running") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    server.kill("SIGTERM");
    stopped = true;
    const results = await Promise.allSettled(writers);
    await bulk;
    const exit = await server.exited;

    expect(exit, server.output().slice(-3000)).toEqual({ code: 0, signal: null });
    expect(server.output()).toContain('"msg":"stopped"');
    for (const r of results) expect(r.status, String((r as PromiseRejectedResult).reason)).toBe("fulfilled");
    expect([...codes.keys()].filter((c) => c !== "ok" && c !== Code.Unavailable)).toEqual([]);
    // The stream was cut short by the shutdown: it must say so, not end as if complete.
    if (reported.size < doomed.length) expect(bulkEnd).toBe(Code.Unavailable);

    // Every acknowledged write is there.
    for (const a of acknowledged) {
      const rows = await db.sql<{ seq: string }>(
        `SELECT t.seq::text AS seq FROM sessions s JOIN namespaces n ON n.id = s.namespace_id LEFT JOIN turns t ON t.namespace_id = s.namespace_id AND t.session_id = s.id
         WHERE n.name = $1 AND s.external_id = $2 ORDER BY t.seq`,
        [ns, a.external],
      );
      expect(rows.length, `session ${a.external} was acknowledged`).toBeGreaterThan(0);
      const seqs = rows.filter((r) => r.seq !== null).map((r) => BigInt(r.seq));
      expect(seqs).toEqual(expect.arrayContaining(a.turns));
    }
    // No session is half deleted.
    for (const u of doomed) {
      const c = await countContents(db.dataSource, [u]);
      if (c.sessions === 0) expect(c).toMatchObject({ participants: 0, turns: 0, traces: 0, spans: 0, annotations: 0 });
      else expect(c).toMatchObject({ sessions: 1, participants: 2, turns: 4, traces: 1, spans: 3, annotations: 1 });
    }
  });
});
