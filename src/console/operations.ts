/**
 * The namespace's operations (OperationService.ListOperations: bulk deletes, namespace deletions,
 * retention sweeps), newest first, with Cancel for those queued or running, whose progress is followed
 * live (WatchOperation, one stream per open operation; the list is read again when one ends); and the
 * namespace's retention policy (AdminService.Get/SetRetentionPolicy), shown and editable with an ADMIN key.
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { OperationKind, OperationState, type Operation } from "../../gen/sessiond/v1/operation_service_pb.js";
import { describeError, type Api } from "./api.js";
import { byTestId, enumLabel, fmtNumber, fmtTime, h, showError } from "./dom.js";

const DAY_MS = 86_400_000;

const open = (op: Operation) => op.state === OperationState.QUEUED || op.state === OperationState.RUNNING;

/** Wires the operations table; `reload()` reads the current namespace's operations. */
export function createOperationsPanel(api: Api, namespace: () => string) {
  const rows = byTestId("operation-rows");
  const empty = byTestId("operations-empty");
  const error = byTestId("operations-error");
  /** The watches of the open operations shown, by id. */
  const watches = new Map<string, AbortController>();

  /** Follows an open operation's batches into its row's progress cell; reads the list again at its end. */
  async function watch(op: Operation): Promise<void> {
    const abort = new AbortController();
    watches.set(op.id, abort);
    try {
      for await (const m of api.operations.watchOperation({ namespace: namespace(), id: op.id, afterBatch: op.batches }, { signal: abort.signal })) {
        const cell = rows.querySelector(`tr[data-id="${CSS.escape(op.id)}"] [data-testid="operation-progress"]`);
        if (m.event.case === "batch" && cell) {
          const c = m.event.value.progress?.counters;
          cell.textContent = c ? `${fmtNumber(c.completed)} / ${fmtNumber(c.total)}` : "";
        }
        if (m.event.case === "ended") break;
      }
    } catch {
      // Aborted (the list moved on), or the stream broke: read the list again in a moment.
      if (abort.signal.aborted) return;
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      if (watches.get(op.id) === abort) watches.delete(op.id);
    }
    void reload();
  }

  function row(op: Operation): HTMLTableRowElement {
    const c = op.counters;
    const progress = c ? `${fmtNumber(c.completed)} / ${fmtNumber(c.total)}` : "";
    const cancel = open(op)
      ? h("button", { type: "button", testid: "operation-cancel" }, op.cancelRequested ? "Cancelling…" : "Cancel")
      : null;
    if (cancel) {
      cancel.disabled = op.cancelRequested;
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await api.operations.cancelOperation({ namespace: namespace(), id: op.id });
        } catch (err) {
          showError(error, describeError(err));
        }
        void reload();
      });
    }
    return h(
      "tr",
      { testid: "operation-row", "data-id": op.id, "data-state": enumLabel(OperationState, op.state) },
      h("td", {}, fmtTime(op.createTime)),
      h("td", {}, enumLabel(OperationKind, op.kind)),
      h("td", {}, enumLabel(OperationState, op.state), op.error ? h("div", { class: "muted" }, op.error) : null),
      h("td", { class: "num", testid: "operation-progress" }, progress),
      h("td", { class: "num" }, fmtNumber(c?.deleted ?? 0n)),
      h("td", {}, cancel),
    );
  }

  /** Bumped by every reload: an answer to an older one is dropped. */
  let generation = 0;

  async function reload(): Promise<void> {
    const mine = ++generation;
    try {
      const { operations } = await api.operations.listOperations({ namespace: namespace(), pageSize: 20 });
      if (mine !== generation) return;
      rows.replaceChildren(...operations.map(row));
      empty.hidden = operations.length > 0;
      showError(error, "");
      const live = new Set(operations.filter(open).map((op) => op.id));
      for (const [id, abort] of watches) if (!live.has(id)) abort.abort();
      for (const op of operations) if (open(op) && !watches.has(op.id)) void watch(op);
    } catch (err) {
      if (mine !== generation) return;
      rows.replaceChildren();
      showError(error, describeError(err));
    }
  }

  byTestId("operations-refresh").addEventListener("click", () => void reload());
  return { reload };
}

/** Days as a Duration; empty or 0: unset (keep forever). */
function days(input: HTMLInputElement) {
  const n = input.valueAsNumber;
  return Number.isFinite(n) && n > 0 ? durationFromMs(Math.round(n * DAY_MS)) : undefined;
}

/** A Duration as days for an input ("" when unset). */
const asDays = (d: { seconds: bigint; nanos: number } | undefined) => (d ? String(Number(d.seconds) / 86_400) : "");

/** Wires the retention form; `reload()` reads the current namespace's policy. */
export function createRetentionPanel(api: Api, namespace: () => string) {
  const form = byTestId<HTMLFormElement>("retention-form");
  const field = (name: string) => byTestId<HTMLInputElement>(`retention-${name}`, form);
  const status = byTestId("retention-status");
  const error = byTestId("retention-error");

  async function reload(): Promise<void> {
    try {
      const r = await api.admin.getRetentionPolicy({ namespace: namespace() });
      const p = r.policy;
      field("max-age").value = asDays(p?.maxAge);
      field("max-idle").value = asDays(p?.maxIdle);
      field("trace-ttl").value = asDays(p?.sessionlessTraceTtl);
      field("hold-labels").value = (p?.holdLabels ?? []).join(", ");
      field("purge-memories").checked = p?.purgeMemories ?? false;
      status.textContent = r.isDefault ? "The server's default (this namespace has no policy of its own)." : `This namespace's own policy, set ${fmtTime(r.updateTime)}.`;
      showError(error, "");
      form.hidden = false;
    } catch (err) {
      // Reading and setting policies needs an ADMIN key.
      form.hidden = true;
      status.textContent = "";
      showError(error, describeError(err));
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.admin.setRetentionPolicy({
        namespace: namespace(),
        policy: {
          maxAge: days(field("max-age")),
          maxIdle: days(field("max-idle")),
          sessionlessTraceTtl: days(field("trace-ttl")),
          holdLabels: field("hold-labels").value.split(",").map((s) => s.trim()).filter(Boolean),
          purgeMemories: field("purge-memories").checked,
        },
      });
      await reload();
    } catch (err) {
      showError(error, describeError(err));
    }
  });
  return { reload };
}

/** Fills the namespace picker with the namespaces the key can list (a key of all namespaces); others keep typing theirs. */
export async function loadNamespaces(api: Api, list: HTMLDataListElement): Promise<void> {
  try {
    const { namespaces } = await api.admin.listNamespaces({ pageSize: 1000 });
    list.replaceChildren(...namespaces.map((n) => h("option", { value: n.name })));
  } catch {
    list.replaceChildren();
  }
}
