/**
 * The parts of a session's detail that follow it live: its fields, participants and last turns, the
 * live indicator and the deletion notice, with the handlers of the watch (live.ts) that keep them
 * current. Turns are known by their sequence number (1, 2, 3, ... without gaps but for truncates): a
 * turn at or before the last one shown is not shown again, which makes a resumed watch that replays
 * turns the listing already shows harmless.
 */
import { create } from "@bufbuild/protobuf";
import { ParticipantKind, TurnSchema, type Participant, type Turn } from "../../gen/sessiond/v1/conversation_pb.js";
import type { Session } from "../../gen/sessiond/v1/session_pb.js";
import { SessionChangeKind, type SessionChange } from "../../gen/sessiond/v1/session_service_pb.js";
import { describeError } from "./api.js";
import { enumLabel, fmtNumber, fmtTime, h } from "./dom.js";
import type { LiveState, Position } from "./live.js";
import { stateName } from "./sessions.js";

/** Turns shown per session (the last ones, read newest first and shown oldest first). */
export const TURNS_SHOWN = 100;

/** What the live indicator says in each state. */
const LIVE_TEXT: Record<LiveState, string> = { connecting: "Connecting…", live: "● Live", reconnecting: "Reconnecting…", deleted: "Deleted", failed: "Not live" };

const pos = (p: Position) => `${p.seq}:${p.change}`;

/**
 * The live parts of the detail (fields, participants, turns, the live indicator and the deletion
 * notice) and the watch's handlers that keep them current.
 */
