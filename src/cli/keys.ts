/**
 * The operator CLI for API keys (`npm run keys -- create|list|revoke`): works on the database directly,
 * so it also makes the first key of an install whose first-start key was lost. It reaches the database
 * the way the server does (DATABASE_URL, else the embedded cluster in SESSIOND_DATA_DIR: the running one
 * when a server holds it, else started for the command and stopped after).
 *
 * `create` prints only the secret on stdout (for `$(npm run -s keys -- create ...)`); everything meant
 * for a person goes to stderr. Exit codes: 0 done, 1 refused by the domain or failed, 2 bad usage.
 */
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import type { DataSource } from "../db/data-source.js";
import { ConfigError, loadConfig, type Config } from "../config.js";
import type { ApiKey, Role } from "../domain/access.js";
import { createApiKeyService, MAX_KEY_EXPIRY_MS, MIN_KEY_EXPIRY_MS, type ApiKeyService } from "../domain/api-key-service.js";
import { DomainError, InvalidInputError, NotFoundError } from "../domain/errors.js";
import { encodeGlobalId } from "../domain/ids.js";
import type { Stores } from "../domain/stores.js";

const USAGE = `Usage: npm run keys -- <command> [options]

Commands:
  create --role admin|writer|reader [--namespace NAME] [--name TEXT] [--expires-in 30d|12h|90m]
      Creates an API key. Prints its secret (shown only now) as the one line on stdout.
      Without --namespace the key reaches every namespace.
  list [--namespace NAME] [--all]
      Lists keys (never their secrets); --all includes revoked ones.
  revoke <key id>
      Revokes a key; servers stop accepting it within seconds.

Uses DATABASE_URL, else the embedded Postgres in SESSIOND_DATA_DIR (default .sessiond).`;

/** A command line we cannot act on: exit 2. */
class UsageError extends Error {}

const ROLES: readonly Role[] = ["reader", "writer", "admin"];
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** How domain field names read on this command line. */
const FLAGS: Record<string, string> = { display_name: "--name", namespace: "--namespace", expires_after: "--expires-in", id: "key id" };

function parse(args: string[], options: Record<string, { type: "string" | "boolean" }>, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split(". To specify")[0]);
  }
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  for (const [flag, value] of Object.entries(parsed.values)) if (value === "") throw new UsageError(`--${flag}: must not be empty`);
  return parsed as { values: Record<string, string | boolean | undefined>; positionals: string[] };
}

function role(value: string | undefined): Role {
  if (value === undefined) throw new UsageError("--role is required (admin, writer or reader)");
  if (!ROLES.includes(value as Role)) throw new UsageError(`--role: expected admin, writer or reader, got "${value}"`);
  return value as Role;
}

function duration(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,6})([mhd])$/.exec(value);
  if (!m) throw new UsageError(`--expires-in: expected a number and a unit (m, h or d), like 90m, 12h or 30d; got "${value}"`);
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ms < MIN_KEY_EXPIRY_MS || ms > MAX_KEY_EXPIRY_MS) throw new UsageError(`--expires-in: must be between 1 minute and 10 years; got "${value}"`);
  return ms;
}

const time = (t: Date | null) => (t ? t.toISOString().replace(/\.\d+Z$/, "Z") : "-");

function table(keys: ApiKey[]): string {
  const rows = [["ID", "ROLE", "NAMESPACE", "NAME", "CREATED", "EXPIRES", "REVOKED", "PREFIX"]];
  for (const k of keys) rows.push([encodeGlobalId("ApiKey", k.uuid), k.role, k.namespace ?? "*", k.displayName, time(k.createTime), time(k.expireTime), time(k.revokeTime), k.secretPrefix || "-"]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i] - [...c].length))).join("  ")).join("\n");
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, timeout: 1000 });
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.once("connect", () => done(true)).once("error", () => done(false)).once("timeout", () => done(false));
  });
}

