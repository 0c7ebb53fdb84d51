/**
 * The bare contender of the h2load benchmarks (bench:unary, bench:create): connect-node's own adapter on a
 * plain HTTP/2 port and a plain HTTP/1.1 port (no port sharing, no interceptors, no request gate, no
 * validation), its handlers running the same SQL as sessiond through a pg.Pool and mapping rows straight
 * to the responses. It counts the calls it answered, for the h2load runs' check.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { TurnSchema, type Turn } from "../gen/sessiond/v1/conversation_pb.js";
import { SessionSchema, SessionState, type Session } from "../gen/sessiond/v1/session_pb.js";

/** Calls the bare servers answered successfully (their handlers count them). */
export const bareTally = { ok: 0 };

/** The tally h2load checks a bare run against: every handler that returned counts; a failed call never does. */
export const bareCounts = async () => ({ ok: bareTally.ok, failed: 0 });

/** The bare servers over `routes`: gRPC on an HTTP/2 port, Connect on an HTTP/1.1 port. */
export async function startBare(routes: (router: ConnectRouter) => void): Promise<{ h2Url: string; h1Url: string; close(): void }> {
  const handler = connectNodeAdapter({ routes });
  const h2 = http2.createServer(handler);
  const h1 = http.createServer(handler);
  await Promise.all([h2, h1].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", r))));
  const url = (s: { address(): unknown }) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return {
    h2Url: url(h2),
    h1Url: url(h1),
    close() {
      h2.close();
      h1.close();
      h1.closeAllConnections();
    },
  };
}

/** The session columns the bare handlers select (those of sessiond's store), with the namespace's name. */
export const SESSION_COLUMNS = `s.id, s.namespace_id, s.external_id, s.user_id, s.workflow_id, s.workflow_version, s.data, s.labels, s.state,
  s.version, s.create_time, s.update_time, s.delete_time, s.expire_time, s.max_requests_per_minute, s.participant_count,
  s.turn_count, s.trace_count, s.span_count, s.memories_extracted, s.integration_count, n.name AS namespace_name`;

/** A sessions row (with namespace_name) as a Session message whose global id is `id`. */
export function sessionOfRow(r: any, id: string): Session {
  return create(SessionSchema, {
    id, sessionId: r.external_id, namespace: r.namespace_name, user: r.user_id, data: r.data, labels: r.labels,
    state: SessionState.ACTIVE, createTime: timestampFromDate(r.create_time), updateTime: timestampFromDate(r.update_time),
    expireTime: timestampFromDate(r.expire_time), etag: `"v${r.version}"`, maxRequestsPerMinute: r.max_requests_per_minute,
    workflow: { id: r.workflow_id, version: r.workflow_version },
    stats: { participantCount: r.participant_count, turnCount: r.turn_count, traceCount: r.trace_count, spanCount: r.span_count, memoriesExtracted: r.memories_extracted, integrationCount: r.integration_count },
  });
}

/** The turn columns of sessiond's ListTurns (turns t joined to participants p). */
export const TURN_COLUMNS = `t.seq, p.participant_id, t.role, t.content, t.tool_calls, t.metadata, t.request_id, t.create_time`;

/** A turns row as a Turn message. */
export function turnOfRow(r: any): Turn {
  return create(TurnSchema, {
    seq: BigInt(r.seq), participantId: r.participant_id, role: r.role, content: r.content, toolCalls: r.tool_calls, metadata: r.metadata,
    requestId: r.request_id ?? "", createTime: timestampFromDate(r.create_time),
  });
}
