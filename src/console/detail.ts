/**
 * One session in detail: its fields, participants (ListParticipants), its last turns (ListTurns newest
 * first, shown in conversation order), traces (ListTraces; a trace opens as an indented span tree from
 * GetTrace) and the annotations on the session (ListAnnotations). Each part loads on its own: one
 * failing call shows its error in place.
 *
 * The detail then follows the session live (WatchSession, live.ts): turns appear as they land, changes
 * of its state, fields and participants show at once, and a deletion says so. The open session and the
 * watch's position stay in this tab's sessionStorage: after a reload the detail opens again, lists the
 * turns, and resumes the watch from the position it had (a turn the listing already shows is not shown
 * twice). Without a kept position it watches after the last turn listed, from a fresh snapshot.
 */
import { create } from "@bufbuild/protobuf";
import type { Turn } from "../../gen/sessiond/v1/conversation_pb.js";
import { SessionSchema, type Session } from "../../gen/sessiond/v1/session_pb.js";
import { AnnotatorKind, SpanKind, StatusCode, type Annotation, type Trace } from "../../gen/sessiond/v1/trace_pb.js";
import { describeError, type Api } from "./api.js";
import { createLiveView, empty, failure, TURNS_SHOWN } from "./detail-live.js";
import { enumLabel, fmtDuration, fmtMs, fmtNumber, fmtTime, h, msBetween } from "./dom.js";
import { followSession, forgetPosition, savedPosition } from "./live.js";

/** Traces listed per session (the newest ones). */
const TRACES_SHOWN = 20;
/** Archived turns a summary's fold lists at most (the first ones). */
const ARCHIVED_SHOWN = 1000;
/** The open session, kept across reloads. */
const OPEN_STORAGE = "sessiond.console.detail";

/** Shows sessions in `panel`; a newer `show` supersedes one still loading. */
export function createDetail(api: Api, panel: HTMLElement, onClose: () => void) {
  let shown = 0;
  /** Stops the watch of the session shown. */
  let watching: { id: string; abort: AbortController } | undefined;

  function stopWatching(): void {
    watching?.abort.abort();
    watching = undefined;
  }

  /** Closes the detail (and its watch); it stays closed after a reload. */
  function close(): void {
    shown++;
    if (watching) forgetPosition(watching.id);
    stopWatching();
    sessionStorage.removeItem(OPEN_STORAGE);
    panel.hidden = true;
    panel.replaceChildren();
    onClose();
  }

  /** Opens again the session this tab showed before a reload, if any. */
  async function resume(): Promise<void> {
    const saved = sessionStorage.getItem(OPEN_STORAGE);
    if (!saved || !panel.hidden) return;
    const { id, namespace, sessionId } = JSON.parse(saved) as { id: string; namespace: string; sessionId: string };
    await show(create(SessionSchema, { id, namespace, sessionId }));
  }

  async function show(listed: Session): Promise<void> {
    const call = ++shown;
    const id = listed.id;
    const namespace = listed.namespace;
    if (watching && watching.id !== id) forgetPosition(watching.id);
    stopWatching();
    sessionStorage.setItem(OPEN_STORAGE, JSON.stringify({ id, namespace, sessionId: listed.sessionId }));
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
    const closeButton = h("button", { type: "button", class: "icon", testid: "detail-close", "aria-label": "Close" }, "×");
    closeButton.addEventListener("click", close);
    const view = createLiveView(got.status === "fulfilled" && got.value.session ? got.value.session : listed, participants, turns, (upToSeq) => archivedTurns(id, upToSeq));
    panel.replaceChildren(
      h("div", { class: "detail-head" }, h("h2", { testid: "detail-title" }, listed.sessionId), view.indicator, closeButton),
      got.status === "rejected" ? failure(got.reason) : "",
      view.deleted,
      view.fields,
      view.participants,
      view.turns,
      section("Traces", "traces", traces, (r) => traceList(r.traces, namespace), (r) => r.traces.length),
      section("Annotations", "annotations", annotations, (r) => annotationList(r.annotations), (r) => r.annotations.length),
    );
    // Without its turns listed the detail has no place to resume from: it stays as loaded.
    if (turns.status === "rejected") {
      view.state("failed", describeError(turns.reason));
      return;
    }
    const abort = new AbortController();
    watching = { id, abort };
    const from = savedPosition(id) ?? { seq: view.lastSeq(), change: 0n };
    await followSession(api, id, from, {
      ...view,
      state(state, why) {
        view.state(state, why);
        // Nothing to open again after a reload.
        if (state === "deleted") sessionStorage.removeItem(OPEN_STORAGE);
      },
    }, abort.signal);
  }

  /** The archived turns (and earlier summaries) up to `upToSeq`, at most ARCHIVED_SHOWN of them, oldest first. */
  async function archivedTurns(id: string, upToSeq: bigint): Promise<Turn[]> {
    const out: Turn[] = [];
    let pageToken = "";
    do {
      const page = await api.sessions.listTurns({ id, includeArchived: true, pageSize: 500, pageToken });
      for (const t of page.turns) if (t.archived && t.seq <= upToSeq && out.length < ARCHIVED_SHOWN) out.push(t);
      pageToken = page.turns.length && page.turns[page.turns.length - 1].seq < upToSeq && out.length < ARCHIVED_SHOWN ? page.nextPageToken : "";
    } while (pageToken);
    return out;
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

  return { show, close, resume };
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