export function createLiveView(
  first: Session,
  listedParticipants: PromiseSettledResult<{ participants: Participant[] }>,
  listedTurns: PromiseSettledResult<{ turns: Turn[] }>,
  /** Reads the archived turns a summary stands for (when its fold is first opened). */
  archivedTurns: (upToSeq: bigint) => Promise<Turn[]>,
) {
  let session = first;
  let participants = listedParticipants.status === "fulfilled" ? listedParticipants.value.participants : undefined;
  const turns = listedTurns.status === "fulfilled" ? [...listedTurns.value.turns].reverse() : [];
  /** The last turn shown (or deleted by a truncate): a turn at or before it is not shown again. */
  let lastSeq = turns.length ? turns[turns.length - 1].seq : 0n;
  /** The turn the session's stats count up to: turns after it are counted here. */
  let countedSeq = lastSeq;

  const indicator = h("span", { class: "live muted", testid: "detail-live", "data-state": "connecting" }, LIVE_TEXT.connecting);
  const deleted = h("p", { class: "error", testid: "detail-deleted", hidden: true });
  const fieldsBox = h("div", {});
  const participantsBox = h("section", { testid: "detail-participants" });
  const turnsBox = h("section", { testid: "detail-turns" });
  const turnsNote = h("p", { class: "muted", testid: "turns-shown" });
  /** A turn, or a summary turn that folds the archived turns it stands for. */
  const item = (t: Turn) => (t.compaction ? summaryItem(t, archivedTurns) : turnItem(t));
  const turnsList = h("ol", { class: "turns" }, ...turns.map(item));
  const noTurns = empty("No turns.");

  const turnTotal = () => (session.stats?.turnCount ?? 0) + Math.max(0, Number(lastSeq - countedSeq));

  /** The session's fields, its turn count including the turns seen since its stats were read. */
  function renderFields(): void {
    fieldsBox.replaceChildren(fields({ ...session, stats: session.stats && { ...session.stats, turnCount: turnTotal() } }));
  }

  function renderParticipants(): void {
    if (!participants) {
      participantsBox.replaceChildren(h("h3", {}, "Participants"), listedParticipants.status === "rejected" ? failure(listedParticipants.reason) : "");
      return;
    }
    participantsBox.replaceChildren(h("h3", {}, `Participants (${fmtNumber(participants.length)})`), participantTable(participants));
  }

  function renderTurnCounts(): void {
    const total = turnTotal();
    const archived = session.stats?.archivedTurnCount ?? 0;
    const n = turnsList.querySelectorAll(':scope > [data-testid="turn"]').length;
    turnsBox.querySelector("h3")!.textContent = `Turns (${fmtNumber(total)})`;
    // Said before the list, which is long exactly when not every turn is in it.
    turnsNote.textContent = archived
      ? `Showing ${n < total - archived ? "the last " : ""}${fmtNumber(n)} of ${fmtNumber(total - archived)} live turns; ${fmtNumber(archived)} archived under the summary.`
      : `Showing the last ${fmtNumber(n)} of ${fmtNumber(total)} turns.`;
    turnsNote.hidden = !archived && total <= n;
    noTurns.hidden = turnsList.children.length > 0;
  }

  /** The session as a change or snapshot left it, its stats counting the turns up to `seq`. */
  function setSession(s: Session, seq: bigint): void {
    session = s;
    countedSeq = seq;
    renderFields();
    renderTurnCounts();
  }

  function turn(t: Turn): void {
    if (t.seq <= lastSeq) return; // shown by the listing already
    lastSeq = t.seq;
    turnsList.append(turnItem(t));
    while (turnsList.children.length > TURNS_SHOWN) turnsList.firstElementChild!.remove();
    renderTurnCounts();
    renderFields();
  }

  function change(c: SessionChange): void {
    if (c.kind === SessionChangeKind.PARTICIPANT_BOUND || c.kind === SessionChangeKind.PARTICIPANT_UNBOUND) {
      const p = c.participant;
      if (p && participants) {
        const i = participants.findIndex((q) => q.participantId === p.participantId);
        participants = i < 0 ? [...participants, p] : participants.with(i, p);
        renderParticipants();
      }
    }
    if (c.kind === SessionChangeKind.COMPACTED && c.compaction) {
      // The turns it archived (and the summary before it) fold under its summary, first in the list.
      const upTo = c.compaction.upToSeq;
      for (const li of [...turnsList.children]) if (BigInt(li.getAttribute("data-seq") ?? "0") <= upTo) li.remove();
      turnsList.prepend(summaryItem(create(TurnSchema, { seq: upTo, role: "summary", content: c.compaction.summary, compaction: c.compaction, createTime: c.changeTime }), archivedTurns));
      renderTurnCounts();
    }
    if (c.kind === SessionChangeKind.TRUNCATED) {
      for (const li of [...turnsList.children]) if (BigInt(li.getAttribute("data-seq") ?? "0") <= c.seq) li.remove();
      if (lastSeq < c.seq) lastSeq = c.seq;
    }
    if (c.session) setSession(c.session, c.seq);
    if (c.kind === SessionChangeKind.DELETED) {
      deleted.textContent = `This session was deleted (${fmtTime(c.changeTime)}), with everything it held.`;
      deleted.hidden = false;
    }
  }

  renderFields();
  renderParticipants();
  if (listedTurns.status === "rejected") turnsBox.replaceChildren(h("h3", {}, "Turns"), failure(listedTurns.reason));
  else {
    turnsBox.replaceChildren(h("h3", {}), turnsNote, turnsList, noTurns);
    renderTurnCounts();
  }

  return {
    indicator,
    deleted,
    fields: fieldsBox,
    participants: participantsBox,
    turns: turnsBox,
    lastSeq: () => lastSeq,
    snapshot(snap: { session?: Session; participants: Participant[]; lastSeq: bigint; resync: boolean }): void {
      // Drawn again only when they differ from the listed ones (a reader may be reading them).
      const key = (ps: Participant[] | undefined) => JSON.stringify(ps?.map((p) => [p.participantId, p.kind, p.displayName, String(p.bindTime?.seconds), String(p.leaveTime?.seconds)]));
      const changed = key(participants) !== key(snap.participants);
      participants = snap.participants;
      if (changed) renderParticipants();
      // A resync sums up changes it does not list, truncates among them: the session holds its last
      // turn_count turns (numbering goes on after a truncate), and no turn before them.
      const held = snap.session?.stats?.turnCount;
      if (snap.resync && held !== undefined) {
        for (const li of [...turnsList.children]) if (BigInt(li.getAttribute("data-seq") ?? "0") <= snap.lastSeq - BigInt(held)) li.remove();
      }
      if (snap.session) setSession(snap.session, snap.lastSeq);
    },
    turn,
    change,
    state(state: LiveState, why?: string): void {
      indicator.dataset.state = state;
      indicator.textContent = LIVE_TEXT[state];
      indicator.title = why ?? "";
      indicator.className = state === "failed" || state === "deleted" ? "live error-text" : "live muted";
      if (state === "failed" && why) indicator.textContent = `Not live: ${why}`;
    },
    position(at: Position, request: boolean): void {
      // For tests and the curious: where the last WatchSession call started, and where it stands.
      if (request) indicator.dataset.from = pos(at);
      indicator.dataset.position = pos(at);
    },
  };
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
    ...(st?.compactionCount ? [["Compacted", `${plural(st.archivedTurnCount, "turn")} archived up to #${st.compactedSeq} by ${plural(st.compactionCount, "compaction")}`] as [string, string]] : []),
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

/**
 * A summary turn: its summary, and a fold that lists the archived turns it stands for (read when first
 * opened; the newest summary stands for every archived turn, earlier summaries among them).
 */
function summaryItem(t: Turn, archivedTurns: (upToSeq: bigint) => Promise<Turn[]>): HTMLElement {
  const c = t.compaction!;
  const archived = h("ol", { class: "turns archived", testid: "archived-turns" }, h("li", { class: "muted" }, "Loading…"));
  const fold = h("details", { class: "fold", testid: "summary-fold" }, h("summary", {}, `Archived turns up to #${c.upToSeq} (this compaction archived ${fmtNumber(c.turnsArchived)})`), archived);
  let loaded = false;
  fold.addEventListener("toggle", () => {
    if (!fold.open || loaded) return;
    loaded = true;
    archivedTurns(c.upToSeq).then(
      (turns) => archived.replaceChildren(...(turns.length ? turns.map((a) => (a.compaction ? summaryText(a) : turnItem(a))) : [h("li", { class: "muted" }, "None left.")])),
      (err) => {
        loaded = false;
        archived.replaceChildren(h("li", { class: "error" }, describeError(err)));
      },
    );
  });
  return h("li", { class: "summary-turn", testid: "summary-turn", "data-seq": String(t.seq) }, h("span", { class: "turn-meta" }, `#${t.seq} summary (${c.summarizer}) of turns up to #${c.upToSeq}`), h("span", { class: "turn-text" }, t.content), fold);
}

/** An earlier summary among archived turns (its own fold is the outer one). */
function summaryText(t: Turn): HTMLElement {
  return h("li", { class: "summary-turn", testid: "archived-summary", "data-seq": String(t.seq) }, h("span", { class: "turn-meta" }, `#${t.seq} summary (${t.compaction!.summarizer})`), h("span", { class: "turn-text" }, t.content));
}

/** A turn as the list shows it (conversation order; data-seq says which it is). */
function turnItem(t: Turn): HTMLElement {
  return h("li", { testid: "turn", "data-seq": String(t.seq) }, h("span", { class: "turn-meta" }, `#${t.seq} ${t.participantId} (${t.role})`), h("span", { class: "turn-text" }, t.content));
}

const plural = (n: number | undefined, one: string, many = `${one}s`) => `${fmtNumber(n ?? 0)} ${n === 1 ? one : many}`;
/** A muted line saying a part is empty. */
export const empty = (text: string) => h("p", { class: "muted" }, text);
/** A call's error, in place of what it would have shown. */
export const failure = (err: unknown) => h("p", { class: "error" }, describeError(err));
