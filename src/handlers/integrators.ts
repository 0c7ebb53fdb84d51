/**
 * Which integrator a namespace's configuration means: the built-in rules, or REMOTE, a team's own
 * IntegratorService called over the Connect protocol (HTTP/1.1, binary protobuf) at the configured URL.
 * It lives with the handlers because the remote one is a Connect client. Clients are kept per URL so
 * connections are reused across calls.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ParticipantSchema } from "../../gen/sessiond/v1/conversation_pb.js";
import { IntegratorService } from "../../gen/sessiond/v1/integrator_service_pb.js";
import { rulesIntegrator } from "../domain/integrators/rules.js";
import type { Integrator, IntegratorConfig, IntegratorInput, SummaryInput } from "../domain/integrator-contract.js";
import { kindToProto, participantToProto, turnToProto } from "./conversation-mapper.js";

/** Largest Integrate response read (1,000 memories of 8 KiB plus insights fit well within it). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** The session's participants as an integrator is told of them (without insights). */
const speakersToProto = (participants: SummaryInput["participants"]) =>
  participants.map((p) => create(ParticipantSchema, { participantId: p.participantId, kind: kindToProto(p.kind), displayName: p.displayName }));

/** Remote clients kept at most; the oldest is dropped beyond it. */
const MAX_CLIENTS = 256;

/**
 * Returns the integrator for a configuration: the built-in rules, or a client of the remote service
 * whose calls go through `interceptors` (handlers/tracing.ts adds a span and `traceparent` when tracing).
 */
export function createIntegratorFactory(options: { interceptors?: Interceptor[] } = {}): (config: IntegratorConfig) => Integrator {
  const interceptors = options.interceptors ?? [];
  const clients = new Map<string, Client<typeof IntegratorService>>();

  function clientFor(url: string) {
    let client = clients.get(url);
    if (!client) {
      client = createClient(IntegratorService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true, readMaxBytes: MAX_RESPONSE_BYTES, interceptors }));
      clients.set(url, client);
      if (clients.size > MAX_CLIENTS) clients.delete(clients.keys().next().value!);
    }
    return client;
  }

  return (config) => {
    if (config.kind === "rules") return rulesIntegrator;
    const client = clientFor(config.url);
    /** The request's part every call has: the session, its turns given and its participants. */
    const about = (input: SummaryInput | IntegratorInput) => ({
      namespace: input.namespace,
      session: input.session.id,
      sessionId: input.session.sessionId,
      user: input.session.user,
      turns: input.turns.map(turnToProto),
      participants: speakersToProto(input.participants),
    });
    return {
      async integrate(input, signal) {
        const res = await client.integrate({ ...about(input), participant: participantToProto(input.participant) }, { signal, timeoutMs: config.timeoutMs });
        return {
          insights: res.insights,
          memories: res.memories.map((m) => ({ content: m.content, subjectParticipantId: m.subjectParticipantId, subjectUser: m.subjectUser, metadata: m.metadata ?? {} })),
        };
      },
      async summarize(input, signal) {
        const res = await client.integrate({ ...about(input), summarize: true, previousSummary: input.previousSummary }, { signal, timeoutMs: config.timeoutMs });
        return res.summary || undefined;
      },
    };
  };
}
