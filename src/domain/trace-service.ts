/**
 * TraceService: recording spans against sessions, reading traces as trees, deleting them, and
 * annotating sessions, traces and spans. Rules and transactions live here; SQL in the trace store.
 */
import { InvalidInputError, NotFoundError, PreconditionError } from "./errors.js";
import { decodeSessionId, encodeSessionId, newUuid } from "./ids.js";
import { decodePageToken, encodePageToken, fingerprint, pageOf } from "./page-token.js";
import {
  checkData,
  checkNamespace,
  checkPageSize,
  checkText,
  DEFAULT_EXPIRES_AFTER_MS,
  DEFAULT_MAX_REQUESTS_PER_MINUTE,
  type JsonObject,
  type SessionRef,
  type StoredSession,
} from "./session-model.js";
import type { SessionKey } from "./session-store.js";
import { insertRetryingGoneNamespace, loadSession, sessionKeyOf } from "./session-service.js";
import { retryOnConflict } from "./retry.js";
import type { Stores } from "./stores.js";
import type { AnnotationValues, RecordResult, ResolvedTarget } from "./trace-store.js";
import {
  checkSpans,
  checkSpanId,
  checkTraceId,
  MAX_ANNOTATION_METADATA_BYTES,
  MAX_EXPLANATION_BYTES,
  MAX_TRACE_IDS_PER_CALL,
  spanTree,
  type Annotation,
  type AnnotationTargetInput,
  type AnnotatorKind,
  type Span,
  type SpanInput,
  type Trace,
} from "./trace-model.js";

/** Input of RecordSpans. */
export interface RecordSpansInput {
  namespace: string;
  /** Global id of the session, or "". */
  session: string;
  /** Caller's session id, or "". */
  sessionId: string;
  spans: SpanInput[];
}

/** Input of Annotate. */
export interface AnnotateInput {
  namespace: string;
  target: AnnotationTargetInput;
  name: string;
  annotatorKind: AnnotatorKind | undefined;
  label: string;
  score: number | undefined;
  explanation: string;
  metadata: JsonObject;
  identifier: string;
}

/** A write that loses a race with a concurrent transaction is run again, up to this many times in all. */
const WRITE_ATTEMPTS = 3;

/** Runs a write again when it lost a race with a concurrent transaction. */
const retrying = <T>(work: () => Promise<T>) => retryOnConflict(work, { attempts: WRITE_ATTEMPTS });

