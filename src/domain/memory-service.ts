/**
 * MemoryService: reading and removing what integration learned (by subject, by source session, by id),
 * and a namespace's integrator configuration.
 */
import { checkParticipantId } from "./conversation-model.js";
import { InvalidInputError } from "./errors.js";
import { decodeGlobalId, decodeSessionId, encodeGlobalId, encodeSessionId, sessionIdIn } from "./ids.js";
import { DEFAULT_INTEGRATOR_TIMEOUT_MS, MAX_INTEGRATOR_TIMEOUT_MS, type IntegratorConfig } from "./integrator-contract.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import type { MemorySelector, StoredMemory } from "./memory-store.js";
import { checkNamespace, checkPageSize, checkText } from "./session-model.js";
import type { Stores } from "./stores.js";

/** A memory as the API shows it. */
export interface Memory {
  id: string;
  namespace: string;
  /** Global id of the source session; "" once it is deleted. */
  sourceSession: string;
  subjectParticipantId: string;
  subjectUser: string;
  content: string;
  metadata: Record<string, unknown>;
  integratedBy: string;
  createTime: Date;
}

/** Filters of ListMemories, as they arrive. */
export interface ListMemoriesInput {
  namespace: string;
  subjectParticipantId: string;
  subjectUser: string;
  sourceSession: string;
  sourceSessionId: string;
  pageSize: number;
  pageToken: string;
}

/** What DeleteMemories selects, as it arrives. */
export type DeleteMemoriesSelector =
  | { kind: "ids"; values: string[] }
  | { kind: "sourceSession"; id: string }
  | { kind: "sourceSessionId"; sessionId: string }
  | { kind: "subject"; participantId: string; user: string }
  | { kind: "none" };

export const MAX_DELETE_MEMORY_IDS = 1000;
const MAX_URL = 2048;

/** Checks an integrator configuration; fills the default timeout. @throws InvalidInputError */
export function checkIntegratorConfig(c: { kind: "rules" | "remote"; url: string; timeoutMs: number | undefined }): IntegratorConfig {
  const timeoutMs = c.timeoutMs ?? DEFAULT_INTEGRATOR_TIMEOUT_MS;
  if (!(timeoutMs >= 1 && timeoutMs <= MAX_INTEGRATOR_TIMEOUT_MS)) throw new InvalidInputError("config.timeout", `must be between 1 ms and ${MAX_INTEGRATOR_TIMEOUT_MS / 1000} s`);
  if (c.kind === "rules") {
    if (c.url) throw new InvalidInputError("config.url", "must be empty for the RULES integrator");
    return { kind: "rules", url: "", timeoutMs };
  }
  let url: URL;
  try {
    url = new URL(c.url);
  } catch {
    throw new InvalidInputError("config.url", "must be an absolute http(s) URL for the REMOTE integrator");
  }
  checkText("config.url", c.url, MAX_URL, { id: true });
  // "?" and "#" checked in the text: `new URL` drops an empty query or fragment, which would still
  // change the path the client appends the method to.
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password || c.url.includes("?") || c.url.includes("#")) {
    throw new InvalidInputError("config.url", `must be an http(s) base URL of at most ${MAX_URL} characters, without credentials, query or fragment`);
  }
  return { kind: "remote", url: url.href.replace(/\/$/, ""), timeoutMs };
}

