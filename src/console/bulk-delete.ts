/**
 * Bulk delete with live progress: BulkDeleteSessions by the selected ids or by the list's filter, after
 * a confirmation. The first stream message gives the total, each committed batch the running counters,
 * the last one a summary. Cancel aborts the stream.
 *
 * A cancel cannot be reported exactly by the stream alone: when the client goes away, the server
 * finishes the batch it holds (one transaction: the whole batch or nothing), and the progress messages
 * already on their way are dropped with the connection, so the last counters the page saw are a few
 * batches short. After a cancel the console therefore recounts with a dry run of the same selection
 * (its row locks wait for a batch still committing; it is repeated until it stops changing, since the
 * server hears of the cancel a moment after the page) and adds the difference to the counters, saying so.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { SessionState } from "../../gen/sessiond/v1/session_pb.js";
import type { BulkDeleteCounters, BulkDeleteSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import { describeError, isCanceled, type Api } from "./api.js";
import { byTestId, fmtDuration, fmtNumber } from "./dom.js";
import { describeFilter, toApiFilter, type ListFilter } from "./sessions.js";

/** What to delete: sessions by global id, or every session matching a list filter. */
export type BulkTarget = { kind: "ids"; ids: string[] } | { kind: "filter"; filter: ListFilter };

type Selector = MessageInitShape<typeof BulkDeleteSessionsRequestSchema>["selector"];

interface Counters {
  completed: number;
  total: number;
  deleted: number;
  notFound: number;
  failed: number;
}

const countersOf = (c: BulkDeleteCounters | undefined): Counters => ({
  completed: Number(c?.completed ?? 0n),
  total: Number(c?.total ?? 0n),
  deleted: Number(c?.deleted ?? 0n),
  notFound: Number(c?.notFound ?? 0n),
  // Ids that are not session ids cannot come from the list; should one appear, it counts as a failure.
  failed: Number(c?.failed ?? 0n) + Number(c?.invalid ?? 0n),
});

function selectorOf(target: BulkTarget): Selector {
  if (target.kind === "ids") return { case: "ids", value: { values: target.ids } };
  // The list shows soft-deleted sessions only when filtering on that state: delete what it shows.
  return { case: "filter", value: { filter: toApiFilter(target.filter), includeDeleted: target.filter.state === SessionState.SOFT_DELETED } };
}

/** Asks the user in the page's modal dialog; resolves true on "Delete". */
export function confirmDelete(text: string): Promise<boolean> {
  const dialog = byTestId<HTMLDialogElement>("confirm-dialog");
  byTestId("confirm-text", dialog).textContent = text;
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      dialog.close();
      resolve(ok);
    };
    const yes = done(true);
    const no = done(false);
    byTestId("confirm-delete", dialog).addEventListener("click", yes, { once: true });
    byTestId("confirm-cancel", dialog).addEventListener("click", no, { once: true });
    dialog.addEventListener("cancel", no, { once: true }); // Escape
    dialog.addEventListener("close", () => {
      byTestId("confirm-delete", dialog).removeEventListener("click", yes);
      byTestId("confirm-cancel", dialog).removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
    }, { once: true });
    dialog.showModal();
    byTestId("confirm-cancel", dialog).focus();
  });
}

/** The confirmation text for a target. */
export function confirmationText(target: BulkTarget, namespace: string): string {
  if (target.kind === "ids") return `Delete the ${fmtNumber(target.ids.length)} selected session${target.ids.length === 1 ? "" : "s"} of namespace "${namespace}"?`;
  const filter = describeFilter(target.filter);
  return filter ? `Delete every session of namespace "${namespace}" matching ${filter}?` : `Delete ALL sessions of namespace "${namespace}" (no filter is set)?`;
}

