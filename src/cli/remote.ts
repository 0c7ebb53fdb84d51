/**
 * What the export and import CLIs share: their flags for reaching a running server (--url, --key, or
 * SESSIOND_URL and SESSIOND_API_KEY), a SessionService client over Connect (HTTP/2 cleartext or TLS,
 * binary protobuf), and a progress line on stderr once a second.
 */
import { ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import { SessionService } from "../../gen/sessiond/v1/session_service_pb.js";

/** A command line we cannot act on: exit 2. */
export class UsageError extends Error {}

/** Parses flags (no positionals); --url and --key are always accepted. */
export function parseFlags(args: string[], options: Record<string, { type: "string" | "boolean" }>): Record<string, string | boolean | undefined> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, url: { type: "string" }, key: { type: "string" }, help: { type: "boolean" } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message.split(". To specify")[0]);
  }
  for (const [flag, value] of Object.entries(parsed.values)) if (value === "") throw new UsageError(`--${flag}: must not be empty`);
  return parsed.values;
}

/** A SessionService client for the server at --url (else SESSIOND_URL, else http://localhost:8080) with --key (else SESSIOND_API_KEY). */
export function sessionClient(flags: Record<string, string | boolean | undefined>): Client<typeof SessionService> {
  const baseUrl = (flags.url as string | undefined) ?? process.env.SESSIOND_URL ?? "http://localhost:8080";
  const key = (flags.key as string | undefined) ?? process.env.SESSIOND_API_KEY ?? "";
  if (!key) throw new UsageError("no API key: set SESSIOND_API_KEY or pass --key");
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  return createClient(SessionService, createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors: [auth], readMaxBytes: 256 * 1024 * 1024 }));
}

/** Writes `line()` to stderr once a second until stopped (and once more at the end when it ran that long). */
export function progress(line: () => string): { stop(): void } {
  const timer = setInterval(() => process.stderr.write(`${line()}\n`), 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Runs a CLI's main: usage errors exit 2 with the usage, server errors 1 with their code and message. */
export function run(usage: string, main: () => Promise<number>): void {
  // Exits once stdout is flushed: an idle HTTP/2 connection of the client would keep the process alive.
  const exit = (code: number) => process.stdout.write("", () => process.exit(code));
  main().then(
    (code) => exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`${err.message}\n\n${usage}\n`);
        exit(2);
      } else {
        process.stderr.write(`error: ${err instanceof ConnectError ? err.message : ((err as Error).message ?? String(err))}\n`);
        exit(1);
      }
    },
  );
}
