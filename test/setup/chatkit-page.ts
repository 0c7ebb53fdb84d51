/**
 * The ChatKit-style page the browser tests serve from another origin (test/e2e/browser-client.test.ts
 * over http, test/tls/browser.test.ts over https): a client secret in the page appends and lists turns
 * through CORS with Connect-Web, and with `watch` in the hash follows the session live (WatchSession
 * with the same secret), as a chat window does. Bundle PAGE_SCRIPT with test/setup/browser.ts `bundle(PAGE_SCRIPT,
 * import.meta.dirname)` from a file two folders below the root (its import of gen/ is relative).
 */
/**
 * The page's script: the secret and the API's base URL come in the URL's hash (never sent to the page's
 * server). It appends two turns, lists the session's turns, tries ListSessions (not allowed to a client
 * secret), and shows everything, with a JSON copy in #result for the test. With `watch=1` it then
 * watches its own session (no id: a client secret's empty address is its own session) after the last
 * turn listed, and adds each turn to #turns as it lands (li data-seq); #watch says where the watch
 * stands (data-state: connecting, live, or the error it ended with).
 */
export const PAGE_SCRIPT = `
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";

const params = new URLSearchParams(location.hash.slice(1));
const secret = params.get("secret") ?? "";
const client = createClient(SessionService, createConnectTransport({
  baseUrl: params.get("api") ?? "",
  interceptors: [(next) => (req) => {
    req.header.set("Authorization", "Bearer " + secret);
    return next(req);
  }],
}));
const failure = (err: unknown) => {
  const e = ConnectError.from(err);
  return Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() + ": " + e.rawMessage;
};
const show = (id: string, text: string) => { document.getElementById(id)!.textContent = text; };

const result: Record<string, unknown> = {};
try {
  const appended = await client.appendTurns({ turns: [
    { participantId: "alice", content: "Hello from Chromium" },
    { participantId: "alice", content: "Is anyone there?" },
  ] });
  result.appended = appended.turns.map((t) => Number(t.seq));
  const { turns } = await client.listTurns({});
  result.turns = turns.map((t) => ({ seq: Number(t.seq), participantId: t.participantId, content: t.content }));
  document.getElementById("turns")!.replaceChildren(...turns.map((t) => {
    const li = document.createElement("li");
    li.textContent = t.participantId + ": " + t.content;
    return li;
  }));
} catch (err) {
  result.error = failure(err);
  show("error", String(result.error));
}
try {
  await client.listSessions({});
  result.listSessions = "allowed";
} catch (err) {
  result.listSessions = failure(err);
}
show("list-sessions", "ListSessions: " + result.listSessions);
show("result", JSON.stringify(result));

if (params.has("watch")) {
  const status = document.getElementById("watch")!;
  const list = document.getElementById("turns")!;
  const listed = (result.turns as { seq: number }[] | undefined) ?? [];
  let last = BigInt(listed.length ? listed[listed.length - 1].seq : 0);
  status.dataset.state = "connecting";
  try {
    for await (const m of client.watchSession({ afterSeq: last })) {
      if (m.event.case === "caughtUp") {
        status.dataset.state = "live";
        status.textContent = "Live";
      }
      if (m.event.case === "turn" && m.event.value.seq > last) {
        const t = m.event.value;
        last = t.seq;
        const li = document.createElement("li");
        li.dataset.seq = String(t.seq);
        li.textContent = t.participantId + ": " + t.content;
        list.append(li);
      }
    }
    status.dataset.state = "ended";
  } catch (err) {
    status.dataset.state = "failed";
    status.textContent = failure(err);
  }
}
`;

export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chat</title><script type="module" src="/chat.js"></script></head>
<body style="font: 15px system-ui; margin: 24px">
<h1>Chat (a page on another origin)</h1>
<ol id="turns"></ol><p id="watch" style="color: #666"></p><p id="error" style="color: #b00"></p><p id="list-sessions"></p>
<pre id="result" style="white-space: pre-wrap; color: #666"></pre>
</body></html>`;
