/**
 * One session in detail: its fields, participants (ListParticipants), its last turns (ListTurns newest
 * first, shown in conversation order), traces (ListTraces; a trace opens as an indented span tree from
 * GetTrace) and the annotations on the session (ListAnnotations). Each part loads on its own: one
 * failing call shows its error in place.
 */
import { ParticipantKind, type Participant, type Turn } from "../../gen/sessiond/v1/conversation_pb.js";
import type { Session } from "../../gen/sessiond/v1/session_pb.js";
import { AnnotatorKind, SpanKind, StatusCode, type Annotation, type Trace } from "../../gen/sessiond/v1/trace_pb.js";
import { describeError, type Api } from "./api.js";
import { enumLabel, fmtDuration, fmtMs, fmtNumber, fmtTime, h, msBetween } from "./dom.js";
import { stateName } from "./sessions.js";

/** Turns shown per session (the last ones, read newest first and shown oldest first). */
const TURNS_SHOWN = 100;
/** Traces listed per session (the newest ones). */
const TRACES_SHOWN = 20;

/** Shows sessions in `panel`; a newer `show` supersedes one still loading. */
export function createDetail(api: Api, panel: HTMLElement, onClose: () => void) {
  let shown = 0;

  function close(): void {
    shown++;
    panel.hidden = true;
    panel.replaceChildren();
    onClose();
  }

  async function show(listed: Session): Promise<void> {
    const call = ++shown;
    const id = listed.id;
    const namespace = listed.namespace;
    panel.hidden = false;
    panel.replaceChildren(h("p", { class: "muted" }, `Loading ${listed.sessionId}…`));
    const [got, participants, turns, traces, annotations] = await Promise.allSettled([
      api.sessions.getSession({ id, showDeleted: true }),
      api.sessions.listParticipants({ id }),
      api.sessions.listTurns({ id, pageSize: TURNS_SHOWN, newestFirst: true }),
      api.traces.listTraces({ namespace, session: id, pageSize: TRACES_SHOWN }),
      api.traces.listAnnotations({ namespace, target: { target: { case: "session", value: id } } }),
    ]);
    if (call !== shown) return;
    const s = got.status === "fulfilled" && got.value.session ? got.value.session : listed;
    const closeButton = h("button", { type: "button", class: "icon", testid: "detail-close", "aria-label": "Close" }, "×");
    closeButton.addEventListener("click", close);
    panel.replaceChildren(
      h("div", { class: "detail-head" }, h("h2", { testid: "detail-title" }, s.sessionId), closeButton),
      got.status === "rejected" ? failure(got.reason) : "",
      fields(s),
      section("Participants", "participants", participants, (r) => participantTable(r.participants), (r) => r.participants.length),
      section("Turns", "turns", turns, (r) => turnList(r.turns, s.stats?.turnCount ?? r.turns.length), (r) => s.stats?.turnCount ?? r.turns.length),
      section("Traces", "traces", traces, (r) => traceList(r.traces, namespace), (r) => r.traces.length),
      section("Annotations", "annotations", annotations, (r) => annotationList(r.annotations), (r) => r.annotations.length),
    );
  }

  /** A titled part of the detail: its content, or the error its call failed with. */
  function section<T>(title: string, testid: string, result: PromiseSettledResult<T>, render: (value: T) => Node, count: (value: T) => number): HTMLElement {
    const body = result.status === "fulfilled" ? render(result.value) : failure(result.reason);
    const n = result.status === "fulfilled" ? ` (${fmtNumber(count(result.value))})` : "";
    return h("section", { testid: `detail-${testid}` }, h("h3", {}, title + n), body);
  }

  function traceList(traces: Trace[], namespace: string): Node {
    if (!traces.length) return empty("No traces.");
    return h("div", {}, ...traces.map((t, i) => traceItem(t, namespace, i === 0)));
  }

  /** A trace as a <details>; its span tree is fetched when it is first opened (the newest opens at once). */
  function traceItem(t: Trace, namespace: string, open: boolean): HTMLElement {
    const tree = h("div", { class: "span-tree" }, h("p", { class: "muted" }, "Loading spans…"));
    const status = t.statusCode === StatusCode.UNSPECIFIED ? null : h("span", { class: `badge status-${t.statusCode}` }, enumLabel(StatusCode, t.statusCode));
    const item = h(
      "details",
      { class: "trace", testid: "trace", "data-trace-id": t.traceId },
      h("summary", {}, h("b", {}, t.rootSpanName || "(root span not received)"), ` · ${t.spanCount} spans · ${fmtDuration(t.duration)} `, status, h("span", { class: "mono muted" }, ` ${t.traceId}`)),
      tree,
    );
    let loaded = false;
    item.addEventListener("toggle", async () => {
      if (!item.open || loaded) return;
      loaded = true;
      try {
        const { spans } = await api.traces.getTrace({ namespace, traceId: t.traceId });
        tree.replaceChildren(
          ...spans.map(({ span, depth }) => {
            const line = h(
              "div",
              { class: `span${span?.statusCode === StatusCode.ERROR ? " error-span" : ""}`, testid: "span", "data-depth": depth },
              depth > 0 ? h("span", { class: "branch" }, "└ ") : null,
              h("b", {}, span?.name ?? ""),
              h("span", { class: "muted" }, ` ${enumLabel(SpanKind, span?.kind ?? 0)} · ${fmtMs(msBetween(span?.startTime, span?.endTime))}`),
              span?.statusCode === StatusCode.ERROR ? h("span", { class: "error-text" }, ` · error${span.statusMessage ? `: ${span.statusMessage}` : ""}`) : null,
            );
            line.style.paddingLeft = `${depth * 1.25}rem`;
            return line;
          }),
        );
      } catch (err) {
        loaded = false;
        tree.replaceChildren(failure(err));
      }
    });
    item.open = open;
    return item;
  }

  return { show, close };
}

