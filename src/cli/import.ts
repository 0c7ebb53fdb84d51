/**
 * `npm run import -- --namespace NAME [--source-namespace NAME] [--on-conflict fail|skip|replace] < FILE.jsonl`:
 * reads SessionRecords, protobuf JSON one a line (as `npm run export` writes them), and streams them to
 * ImportSessions of a running server. The records' namespace is --source-namespace, else the first
 * record's, so an export of one namespace goes into another as it is. A line that is not a
 * SessionRecord is reported (by its line number) and skipped; the server reports every record it was
 * sent. Progress goes to stderr once a second, then one line per record that was not imported and a
 * summary. Exit codes: 0 every record imported (or skipped), 1 any record failed or the call failed, 2 bad usage.
 */
import { create, fromJsonString } from "@bufbuild/protobuf";
import { createInterface } from "node:readline";
import { SessionRecordSchema, type SessionRecord } from "../../gen/sessiond/v1/session_record_pb.js";
import { ImportConflictMode, ImportOutcome, ImportSessionsRequestSchema, type ImportSessionsRequest } from "../../gen/sessiond/v1/session_service_pb.js";
import { parseFlags, progress, run, sessionClient, UsageError } from "./remote.js";

const USAGE = `Usage: npm run -s import -- --namespace NAME [--source-namespace NAME] [--on-conflict fail|skip|replace] [--url URL] [--key KEY] < FILE.jsonl

Reads one SessionRecord a line (protobuf JSON, as npm run export writes them) and imports them into
--namespace. The records must all come from one namespace: --source-namespace, else the first record's.
--on-conflict: what to do when a session with the same session_id (or id) exists: fail (default: that
record fails, the rest go on), skip, or replace (delete it with everything under it, then import).
The server is --url or SESSIOND_URL (default http://localhost:8080); the key (WRITER) --key or SESSIOND_API_KEY.`;

const MODES: Record<string, ImportConflictMode> = { fail: ImportConflictMode.FAIL, skip: ImportConflictMode.SKIP, replace: ImportConflictMode.REPLACE };

run(USAGE, async () => {
  const flags = parseFlags(process.argv.slice(2), { namespace: { type: "string" }, "source-namespace": { type: "string" }, "on-conflict": { type: "string" } });
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const namespace = flags.namespace as string | undefined;
  if (!namespace) throw new UsageError("--namespace is required");
  const mode = MODES[(flags["on-conflict"] as string | undefined) ?? "fail"];
  if (mode === undefined) throw new UsageError(`--on-conflict: expected fail, skip or replace, got "${flags["on-conflict"]}"`);
  const client = sessionClient(flags);

  /** Line number of each record sent, by its index in the call. */
  const lineOf: number[] = [];
  let unreadable = 0;
  let lineNo = 0;
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  /** The next record of stdin, or undefined at its end; unreadable lines are reported and skipped. */
  async function nextRecord(): Promise<SessionRecord | undefined> {
    for (;;) {
      const r = await lines.next();
      if (r.done) return undefined;
      lineNo++;
      if (r.value.trim() === "") continue;
      try {
        return fromJsonString(SessionRecordSchema, r.value);
      } catch (err) {
        unreadable++;
        process.stderr.write(`import: line ${lineNo}: INVALID: not a SessionRecord in protobuf JSON: ${(err as Error).message}\n`);
      }
    }
  }
  const first = await nextRecord();
  const source = (flags["source-namespace"] as string | undefined) ?? first?.session?.namespace ?? "";
  async function* messages(): AsyncGenerator<ImportSessionsRequest> {
    yield create(ImportSessionsRequestSchema, { namespace, sourceNamespace: source, onConflict: mode });
    for (let record = first; record; record = await nextRecord()) {
      lineOf.push(lineNo);
      yield create(ImportSessionsRequestSchema, { record });
    }
  }

  const ticker = progress(() => `import: ${lineOf.length} records sent`);
  let res;
  try {
    res = await client.importSessions(messages());
  } finally {
    ticker.stop();
  }
  for (const r of res.results) {
    if (r.outcome === ImportOutcome.IMPORTED || r.outcome === ImportOutcome.REPLACED) continue;
    const what = ImportOutcome[r.outcome];
    process.stderr.write(`import: line ${lineOf[Number(r.index)]} (session_id ${JSON.stringify(r.sessionId)}): ${what}${r.error ? `: ${r.error}` : ""}\n`);
  }
  const failed = Number(res.failed) + unreadable;
  process.stderr.write(`import: ${res.results.length + unreadable} records: ${res.imported} imported, ${res.replaced} replaced, ${res.skipped} skipped, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
});