/** Opens the database the server uses; `close` undoes whatever opening it took. */
async function open(config: Config): Promise<{ dataSource: DataSource; close(): Promise<void> }> {
  // Imported here, not above: TypeORM and the server's modules take a second or two to load, which
  // --help and a mistyped flag need not wait for.
  const [{ openDatabase }, { createDataSource }, { createLogger }] = await Promise.all([import("../app.js"), import("../db/data-source.js"), import("../logger.js")]);
  const small = { ...config, dbPoolSize: 2 };
  if (!config.databaseUrl) {
    const pidFile = path.resolve(config.dataDir, "pg", "postmaster.pid");
    const port = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[3]) : 0;
    if (port > 0 && (await listening(port))) {
      // A server holds the cluster (and has migrated it): share it rather than start another.
      const password = readFileSync(path.resolve(config.dataDir, "pg.password"), "utf8").trim();
      const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/sessiond`;
      const dataSource = createDataSource({ url, poolSize: 2, applicationName: "sessiond-keys" });
      await dataSource.initialize();
      return { dataSource, close: () => dataSource.destroy() };
    }
  }
  const { dataSource, embedded } = await openDatabase(small, createLogger("silent"));
  return { dataSource, close: async () => (await dataSource.destroy(), await embedded?.stop()) };
}

/** What a command does once the database is open. */
type Work = (db: { keys: ApiKeyService; stores: Stores }) => Promise<void>;

function create(args: string[]): Work {
  const { values } = parse(args, { role: { type: "string" }, namespace: { type: "string" }, name: { type: "string" }, "expires-in": { type: "string" } }, 0);
  const input = { role: role(values.role as string | undefined), expiresAfterMs: duration(values["expires-in"] as string | undefined) };
  return async ({ keys }) => {
    const namespace = (values.namespace as string | undefined) ?? "";
    const displayName = (values.name as string | undefined) ?? "created by the keys CLI";
    const { key, secret } = await keys.create({ ...input, namespace, displayName, createdBy: "cli" });
    process.stderr.write(
      `Created API key ${encodeGlobalId("ApiKey", key.uuid)}: role ${key.role}, namespace ${key.namespace ?? "* (all)"}` +
        `${key.expireTime ? `, expires ${time(key.expireTime)}` : ""}.\nIts secret, shown only now (send it as "Authorization: Bearer <secret>"):\n`,
    );
    process.stdout.write(`${secret}\n`);
  };
}

function list(args: string[]): Work {
  const { values } = parse(args, { namespace: { type: "string" }, all: { type: "boolean" } }, 0);
  return async ({ keys, stores }) => {
    const namespace = (values.namespace as string | undefined) ?? "";
    // The API lists nothing for an unknown namespace; an operator more likely mistyped it.
    if (namespace && !(await stores.namespaces.find(namespace))) throw new NotFoundError(`namespace "${namespace}" not found`);
    const found: ApiKey[] = [];
    let pageToken = "";
    do {
      const page = await keys.list({ namespace, showRevoked: values.all === true, pageSize: 1000, pageToken });
      found.push(...page.keys);
      pageToken = page.nextPageToken;
    } while (pageToken);
    process.stdout.write(`${table(found)}\n`);
    process.stderr.write(`${found.length} key${found.length === 1 ? "" : "s"}${values.all ? "" : " (add --all to include revoked ones)"}\n`);
  };
}

function revoke(args: string[]): Work {
  const { positionals } = parse(args, {}, 1);
  if (!positionals[0]) throw new UsageError("revoke needs the id of the key (see: npm run keys -- list)");
  return async ({ keys }) => {
    const key = await keys.revoke(positionals[0], "");
    process.stdout.write(`Revoked API key ${positionals[0]} (role ${key.role}, namespace ${key.namespace ?? "*"}) at ${time(key.revokeTime)}.\n`);
  };
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || argv.includes("--help") || argv.includes("-h") || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const commands = { create, list, revoke };
  if (!Object.hasOwn(commands, command)) throw new UsageError(`unknown command "${command}" (expected create, list or revoke)`);
  // The whole command line is checked before the database is touched.
  const work = commands[command as keyof typeof commands](rest);
  const db = await open(loadConfig());
  try {
    const stores = (await import("../db/repositories/stores.js")).createStores(db.dataSource);
    await work({ keys: createApiKeyService(stores), stores });
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const name = (field: string) => FLAGS[field] ?? field;
  if (err instanceof UsageError || err instanceof ConfigError) {
    process.stderr.write(`keys: ${err.message}\n${err instanceof UsageError ? "Run `npm run keys -- --help` for usage.\n" : ""}`);
    process.exitCode = 2;
  } else if (err instanceof DomainError) {
    process.stderr.write(`keys: ${err instanceof InvalidInputError ? `${name(err.field)}: ${err.reason}` : err.message}\n`);
    process.exitCode = 1;
  } else {
    // Driver and startup errors: their message only (no stack, no SQL).
    process.stderr.write(`keys: failed: ${err instanceof Error ? err.message.trim() : String(err)}\n`);
    process.exitCode = 1;
  }
});
