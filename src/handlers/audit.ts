/**
 * The audit log's side of a call: every mutating call (all but Get*, List* and Watch*) is recorded when it
 * ends, with who made it (principalKey), which RPC, which namespace, how many items it named and the
 * code it ended with (a server stream: when the stream ends, `canceled` if the client went away).
 * Calls refused before their body was read never get here: they are logged and counted as rejected.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { Code, Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Principal } from "../domain/access.js";
import type { AuditLog } from "../domain/audit-log.js";
import { decodeSessionId, type SessionGlobalId } from "../domain/ids.js";
import { actorOf, NAMESPACE_HEADER, namespaceHolder, policyOf, principalKey } from "./auth.js";
import { requestIdKey } from "./logging.js";
import { codeOf, seeRequest, watchStream } from "./streams.js";

/** What a finished call tells the audit log. */
interface Call {
  principal: Principal | undefined;
  method: DescMethod;
  requestId: string;
  /** The request message (undefined when it never arrived). */
  message: Record<string, unknown> | undefined;
  header: Headers;
}

/** Records finished calls in the audit log. */
export interface CallAuditor {
  /** Records mutating RPCs when they end; put it outside the error mapping, so that it sees the codes clients get. */
  interceptor: Interceptor;
  /**
   * For a plain HTTP endpoint standing for `method` (OTLP/HTTP): returns the function that records the
   * call once it is answered, with its code (undefined for ok) and its request message (undefined when
   * the body never decoded).
   */
  httpCall(principal: Principal | undefined, method: DescMethod, header: Headers): (code: Code | undefined, message: Record<string, unknown> | undefined) => void;
}

/** Records calls in `audit`: as an interceptor for RPCs, and by hand for plain HTTP endpoints. */
export function createAuditing(audit: AuditLog): CallAuditor {
  function record(call: Call, code: Code | undefined, items?: number, res?: Record<string, unknown>, detail?: AuditDetail): void {
    const { message } = call;
    audit.record({
      actor: actorOf(call.principal),
      method: policyOf(call.method).name,
      requestId: call.requestId,
      time: new Date(),
      namespace: namespaceNamed(call.method, message, call.header) || sessionNamespace(res),
      session: message ? sessionOf(sessionGlobalId(call.method, message)) : undefined,
      itemCount: items ?? (message ? itemsNamed(message) : 1),
      code: code === undefined ? "ok" : codeToString(code),
      detail,
    });
  }

  /** Put it outside the error mapping, so that it sees the codes clients get. */
  const interceptor: Interceptor = (next) => async (req) => {
    const policy = policyOf(req.method);
    if (!policy.mutating || policy.open) return next(req);
    const call: Call = { principal: req.contextValues.get(principalKey), method: req.method, requestId: req.contextValues.get(requestIdKey), message: undefined, header: req.header };
    let res;
    try {
      res = await next(seeRequest(req, (message) => (call.message = message)));
    } catch (err) {
      record(call, codeOf(err, req.signal));
      throw err;
    }
    if (!res.stream) {
      record(call, undefined, undefined, res.message as unknown as Record<string, unknown>);
      return res;
    }
    let total: number | undefined;
    let detail: AuditDetail | undefined;
    return {
      ...res,
      message: watchStream(res.message, {
        signal: req.signal,
        onMessage: (m) => {
          total = streamTotal(m as unknown as Record<string, unknown>) ?? total;
          detail = streamDetail(m as unknown as Record<string, unknown>, detail);
        },
        onEnd: (code) => record(call, code, total, undefined, detail),
      }),
    };
  };

  /** For a plain HTTP endpoint standing for `method` (OTLP/HTTP): records its call once it is answered. */
  const httpCall = (principal: Principal | undefined, method: DescMethod, header: Headers) => (code: Code | undefined, message: Record<string, unknown> | undefined) =>
    record({ principal, method, requestId: header.get("x-request-id") ?? "", message, header }, code, message ? undefined : 0);

  return { interceptor, httpCall };
}

/**
 * The namespace a request names, for the audit log: its `namespace` field (or header); when that is
 * empty, "default" (what the services read it as), except for AdminService (empty means all) and for a
 * session addressed by global id, whose namespace is the session's: "" here, resolved later.
 */
