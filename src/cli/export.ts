/**
 * `npm run export -- --namespace NAME [--filter JSON] [--include-deleted] [--ids ID,...] [--session-ids ID,...]`:
 * writes a namespace's sessions, with everything they hold, to stdout as protobuf JSON, one
 * SessionRecord a line (ExportSessions of a running server). Progress goes to stderr once a second, a
 * summary at the end. Exit codes: 0 done, 1 some sessions named were missing or the call failed, 2 bad usage.
 */
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { once } from "node:events";
import { SessionRecordSchema } from "../../gen/sessiond/v1/session_record_pb.js";
import { SessionFilterSchema } from "../../gen/sessiond/v1/session_pb.js";
import { ExportSessionsRequestSchema } from "../../gen/sessiond/v1/session_service_pb.js";
import { parseFlags, progress, run, sessionClient, UsageError } from "./remote.js";

const USAGE = `Usage: npm run -s export -- --namespace NAME [selector] [--url URL] [--key KEY] > FILE.jsonl

Selector (default: every session of the namespace):
  --filter JSON        a SessionFilter as protobuf JSON, e.g. '{"user":"u1","labels":{"env":"prod"}}'
  --include-deleted    with a filter (or the default): soft-deleted sessions too
  --ids ID,...         global session ids
  --session-ids ID,... your session ids

Writes one SessionRecord a line (protobuf JSON) to stdout; progress and a summary to stderr.
The server is --url or SESSIOND_URL (default http://localhost:8080); the key (READER) --key or SESSIOND_API_KEY.`;

function request(flags: Record<string, string | boolean | undefined>) {
  const namespace = flags.namespace as string | undefined;
  if (!namespace) throw new UsageError("--namespace is required");
  const given = ["filter", "ids", "session-ids"].filter((f) => flags[f] !== undefined);
  if (given.length > 1) throw new UsageError(`give one of --filter, --ids and --session-ids, not ${given.map((g) => `--${g}`).join(" and ")}`);
  if (flags.ids) return create(ExportSessionsRequestSchema, { namespace, selector: { case: "ids", value: { values: (flags.ids as string).split(",") } } });
  if (flags["session-ids"]) return create(ExportSessionsRequestSchema, { namespace, selector: { case: "sessionIds", value: { values: (flags["session-ids"] as string).split(",") } } });
  let filter;
  try {
    filter = flags.filter ? fromJsonString(SessionFilterSchema, flags.filter as string) : create(SessionFilterSchema);
  } catch (err) {
    throw new UsageError(`--filter: not a SessionFilter in protobuf JSON: ${(err as Error).message}`);
  }
  return create(ExportSessionsRequestSchema, { namespace, selector: { case: "filter", value: { filter, includeDeleted: flags["include-deleted"] === true } } });
}

run(USAGE, async () => {
  const flags = parseFlags(process.argv.slice(2), { namespace: { type: "string" }, filter: { type: "string" }, "include-deleted": { type: "boolean" }, ids: { type: "string" }, "session-ids": { type: "string" } });
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const req = request(flags);
  const client = sessionClient(flags);
  let total: bigint | undefined;
  let done = 0;
  const ticker = progress(() => `export: ${done}${total === undefined ? "" : `/${total}`} records`);
  try {
    for await (const m of client.exportSessions(req)) {
      const e = m.event;
      if (e.case === "started") total = e.value.total;
      else if (e.case === "record") {
        done++;
        // Backpressure: a slow consumer of stdout slows the stream down (and the server with it).
        if (!process.stdout.write(`${toJsonString(SessionRecordSchema, e.value)}\n`)) await once(process.stdout, "drain");
      } else if (e.case === "summary") {
        for (const id of e.value.notFound) process.stderr.write(`export: not found: ${id}\n`);
        process.stderr.write(`export: ${e.value.exported} records exported, ${e.value.missing} missing\n`);
        return e.value.missing > 0n ? 1 : 0;
      }
    }
  } finally {
    ticker.stop();
  }
  process.stderr.write("export: the stream ended without a summary\n");
  return 1;
});
