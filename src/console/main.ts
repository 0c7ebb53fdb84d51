/**
 * The sessiond admin console, served by sessiond at /console. Sign in with an API key (kept in this
 * tab's sessionStorage), pick a namespace, list and filter its sessions, open one (its detail follows it
 * live, and opens again after a reload, resuming where it was), and bulk-delete sessions with live
 * progress that survives a reload. Every call goes to the API of the origin that served the page.
 */
import { createApi, describeError } from "./api.js";
import { confirmationText, confirmDelete, createBulkDelete, type BulkTarget } from "./bulk-delete.js";
import { createDetail } from "./detail.js";
import { byTestId, fmtNumber, showError } from "./dom.js";
import { createOperationsPanel, createRetentionPanel, loadNamespaces } from "./operations.js";
import { createSessionList } from "./sessions.js";

const KEY_STORAGE = "sessiond.console.key";
const NAMESPACE_STORAGE = "sessiond.console.namespace";

const signinForm = byTestId<HTMLFormElement>("signin-form");
const keyInput = byTestId<HTMLInputElement>("api-key");
const signinError = byTestId("signin-error");
const workspace = document.getElementById("workspace")!;
const signedIn = document.querySelector<HTMLElement>(".signed-in")!;
const namespaceInput = byTestId<HTMLInputElement>("namespace");
const batchInput = byTestId<HTMLInputElement>("batch-size");
const deleteSelected = byTestId<HTMLButtonElement>("delete-selected");
const deleteMatching = byTestId<HTMLButtonElement>("delete-matching");

let key = sessionStorage.getItem(KEY_STORAGE) ?? "";
const api = createApi(() => key);
const namespace = () => namespaceInput.value.trim();

const detail = createDetail(api, byTestId("session-detail"), () => list.closeDetail());
const list = createSessionList({
  api,
  namespace,
  onOpen: (s) => void detail.show(s),
  onSelectionChange: (n) => {
    deleteSelected.disabled = n === 0 || running;
    deleteSelected.textContent = n ? `Delete selected (${fmtNumber(n)})` : "Delete selected";
    byTestId("selection-info").textContent = n ? `${fmtNumber(n)} selected` : "";
  },
});

const operations = createOperationsPanel(api, namespace);
const retention = createRetentionPanel(api, namespace);
/** What depends on the namespace besides the list. */
const refreshNamespace = () => {
  void operations.reload();
  void retention.reload();
};

let running = false;
const bulk = createBulkDelete(
  api,
  (on) => {
    running = on;
    for (const el of [deleteMatching, batchInput, namespaceInput]) el.disabled = on;
    deleteSelected.disabled = on || list.selectedIds().length === 0;
  },
  () => {
    detail.close();
    void list.reset();
    void operations.reload();
  },
);

async function startDelete(target: BulkTarget): Promise<void> {
  const ns = namespace();
  const batchSize = batchInput.valueAsNumber;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
    batchInput.setCustomValidity("between 1 and 5000");
    batchInput.reportValidity();
    return;
  }
  batchInput.setCustomValidity("");
  if (await confirmDelete(confirmationText(target, ns))) await bulk.run(target, ns, batchSize);
}

deleteSelected.addEventListener("click", () => void startDelete({ kind: "ids", ids: list.selectedIds() }));
deleteMatching.addEventListener("click", () => void startDelete({ kind: "filter", filter: list.filter() }));

namespaceInput.addEventListener("change", () => {
  sessionStorage.setItem(NAMESPACE_STORAGE, namespace());
  detail.close();
  void list.reset();
  refreshNamespace();
});

/** Shows the sign-in form or the workspace. */
function showSignedIn(on: boolean): void {
  signinForm.hidden = on;
  workspace.hidden = !on;
  signedIn.hidden = !on;
  if (!on) keyInput.focus();
}

signinForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const candidate = keyInput.value.trim();
  const button = byTestId<HTMLButtonElement>("sign-in");
  button.disabled = true;
  key = candidate;
  try {
    // Checks the key: for a key of one namespace an empty namespace is its own.
    await api.sessions.listSessions({ namespace: "", pageSize: 1 });
  } catch (err) {
    key = "";
    showError(signinError, describeError(err));
    return;
  } finally {
    button.disabled = false;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  keyInput.value = "";
  showError(signinError, "");
  showSignedIn(true);
  await list.reset();
  refreshNamespace();
  void loadNamespaces(api, byTestId<HTMLDataListElement>("namespace-list"));
  void bulk.resume();
});

byTestId("sign-out").addEventListener("click", () => {
  bulk.stop();
  sessionStorage.removeItem(KEY_STORAGE);
  key = "";
  detail.close();
  showSignedIn(false);
});

// Empty: the key's own namespace for a key of one namespace, "default" for a key of all namespaces.
namespaceInput.value = sessionStorage.getItem(NAMESPACE_STORAGE) ?? "";
showSignedIn(key !== "");
if (key) {
  void list.reset();
  refreshNamespace();
  void loadNamespaces(api, byTestId<HTMLDataListElement>("namespace-list"));
  // A bulk delete this tab was following before a reload: the panel picks it up where it was.
  void bulk.resume();
  // The session this tab showed before a reload: the detail opens again and resumes its watch.
  void detail.resume();
}
