/**
 * The sessions list: ListSessions with the filter form (user, state, labels), keyset pages of 50 (a
 * stack of page tokens gives "previous"), a checkbox per row with "select all on this page", and a
 * click on a row to open the session.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { SessionState, type Session, type SessionFilterSchema } from "../../gen/sessiond/v1/session_pb.js";
import { describeError, type Api } from "./api.js";
import { byTestId, enumLabel, fmtNumber, fmtTime, h, showError } from "./dom.js";

/** Sessions per page. */
export const PAGE_SIZE = 50;

/** The filter the list shows, as applied (not as half-typed in the form). */
export interface ListFilter {
  user: string;
  state: SessionState;
  labels: Record<string, string>;
}

/** The filter as the API takes it. */
export const toApiFilter = (f: ListFilter): MessageInitShape<typeof SessionFilterSchema> => ({ user: f.user, state: f.state, labels: f.labels });

/** "key=value, key=value" -> { key: value }; throws on a pair without "=" or without a key. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`labels: "${pair}" is not key=value`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}

/** The filter in words, for the bulk-delete confirmation. */
export function describeFilter(f: ListFilter): string {
  const parts = [
    f.user && `user "${f.user}"`,
    f.state !== SessionState.UNSPECIFIED && `state ${stateName(f.state)}`,
    ...Object.entries(f.labels).map(([k, v]) => `label ${k}=${v}`),
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "";
}

/** A session state as the list shows it: "active", "cancelled", "soft deleted". */
export const stateName = (s: SessionState) => enumLabel(SessionState, s);

/** What the list needs from the page. */
export interface ListOptions {
  api: Api;
  namespace: () => string;
  onOpen: (session: Session) => void;
  onSelectionChange: (count: number) => void;
}

/** Wires the list to the page; returns its controls. */
export function createSessionList(opts: ListOptions) {
  const form = byTestId<HTMLFormElement>("filters");
  const rows = byTestId("session-rows");
  const selectAll = byTestId<HTMLInputElement>("select-all");
  const error = byTestId("list-error");
  const prev = byTestId<HTMLButtonElement>("prev-page");
  const next = byTestId<HTMLButtonElement>("next-page");

  let filter: ListFilter = { user: "", state: SessionState.UNSPECIFIED, labels: {} };
  /** tokens[i] fetches page i; tokens[page + 1], when present, the next page. */
  let tokens: string[] = [""];
  let page = 0;
  let sessions: Session[] = [];
  let openId = "";
  const selected = new Set<string>();
  let loading = 0;

  async function load(): Promise<void> {
    const call = ++loading;
    rows.setAttribute("aria-busy", "true");
    try {
      const res = await opts.api.sessions.listSessions({ namespace: opts.namespace(), pageSize: PAGE_SIZE, pageToken: tokens[page], filter: toApiFilter(filter) });
      if (call !== loading) return; // a newer load superseded this one
      sessions = res.sessions;
      tokens = tokens.slice(0, page + 1);
      if (res.nextPageToken) tokens.push(res.nextPageToken);
      showError(error, "");
    } catch (err) {
      if (call !== loading) return;
      sessions = [];
      tokens = tokens.slice(0, page + 1);
      showError(error, describeError(err));
    } finally {
      if (call === loading) rows.removeAttribute("aria-busy");
    }
    render();
  }

  function render(): void {
    rows.replaceChildren(...sessions.map(row));
    byTestId("empty").hidden = sessions.length > 0 || !error.hidden;
    prev.disabled = page === 0;
    next.disabled = tokens.length <= page + 1;
    const first = page * PAGE_SIZE + 1;
    byTestId("page-info").textContent = sessions.length ? `Page ${page + 1} · sessions ${fmtNumber(first)}–${fmtNumber(first + sessions.length - 1)}` : `Page ${page + 1}`;
    syncSelection();
  }

  function row(s: Session): HTMLTableRowElement {
    const box = h("input", { type: "checkbox", testid: "row-select", "aria-label": `Select ${s.sessionId}` });
    box.checked = selected.has(s.id);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(s.id);
      else selected.delete(s.id);
      syncSelection();
    });
    const open = h("button", { type: "button", class: "link", testid: "open-session" }, s.sessionId);
    const stats = s.stats;
    const tr = h(
      "tr",
      { testid: "session-row", "data-id": s.id, "data-session-id": s.sessionId, class: s.id === openId ? "open" : undefined },
      h("td", { class: "check" }, box),
      h("td", { class: "mono" }, open),
      h("td", {}, s.user || h("span", { class: "muted" }, "—")),
      h("td", {}, h("span", { class: `badge state-${s.state}` }, stateName(s.state))),
      h("td", { class: "mono" }, fmtTime(s.createTime)),
      h("td", { class: "num" }, stats?.participantCount ?? 0),
      h("td", { class: "num" }, stats?.turnCount ?? 0),
      h("td", { class: "num" }, stats?.traceCount ?? 0),
    );
    tr.addEventListener("click", (e) => {
      if (e.target === box) return;
      openId = s.id;
      for (const other of rows.querySelectorAll("tr.open")) other.classList.remove("open");
      tr.classList.add("open");
      opts.onOpen(s);
    });
    return tr;
  }

  function syncSelection(): void {
    const onPage = sessions.filter((s) => selected.has(s.id)).length;
    selectAll.checked = sessions.length > 0 && onPage === sessions.length;
    selectAll.indeterminate = onPage > 0 && onPage < sessions.length;
    opts.onSelectionChange(selected.size);
  }

  selectAll.addEventListener("change", () => {
    for (const s of sessions) {
      if (selectAll.checked) selected.add(s.id);
      else selected.delete(s.id);
    }
    for (const box of rows.querySelectorAll<HTMLInputElement>('[data-testid="row-select"]')) box.checked = selectAll.checked;
    syncSelection();
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      filter = { user: String(data.get("user")).trim(), state: Number(data.get("state")) as SessionState, labels: parseLabels(String(data.get("labels"))) };
    } catch (err) {
      showError(error, (err as Error).message);
      return;
    }
    void reset();
  });
  // The form's inputs are cleared by the browser after this event: apply the empty filter then.
  form.addEventListener("reset", () => setTimeout(() => form.requestSubmit()));
  byTestId("refresh").addEventListener("click", () => void load());
  prev.addEventListener("click", () => {
    page = Math.max(0, page - 1);
    void load();
  });
  next.addEventListener("click", () => {
    page++;
    void load();
  });

  /** Back to the first page with a clean selection (new namespace, filter, or after a delete). */
  function reset(): Promise<void> {
    tokens = [""];
    page = 0;
    selected.clear();
    return load();
  }

  return {
    /** Reloads from the first page and clears the selection. */
    reset,
    /** The applied filter. */
    filter: () => filter,
    /** Global ids of the selected sessions (on every page seen). */
    selectedIds: () => [...selected],
    /** Forgets the open session (its detail was closed). */
    closeDetail(): void {
      openId = "";
      for (const other of rows.querySelectorAll("tr.open")) other.classList.remove("open");
    },
  };
}