/** Creates the service over the stores. */
export function createMemoryService(stores: Stores) {
  // A memory's source session is in the memory's namespace (a composite foreign key).
  const toMemory = (namespace: string, namespaceId: string) => (m: StoredMemory): Memory => ({
    id: encodeGlobalId("Memory", m.uuid),
    namespace,
    sourceSession: m.sourceSessionUuid ? encodeSessionId(namespaceId, m.sourceSessionUuid) : "",
    subjectParticipantId: m.subjectParticipantId,
    subjectUser: m.subjectUser,
    content: m.content,
    metadata: m.metadata,
    integratedBy: m.integratedBy,
    createTime: m.createTime,
  });

  /**
   * The uuid of a source session named by global id or caller id; null when it does not exist (or its
   * id is of a session of another namespace), undefined when none is named.
   */
  async function sourceUuid(namespaceId: string, id: string, sessionId: string, field: string): Promise<string | null | undefined> {
    if (id && sessionId) throw new InvalidInputError(field, `set either ${field} or ${field}_id, not both`);
    if (id) {
      const decoded = decodeSessionId(id, field);
      return sessionIdIn(decoded, namespaceId) ? decoded.uuid : null;
    }
    if (!sessionId) return undefined;
    const session = await stores.sessions.find({ namespaceId, externalId: checkText(`${field}_id`, sessionId, 256, { id: true }) });
    return session ? session.uuid : null;
  }

  return {
    /** One page of a namespace's memories, newest first. */
    async list(input: ListMemoriesInput): Promise<{ memories: Memory[]; nextPageToken: string }> {
      const namespace = checkNamespace(input.namespace);
      const limit = checkPageSize(input.pageSize);
      const sel: MemorySelector = {
        subjectParticipantId: input.subjectParticipantId ? checkParticipantId(input.subjectParticipantId, "subject_participant_id") : undefined,
        subjectUser: input.subjectUser ? checkText("subject_user", input.subjectUser, 256) : undefined,
      };
      const fp = fingerprint({ namespace, ...sel, s: input.sourceSession, si: input.sourceSessionId });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace and filters") : undefined;
      if (input.sourceSession) decodeSessionId(input.sourceSession, "source_session");
      const namespaceId = await stores.sessions.namespaceId(namespace, false);
      if (!namespaceId) return { memories: [], nextPageToken: "" };
      const source = await sourceUuid(namespaceId, input.sourceSession, input.sourceSessionId, "source_session");
      if (source === null) return { memories: [], nextPageToken: "" };
      if (source) sel.sourceSessionUuid = source;
      const rows = await stores.memories.list(namespaceId, sel, after, limit + 1);
      const page = pageOf(rows, limit, (last) => encodePageToken(last, fp));
      return { memories: page.items.map(toMemory(namespace, namespaceId)), nextPageToken: page.nextPageToken };
    },

    /** Deletes the selected memories of a namespace; returns how many went. */
    async delete(namespaceName: string, selector: DeleteMemoriesSelector): Promise<number> {
      const namespace = checkNamespace(namespaceName);
      const sel: MemorySelector = {};
      switch (selector.kind) {
        case "none":
          throw new InvalidInputError("selector", "set one of ids, source_session, source_session_id or subject");
        case "ids":
          if (selector.values.length === 0 || selector.values.length > MAX_DELETE_MEMORY_IDS) throw new InvalidInputError("ids.values", `must hold 1 to ${MAX_DELETE_MEMORY_IDS} ids`);
          sel.ids = selector.values.map((id, i) => decodeGlobalId("Memory", id, `ids.values[${i}]`));
          break;
        case "sourceSession":
          decodeSessionId(selector.id, "source_session");
          break;
        case "subject":
          if (!selector.participantId && !selector.user) throw new InvalidInputError("subject", "set participant_id, user or both");
          if (selector.participantId) sel.subjectParticipantId = checkParticipantId(selector.participantId, "subject.participant_id");
          if (selector.user) sel.subjectUser = checkText("subject.user", selector.user, 256);
          break;
      }
      const namespaceId = await stores.sessions.namespaceId(namespace, false);
      if (!namespaceId) return 0;
      if (selector.kind === "sourceSession" || selector.kind === "sourceSessionId") {
        const source = await sourceUuid(namespaceId, selector.kind === "sourceSession" ? selector.id : "", selector.kind === "sourceSessionId" ? selector.sessionId : "", "source_session");
        if (!source) return 0;
        sel.sourceSessionUuid = source;
      }
      return stores.memories.delete(namespaceId, sel);
    },

    /** The namespace's integrator (RULES when the namespace has none configured or does not exist). */
    async integratorConfig(namespaceName: string): Promise<IntegratorConfig> {
      const namespaceId = await stores.sessions.namespaceId(checkNamespace(namespaceName), false);
      return namespaceId ? stores.memories.integratorConfig(namespaceId) : { kind: "rules", url: "", timeoutMs: DEFAULT_INTEGRATOR_TIMEOUT_MS };
    },

    /** Sets the namespace's integrator, creating the namespace if needed. */
    async updateIntegratorConfig(namespaceName: string, config: { kind: "rules" | "remote"; url: string; timeoutMs: number | undefined }): Promise<IntegratorConfig> {
      const namespace = checkNamespace(namespaceName);
      const checked = checkIntegratorConfig(config);
      const namespaceId = (await stores.sessions.namespaceId(namespace, true))!;
      return stores.memories.setIntegratorConfig(namespaceId, checked);
    },
  };
}

/** MemoryService's domain operations. */
export type MemoryService = ReturnType<typeof createMemoryService>;
