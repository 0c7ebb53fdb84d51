import { Code, ConnectError } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { SessionState } from "../../gen/sessiond/v1/session_pb.js";
import { translateDatabaseError } from "../../src/db/errors.js";
import type { Services } from "../../src/domain/services.js";
import { TEST_ADMIN_KEY } from "../setup/auth.js";
import { useDatabase } from "../setup/context.js";
import { rpcAs } from "../setup/rpc.js";

const ctx = useDatabase();

/** SessionService through every route and guard of the server, as the ADMIN key; log lines go to `logs`. */
function clientFor(services: Services, logs: string[] = []) {
  return rpcAs(services, TEST_ADMIN_KEY, { logs }).sessions;
}

beforeAll(async () => {
  await ctx.services.apiKeys.ensureBootstrap(TEST_ADMIN_KEY);
});

describe("SessionService handlers", () => {
  it("map every Session field to protobuf and back", async () => {
    const client = clientFor(ctx.services);
    const { session } = await client.createSession({
      namespace: "rpc",
      sessionId: "m1",
      user: "u",
      workflow: { id: "w", version: "2" },
      data: { n: 1.5, s: "x", b: true, l: [1, 2], o: { z: null } },
      labels: { a: "b" },
      expiresAfter: { seconds: 90n, nanos: 0 },
      maxRequestsPerMinute: 7,
    });
    expect(session).toMatchObject({
      namespace: "rpc",
      sessionId: "m1",
      user: "u",
      workflow: { id: "w", version: "2" },
      data: { n: 1.5, s: "x", b: true, l: [1, 2], o: { z: null } },
      labels: { a: "b" },
      state: SessionState.ACTIVE,
      maxRequestsPerMinute: 7,
      etag: '"v1"',
      stats: { participantCount: 0, turnCount: 0, traceCount: 0, spanCount: 0, memoriesExtracted: 0, integrationCount: 0 },
    });
    expect(Number(session!.expireTime!.seconds - session!.createTime!.seconds)).toBe(90);
    expect(session!.deleteTime).toBeUndefined();
  });

  it("rejects an unknown filter state and a negative duration, naming the field", async () => {
    const client = clientFor(ctx.services);
    await expect(client.listSessions({ filter: { state: 42 as SessionState } })).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "filter.state: unknown state 42" });
    await expect(client.createSession({ expiresAfter: { seconds: -5n } })).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "expires_after: must be positive" });
  });

  it("turns an unexpected error into INTERNAL with a request id, logging the cause but never sending it", async () => {
    const logs: string[] = [];
    const broken = { ...ctx.services, sessions: { ...ctx.sessions, get: async () => { throw new Error('relation "sessions" does not exist at SELECT secret_column'); } } } as Services;
    const err = (await clientFor(broken, logs).getSession({ id: "x" }).catch((e) => e)) as ConnectError;
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(request id [\w-]+\)$/);
    expect(logs.join("")).toContain("secret_column");
  });

  // The stores translate database errors (src/db/errors.ts); the handlers see only the domain's.
  it("reports a deadlock or serialization failure as ABORTED, to be retried, without database details", async () => {
    for (const code of ["40P01", "40001"]) {
      const lost = { ...ctx.services, sessions: { ...ctx.sessions, get: async () => { throw translateDatabaseError(Object.assign(new Error("deadlock detected on relation sessions"), { code })); } } } as Services;
      const err = (await clientFor(lost).getSession({ id: "x" }).catch((e) => e)) as ConnectError;
      expect(err.code).toBe(Code.Aborted);
      expect(err.rawMessage).toMatch(/^a concurrent change to the same data won; retry the call \(request id [\w-]+\)$/);
    }
  });

  it("reports an unreachable database as UNAVAILABLE", async () => {
    const down = { ...ctx.services, sessions: { ...ctx.sessions, get: async () => { throw translateDatabaseError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })); } } } as Services;
    await expect(clientFor(down).getSession({ id: "x" })).rejects.toMatchObject({ code: Code.Unavailable });
  });
});
