/**
 * Bulk delete with live progress: BulkDeleteSessions by the selected ids or by the list's filter, after
 * a confirmation. The call runs as an operation on the server (OperationService), started with `detach`
 * so that it goes on without the page: the panel reads the stream's first message for the operation's
 * id, keeps the id in this tab's sessionStorage, and follows the operation with WatchOperation (its
 * committed batches, then its end). After a reload, or a dropped connection, the panel watches it again
 * from the last batch it showed, so the bar goes on to the end with exact counts. Cancel asks the
 * server (CancelOperation): the operation stops after the batch in hand, and its final counters, exact,
 * come with its end.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { OperationState, type Operation } from "../../gen/sessiond/v1/operation_service_pb.js";
import { SessionState } from "../../gen/sessiond/v1/session_pb.js";
import type { BulkDeleteCounters, BulkDeleteSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import { describeError, type Api } from "./api.js";
import { byTestId, fmtMs, fmtNumber, msBetween } from "./dom.js";
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

/** The operation the panel follows, as kept in sessionStorage across reloads. */
interface Followed {
  namespace: string;
  id: string;
  title: string;
}

const FOLLOWED_STORAGE = "sessiond.console.bulk";
/** How long to wait before watching again after the watch stream broke. */
const REWATCH_MS = 1000;
/** Codes of a watch that broke and may work again. */
const TRANSIENT = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Canceled, Code.ResourceExhausted, Code.Aborted]);

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
export function confirmationText(target: BulkTarget, ns: string): string {
  // An empty namespace field means the key's own (or "default", for a key of all namespaces).
  const where = ns ? `namespace "${ns}"` : "the key's namespace";
  if (target.kind === "ids") return `Delete the ${fmtNumber(target.ids.length)} selected session${target.ids.length === 1 ? "" : "s"} of ${where}?`;
  const filter = describeFilter(target.filter);
  return filter ? `Delete every session of ${where} matching ${filter}?` : `Delete ALL sessions of ${where} (no filter is set)?`;
}