/** Wires the progress panel; `onFinished` runs after completion, failure or cancel (e.g. to reload the list). */
export function createBulkDelete(api: Api, onRunning: (running: boolean) => void, onFinished: () => void) {
  const panel = byTestId("bulk-panel");
  const cancel = byTestId<HTMLButtonElement>("bulk-cancel");
  const close = byTestId<HTMLButtonElement>("bulk-close");
  let controller: AbortController | undefined;

  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    controller?.abort();
  });
  close.addEventListener("click", () => {
    panel.hidden = true;
  });

  function render(c: Counters, state: string, title: string, status: string): void {
    panel.dataset.state = state;
    byTestId("bulk-title", panel).textContent = title;
    const bar = byTestId<HTMLProgressElement>("bulk-progress", panel);
    bar.max = Math.max(c.total, 1);
    bar.value = c.total ? c.completed : state === "done" ? 1 : 0;
    const pct = c.total ? Math.floor((c.completed / c.total) * 100) : state === "done" ? 100 : 0;
    byTestId("bulk-completed", panel).textContent = `${fmtNumber(c.completed)} / ${fmtNumber(c.total)} (${pct}%)`;
    byTestId("bulk-deleted", panel).textContent = fmtNumber(c.deleted);
    byTestId("bulk-not-found", panel).textContent = fmtNumber(c.notFound);
    byTestId("bulk-failed", panel).textContent = fmtNumber(c.failed);
    byTestId("bulk-status", panel).textContent = status;
    cancel.hidden = state !== "running";
    close.hidden = state === "running" || state === "recounting";
  }

  /** How many sessions of `selector` exist now, by a dry run (which deletes nothing). */
  async function remaining(namespace: string, selector: Selector): Promise<number> {
    let left = 0;
    for await (const m of api.sessions.bulkDeleteSessions({ namespace, selector, dryRun: true, batchSize: 5000 })) {
      if (m.event.case === "summary") left = Number(m.event.value.counters?.deleted ?? 0n);
    }
    return left;
  }

  /**
   * `remaining`, asked until two answers 250 ms apart agree (at most ~2 s): the server learns of the
   * cancel a moment after the page, and may start one more batch meanwhile.
   */
  async function settledRemaining(namespace: string, selector: Selector): Promise<number> {
    let last = await remaining(namespace, selector);
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await remaining(namespace, selector);
      if (now === last) return now;
      last = now;
    }
    return last;
  }

  async function run(target: BulkTarget, namespace: string, batchSize: number): Promise<void> {
    controller = new AbortController();
    const selector = selectorOf(target);
    const reported = new Set<string>();
    let c: Counters = { completed: 0, total: 0, deleted: 0, notFound: 0, failed: 0 };
    const title = target.kind === "ids" ? "Deleting selected sessions" : "Deleting sessions matching the filter";
    panel.hidden = false;
    cancel.disabled = false;
    onRunning(true);
    render(c, "running", title, "Starting…");
    try {
      for await (const m of api.sessions.bulkDeleteSessions({ namespace, selector, batchSize }, { signal: controller.signal })) {
        const e = m.event;
        if (e.case === "started") {
          c = { ...c, total: Number(e.value.total) };
          render(c, "running", title, `${fmtNumber(c.total)} sessions to go, ${fmtNumber(e.value.batchSize)} per batch…`);
        } else if (e.case === "progress") {
          c = countersOf(e.value.counters);
          if (target.kind === "ids") for (const r of e.value.results) reported.add(r.identifier);
          render(c, "running", title, "Deleting…");
        } else if (e.case === "summary") {
          c = countersOf(e.value.counters);
          const d = e.value.deleted;
          render(c, "done", "Bulk delete finished", `Done in ${fmtDuration(e.value.elapsed)}. With the sessions went ${fmtNumber(d?.participants ?? 0)} participants, ${fmtNumber(d?.turns ?? 0)} turns, ${fmtNumber(d?.traces ?? 0)} traces, ${fmtNumber(d?.spans ?? 0)} spans and ${fmtNumber(d?.annotations ?? 0)} annotations.`);
        }
      }
    } catch (err) {
      if (!isCanceled(err)) {
        render(c, "failed", "Bulk delete failed", `${describeError(err)}. Sessions of the batches reported above are deleted; the others are untouched.`);
      } else {
        render(c, "recounting", "Bulk delete cancelled", "Cancelled. Recounting what the last batches did…");
        try {
          const unreported = target.kind === "ids" ? { case: "ids" as const, value: { values: target.ids.filter((id) => !reported.has(id)) } } : selector;
          const expected = c.total - c.completed;
          const left = expected > 0 ? await settledRemaining(namespace, unreported) : 0;
          const extra = Math.min(Math.max(expected - left, 0), expected);
          const shown = c.deleted;
          c = { ...c, deleted: c.deleted + extra, completed: c.completed + extra };
          render(c, "cancelled", "Bulk delete cancelled", `Cancelled: ${fmtNumber(c.deleted)} deleted (${fmtNumber(shown)} reported before the cancel, ${fmtNumber(extra)} more in batches the server finished as the cancel reached it), ${fmtNumber(left)} left untouched.`);
        } catch (recountErr) {
          render(c, "cancelled", "Bulk delete cancelled", `Cancelled after ${fmtNumber(c.deleted)} reported deletions; the last batches may have deleted more (recount failed: ${describeError(recountErr)}).`);
        }
      }
    } finally {
      controller = undefined;
      onRunning(false);
      onFinished();
    }
  }

  return { run };
}