/** Creates the service over the stores. */
export function createTracingService(stores: Stores) {
  const namespaceIdOf = (name: string, create: boolean) => stores.sessions.namespaceId(name, create);

  /**
   * Resolves an annotation target in a namespace, with `tx` so that the target stays until commit (the
   * session row locked, trace and span rows key-share locked). @throws NotFoundError, InvalidInputError
   */
  async function resolveTarget(tx: Stores, namespace: string, namespaceId: string | undefined, target: AnnotationTargetInput, lock = true): Promise<ResolvedTarget> {
    switch (target.kind) {
      case "none":
        throw new InvalidInputError("target", "set one of session, session_id, trace_id or span");
      case "session":
      case "sessionId": {
        const address = target.kind === "session" ? { id: target.id, namespace, sessionId: "" } : { id: "", namespace, sessionId: target.sessionId };
        const s = await loadSession(tx.sessions, address, { lock });
        return { kind: "session", sessionUuid: s.uuid, traceUuid: null, spanRowId: null, otelTraceId: null, otelSpanId: null, key: `session:${s.uuid}` };
      }
      case "trace":
      case "span": {
        const traceId = checkTraceId(target.traceId, target.kind === "trace" ? "target.trace_id" : "target.span.trace_id");
        const spanId = target.kind === "span" ? checkSpanId(target.spanId, "target.span.span_id") : undefined;
        const found = namespaceId ? await tx.traces.resolve(namespaceId, traceId, spanId) : undefined;
        if (!found) throw new NotFoundError(spanId ? `span ${spanId} of trace ${traceId} not found` : `trace ${traceId} not found`);
        return found;
      }
    }
  }

  return {
    /** Records a batch of spans in one transaction. */
    async record(input: RecordSpansInput, opts: { createSession?: boolean } = {}): Promise<RecordResult> {
      const namespace = checkNamespace(input.namespace);
      const spans = checkSpans(input.spans);
      if (input.session && input.sessionId) throw new InvalidInputError("session", "set either session or session_id, not both");
      let key: SessionKey | undefined;
      let namespaceId: string | undefined;
      if (opts.createSession && input.sessionId) {
        // OTLP: the session named by session.id is created when it does not exist yet.
        const session = await findOrCreateSession(namespace, input.sessionId);
        key = { namespaceId: session.namespaceId, uuid: session.uuid };
        namespaceId = session.namespaceId;
      } else if (input.session || input.sessionId) {
        const ref: SessionRef = input.session
          ? { kind: "uuid", ...decodeSessionId(input.session, "session"), namespace }
          : { kind: "external", namespace, sessionId: checkText("session_id", input.sessionId, 256, { id: true }) };
        // Undefined when the namespace does not exist, or the id is of a session of another namespace.
        key = await sessionKeyOf(stores.sessions, ref);
        if (!key) throw new NotFoundError(`session ${input.session || `"${input.sessionId}"`} not found in namespace "${namespace}"`);
        namespaceId = key.namespaceId;
      } else {
        namespaceId = (await namespaceIdOf(namespace, true))!;
      }
      const missing = () => new NotFoundError(`session ${input.session || `"${input.sessionId}"`} not found in namespace "${namespace}"`);
      let sessionUuid: string | null = null;
      if (key) {
        // By its own id the session goes straight to the statement; by the caller's id it is found first
        // (a session deleted and made again under that id in between is then NOT_FOUND: the call raced it).
        const uuid = "uuid" in key ? key.uuid : (await stores.sessions.find(key))?.uuid;
        if (uuid === undefined) throw missing();
        sessionUuid = uuid;
      }
      // One statement: the session is checked under its row lock, so a cancel or delete that commits meanwhile wins.
      const result = await retrying(() => stores.traces.record(namespaceId!, sessionUuid, spans));
      if (!("refused" in result)) return result;
      if (result.refused === "missing") throw missing();
      const id = encodeSessionId(namespaceId!, sessionUuid!);
      throw new PreconditionError(`session ${id} is ${result.refused === "cancelled" ? "cancelled" : "deleted"}; recording spans is not allowed`);
    },

    /** One page of a session's traces, or of the traces under no session. */
    async list(input: { namespace: string; session: string; sessionId: string; withoutSession: boolean; pageSize: number; pageToken: string }): Promise<{ traces: Trace[]; nextPageToken: string }> {
      const namespace = checkNamespace(input.namespace);
      const limit = checkPageSize(input.pageSize);
      if (input.withoutSession && (input.session || input.sessionId)) throw new InvalidInputError("without_session", "set it alone, without session or session_id");
      if (!input.withoutSession && !input.session && !input.sessionId) throw new InvalidInputError("session", "set session, session_id or without_session");
      if (input.session && input.sessionId) throw new InvalidInputError("session", "set either session or session_id, not both");
      if (input.session) decodeSessionId(input.session, "session");
      const session = input.withoutSession ? undefined : await loadSession(stores.sessions, { id: input.session, namespace, sessionId: input.sessionId });
      const fp = fingerprint({ namespace, session: session?.uuid ?? null });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace and session") : undefined;
      const namespaceId = session ? session.namespaceId : await namespaceIdOf(namespace, false);
      if (!namespaceId) return { traces: [], nextPageToken: "" };
      const rows = await stores.traces.list(namespaceId, session?.uuid ?? null, after, limit + 1);
      const page = pageOf(rows, limit, (last) => encodePageToken(last, fp));
      return { traces: page.items, nextPageToken: page.nextPageToken };
    },

    /** A trace with its spans as a tree. */
    async get(namespaceName: string, traceIdInput: string): Promise<{ trace: Trace; spans: { span: Span; depth: number }[] }> {
      const namespace = checkNamespace(namespaceName);
      const traceId = checkTraceId(traceIdInput);
      const namespaceId = await namespaceIdOf(namespace, false);
      const found = namespaceId ? await stores.traces.get(namespaceId, traceId) : undefined;
      if (!found) throw new NotFoundError(`trace ${traceId} not found in namespace "${namespace}"`);
      return { trace: found.trace, spans: spanTree(found.spans) };
    },

    /** Deletes traces with their spans and annotations. */
    async delete(namespaceName: string, traceIds: string[]) {
      const namespace = checkNamespace(namespaceName);
      if (traceIds.length === 0 || traceIds.length > MAX_TRACE_IDS_PER_CALL) throw new InvalidInputError("trace_ids", `must hold 1 to ${MAX_TRACE_IDS_PER_CALL} ids`);
      const ids = [...new Set(traceIds.map((id, i) => checkTraceId(id, `trace_ids[${i}]`)))];
      const namespaceId = await namespaceIdOf(namespace, false);
      if (!namespaceId) return { traces: 0, spans: 0, annotations: 0 };
      return retrying(() => stores.transaction((tx) => tx.traces.delete(namespaceId, ids)));
    },

    /** Annotates a session, trace or span; with an identifier, repeats update. */
    async annotate(input: AnnotateInput): Promise<{ annotation: Annotation; created: boolean }> {
      const namespace = checkNamespace(input.namespace);
      if (!input.annotatorKind) throw new InvalidInputError("annotator_kind", "is required: HUMAN, LLM or CODE");
      if (input.score !== undefined && !Number.isFinite(input.score)) throw new InvalidInputError("score", "must be a finite number");
      const values: AnnotationValues = {
        name: checkText("name", input.name, 256, { required: true }),
        annotatorKind: input.annotatorKind,
        label: checkText("label", input.label, 256),
        score: input.score ?? null,
        explanation: checkText("explanation", input.explanation, MAX_EXPLANATION_BYTES),
        metadata: checkData(input.metadata, "metadata", MAX_ANNOTATION_METADATA_BYTES),
        identifier: checkText("identifier", input.identifier, 256),
      };
      if (Buffer.byteLength(values.explanation, "utf8") > MAX_EXPLANATION_BYTES) throw new InvalidInputError("explanation", `must be at most ${MAX_EXPLANATION_BYTES} bytes`);
      if (input.target.kind === "none") throw new InvalidInputError("target", "set one of session, session_id, trace_id or span");
      const namespaceId = await namespaceIdOf(namespace, false);
      return retrying(() =>
        stores.transaction(async (tx) => {
          const target = await resolveTarget(tx, namespace, namespaceId, input.target);
          return tx.traces.annotate(namespaceId!, target, values);
        }),
      );
    },

    /** One page of a target's annotations. */
    async annotations(input: { namespace: string; target: AnnotationTargetInput; pageSize: number; pageToken: string }): Promise<{ annotations: Annotation[]; nextPageToken: string }> {
      const namespace = checkNamespace(input.namespace);
      const limit = checkPageSize(input.pageSize);
      const namespaceId = await namespaceIdOf(namespace, false);
      const target = await resolveTarget(stores, namespace, namespaceId, input.target, false);
      const fp = fingerprint({ namespace, target: target.key });
      const after = input.pageToken ? decodePageToken(input.pageToken, fp, "namespace and target") : undefined;
      const rows = await stores.traces.annotations(namespaceId!, target.key, after, limit + 1);
      const page = pageOf(rows, limit, (last) => encodePageToken(last, fp));
      return { annotations: page.items, nextPageToken: page.nextPageToken };
    },
  };

  /** OTLP: the session named by spans' session.id, created with the defaults (and no client secret) when it does not exist yet. */
  async function findOrCreateSession(namespace: string, sessionId: string): Promise<StoredSession> {
    return insertRetryingGoneNamespace(stores.sessions, namespace, async (namespaceId) => {
      const found = await stores.sessions.find({ namespaceId, externalId: sessionId });
      if (found) return found;
      try {
        return await stores.sessions.insert({ uuid: newUuid(), clientSecretHash: null, namespaceId, externalId: checkText("session.id", sessionId, 256, { required: true, id: true }), user: "", workflowId: "", workflowVersion: "", data: {}, labels: {}, expiresAfterMs: DEFAULT_EXPIRES_AFTER_MS, maxRequestsPerMinute: DEFAULT_MAX_REQUESTS_PER_MINUTE });
      } catch (err) {
        // Created meanwhile by a concurrent export.
        const existing = await stores.sessions.find({ namespaceId, externalId: sessionId });
        if (existing) return existing;
        throw err;
      }
    });
  }
}

/** TraceService's domain operations. */
export type TracingService = ReturnType<typeof createTracingService>;