function namespaceNamed(method: DescMethod, message: Record<string, unknown> | undefined, header: Headers): string {
  if (!message) return "";
  const holder = namespaceHolder(method.input, message);
  const named = holder ? String(holder.namespace ?? "") : (header.get(NAMESPACE_HEADER) ?? "");
  if (named || method.parent.typeName === "sessiond.v1.AdminService" || sessionGlobalId(method, message)) return named;
  return "default";
}

/** The session global id a request addresses (`id`, `session`, or UpdateSession's `session.id`), if any. */
function sessionGlobalId(method: DescMethod, message: Record<string, unknown>): string {
  if (method.parent.typeName === "sessiond.v1.SessionService" && typeof message.id === "string") return message.id;
  if (typeof message.session === "string") return message.session;
  const inner = message.session as { id?: unknown } | undefined;
  return typeof inner?.id === "string" ? inner.id : "";
}

/** What a session global id names, or undefined when it is not one. */
function sessionOf(id: string): SessionGlobalId | undefined {
  try {
    return id ? decodeSessionId(id) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How many items a request names, for the audit log: ids in a list, turns, spans; a session with the
 * participants it is created with (1 + participants); else 1.
 */
function itemsNamed(message: Record<string, unknown>): number {
  if (Array.isArray(message.participants)) return 1 + message.participants.length;
  for (const key of ["turns", "spans", "traceIds", "resourceSpans"]) {
    const v = message[key];
    if (Array.isArray(v)) return key === "resourceSpans" ? countOtlpSpans(v) : v.length;
  }
  const selector = message.selector as { case?: string; value?: { values?: unknown[] } } | undefined;
  if (selector?.value && Array.isArray(selector.value.values)) return selector.value.values.length;
  return 1;
}

function countOtlpSpans(resourceSpans: any[]): number {
  let n = 0;
  for (const r of resourceSpans) for (const s of r.scopeSpans ?? []) n += s.spans?.length ?? 0;
  return n;
}

/** A bulk stream's total, from its `started` message. */
function streamTotal(m: Record<string, unknown>): number | undefined {
  const event = m.event as { case?: string; value?: { total?: number | bigint } } | undefined;
  return event?.case === "started" && event.value?.total !== undefined ? Number(event.value.total) : undefined;
}

type AuditDetail = Record<string, string | number>;

const SUBJECT_KINDS: Record<number, string> = { 1: "user", 2: "participant" };

/** camelCase -> snake_case. */
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A message's numeric fields, flat and snake_case (nested messages prefixed with their field's name). */
function flatCounts(value: Record<string, unknown>, prefix = ""): AuditDetail {
  const out: AuditDetail = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "$typeName") continue;
    if (typeof v === "bigint" || typeof v === "number") out[prefix + snake(k)] = Number(v);
    else if (v && typeof v === "object") Object.assign(out, flatCounts(v as Record<string, unknown>, `${prefix}${snake(k)}_`));
  }
  return out;
}

/**
 * What an erasure's stream (ForgetSubject) tells the audit log: the kind of subject and the digest of
 * its id (from `started`: the id itself never), then the counts (from `summary`).
 */
function streamDetail(m: Record<string, unknown>, before: AuditDetail | undefined): AuditDetail | undefined {
  const event = m.event as { case?: string; value?: Record<string, unknown> } | undefined;
  const v = event?.value;
  if (event?.case === "started" && typeof v?.subjectSha256 === "string") return { subject_kind: SUBJECT_KINDS[Number(v.subjectKind)] ?? "", subject_sha256: v.subjectSha256 };
  if (event?.case === "summary" && before?.subject_sha256 && v?.counts) return { ...before, ...flatCounts(v.counts as Record<string, unknown>) };
  return before;
}

/** The namespace of the session a response carries (or names, as DeleteSession's does), if any. */
function sessionNamespace(res: Record<string, unknown> | undefined): string {
  const s = res?.session as { namespace?: string } | undefined;
  return s?.namespace ?? (typeof res?.namespace === "string" ? res.namespace : "");
}