function fields(s: Session): HTMLElement {
  const labels = Object.entries(s.labels);
  const st = s.stats;
  const rows: [string, Node | string][] = [
    ["Id", h("span", { class: "mono" }, s.id)],
    ["Namespace", s.namespace],
    ["User", s.user || "—"],
    ["State", h("span", { class: `badge state-${s.state}` }, stateName(s.state))],
    ["Workflow", s.workflow?.id ? `${s.workflow.id}${s.workflow.version ? ` @ ${s.workflow.version}` : ""}` : "—"],
    ["Labels", labels.length ? h("span", {}, ...labels.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))) : "—"],
    ["Created", fmtTime(s.createTime)],
    ["Updated", fmtTime(s.updateTime)],
    ["Client secret expires", fmtTime(s.expireTime)],
    ["Holds", [plural(st?.participantCount, "participant"), plural(st?.turnCount, "turn"), plural(st?.traceCount, "trace"), plural(st?.spanCount, "span"), plural(st?.memoriesExtracted, "memory", "memories")].join(" · ")],
  ];
  if (s.deleteTime) rows.push(["Soft-deleted", fmtTime(s.deleteTime)]);
  const dl = h("dl", { class: "fields", testid: "detail-fields" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const data = s.data && Object.keys(s.data).length ? h("details", {}, h("summary", {}, "Data"), h("pre", {}, JSON.stringify(s.data, null, 2))) : null;
  return h("div", {}, dl, data);
}

function participantTable(participants: Participant[]): Node {
  if (!participants.length) return empty("No participants.");
  return h(
    "table",
    { class: "compact" },
    h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Kind"), h("th", {}, "Name"), h("th", {}, "Bound"), h("th", {}, "Left"))),
    h(
      "tbody",
      {},
      ...participants.map((p) =>
        h("tr", { testid: "participant" }, h("td", { class: "mono" }, p.participantId), h("td", {}, enumLabel(ParticipantKind, p.kind)), h("td", {}, p.displayName || "—"), h("td", { class: "mono" }, fmtTime(p.bindTime)), h("td", { class: "mono" }, fmtTime(p.leaveTime))),
      ),
    ),
  );
}

/** The last turns, read newest first, shown in conversation order (oldest of them first). */
function turnList(newestFirst: Turn[], total: number): Node {
  if (!newestFirst.length) return empty("No turns.");
  const turns = [...newestFirst].reverse();
  return h(
    "div",
    {},
    // Said before the list, which is long exactly when not every turn is in it.
    total > turns.length ? h("p", { class: "muted", testid: "turns-shown" }, `Showing the last ${fmtNumber(turns.length)} of ${fmtNumber(total)} turns.`) : null,
    h("ol", { class: "turns" }, ...turns.map((t) => h("li", { testid: "turn" }, h("span", { class: "turn-meta" }, `#${t.seq} ${t.participantId} (${t.role})`), h("span", { class: "turn-text" }, t.content)))),
  );
}

function annotationList(annotations: Annotation[]): Node {
  if (!annotations.length) return empty("No annotations on this session.");
  return h(
    "ul",
    { class: "annotations" },
    ...annotations.map((a) =>
      h(
        "li",
        { testid: "annotation" },
        h("b", {}, a.name),
        " ",
        a.label ? h("span", { class: "chip" }, a.label) : null,
        a.score !== undefined ? ` score ${a.score}` : null,
        h("span", { class: "muted" }, ` · ${enumLabel(AnnotatorKind, a.annotatorKind)} · ${fmtTime(a.createTime)}`),
        a.explanation ? h("div", { class: "explanation" }, a.explanation) : null,
      ),
    ),
  );
}

const plural = (n: number | undefined, one: string, many = `${one}s`) => `${fmtNumber(n ?? 0)} ${n === 1 ? one : many}`;
const empty = (text: string) => h("p", { class: "muted" }, text);
const failure = (err: unknown) => h("p", { class: "error" }, describeError(err));