/** Wires the progress panel; `onFinished` runs after completion, failure or cancel (e.g. to reload the list). */
export function createBulkDelete(api: Api, onRunning: (running: boolean) => void, onFinished: () => void) {
  const panel = byTestId("bulk-panel");
  const cancel = byTestId<HTMLButtonElement>("bulk-cancel");
  const close = byTestId<HTMLButtonElement>("bulk-close");
  let followed: Followed | undefined;
  /** Stops the watch (sign-out). */
  let stopFollowing: AbortController | undefined;

  cancel.addEventListener("click", () => {
    if (!followed) return;
    cancel.disabled = true;
    byTestId("bulk-status", panel).textContent = "Cancelling after the batch in hand…";
    api.operations.cancelOperation({ namespace: followed.namespace, id: followed.id }).catch((err) => {
      // Already ended: the watch shows how.
      byTestId("bulk-status", panel).textContent = `Could not cancel: ${describeError(err)}`;
    });
  });
  close.addEventListener("click", () => {
    panel.hidden = true;
  });

  function render(c: Counters, state: string, title: string, status: string): void {
    panel.dataset.state = state;
    if (followed) panel.dataset.operationId = followed.id;
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
    close.hidden = state === "running";
  }

  /** The panel for an operation that has ended. */
  function renderEnded(op: Operation): void {
    const c = countersOf(op.counters);
    const d = op.deleted;
    if (op.state === OperationState.SUCCEEDED) {
      render(c, "done", "Bulk delete finished", `Done in ${fmtMs(msBetween(op.startTime ?? op.createTime, op.endTime))}. With the sessions went ${fmtNumber(Number(d?.participants ?? 0n))} participants, ${fmtNumber(Number(d?.turns ?? 0n))} turns, ${fmtNumber(Number(d?.traces ?? 0n))} traces, ${fmtNumber(Number(d?.spans ?? 0n))} spans and ${fmtNumber(Number(d?.annotations ?? 0n))} annotations.`);
    } else if (op.state === OperationState.CANCELLED) {
      render(c, "cancelled", "Bulk delete cancelled", `Cancelled: ${fmtNumber(c.deleted)} deleted, ${fmtNumber(c.total - c.completed)} left untouched.`);
    } else {
      render(c, "failed", "Bulk delete failed", `${op.error || "The operation failed"}. Sessions of the batches reported above are deleted; the others are untouched.`);
    }
  }

  /**
   * Follows the operation until it ends: WatchOperation from the last batch shown, again (after a pause)
   * when the stream breaks, e.g. when the server that answered it shuts down.
   */
  async function follow(f: Followed): Promise<void> {
    followed = f;
    const stop = (stopFollowing = new AbortController());
    sessionStorage.setItem(FOLLOWED_STORAGE, JSON.stringify(f));
    panel.hidden = false;
    cancel.disabled = false;
    onRunning(true);
    let c: Counters = { completed: 0, total: 0, deleted: 0, notFound: 0, failed: 0 };
    let after = 0n;
    render(c, "running", f.title, "Starting…");
    try {
      for (;;) {
        try {
          for await (const m of api.operations.watchOperation({ namespace: f.namespace, id: f.id, afterBatch: after }, { signal: stop.signal })) {
            const e = m.event;
            if (e.case === "operation") {
              c = countersOf(e.value.counters);
              after = after || e.value.batches;
              const waiting = e.value.state === OperationState.QUEUED ? "Waiting for a free slot on the server…" : "Deleting…";
              render(c, "running", f.title, e.value.state === OperationState.RUNNING || e.value.state === OperationState.QUEUED ? waiting : "Deleting…");
            } else if (e.case === "batch") {
              after = e.value.number;
              c = countersOf(e.value.progress?.counters);
              render(c, "running", f.title, "Deleting…");
            } else if (e.case === "ended") {
              renderEnded(e.value);
              return;
            }
          }
          return;
        } catch (err) {
          if (stop.signal.aborted) return;
          // Only a broken stream is worth watching again; a key that may not see the operation is not.
          if (!TRANSIENT.has(ConnectError.from(err).code)) {
            render(c, "failed", f.title, `Cannot follow the operation: ${describeError(err)}.`);
            return;
          }
          render(c, "running", f.title, `Reconnecting (${describeError(err)})…`);
          await new Promise((r) => setTimeout(r, REWATCH_MS));
        }
      }
    } finally {
      sessionStorage.removeItem(FOLLOWED_STORAGE);
      followed = undefined;
      onRunning(false);
      onFinished();
    }
  }

  /** Starts a bulk delete of `target` and follows it. */
  async function run(target: BulkTarget, namespace: string, batchSize: number): Promise<void> {
    const title = target.kind === "ids" ? "Deleting selected sessions" : "Deleting sessions matching the filter";
    panel.hidden = false;
    onRunning(true);
    render({ completed: 0, total: 0, deleted: 0, notFound: 0, failed: 0 }, "running", title, "Starting…");
    const abort = new AbortController();
    let id = "";
    try {
      // Only the first message is read: it names the operation, which goes on without this stream.
      for await (const m of api.sessions.bulkDeleteSessions({ namespace, selector: selectorOf(target), batchSize, detach: true }, { signal: abort.signal })) {
        if (m.event.case === "started") {
          id = m.event.value.operationId;
          abort.abort();
        }
      }
    } catch (err) {
      if (!id) {
        render({ completed: 0, total: 0, deleted: 0, notFound: 0, failed: 0 }, "failed", "Bulk delete failed", `${describeError(err)}. Nothing was deleted.`);
        onRunning(false);
        return;
      }
    }
    await follow({ namespace, id, title });
  }

  /** Follows the operation this tab was following before a reload, if any. */
  async function resume(): Promise<void> {
    const saved = sessionStorage.getItem(FOLLOWED_STORAGE);
    if (!saved || followed) return;
    await follow(JSON.parse(saved) as Followed);
  }

  /** Stops following (on sign-out): the operation itself goes on. */
  function stop(): void {
    stopFollowing?.abort();
    sessionStorage.removeItem(FOLLOWED_STORAGE);
    panel.hidden = true;
  }

  return { run, resume, stop };
}
