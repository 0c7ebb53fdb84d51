/**
 * TLS to Postgres as DATABASE_URL's libpq parameters ask for it (`sslmode`, `sslrootcert`, `sslcert`,
 * `sslkey`). node-postgres reads them too, but not as libpq does: without its own `uselibpqcompat=true`
 * it verifies the server fully for prefer, require and verify-ca alike (against Node's CAs, so a
 * server with a private CA fails), knows no `allow` (verified fully too) and reads `sslrootcert=system`
 * as a file named "system". So sessiond takes these parameters off the URL and hands node-postgres the
 * TLS options itself (TypeORM passes them on as `ssl`; the URL no longer has anything to override them).
 *
 * What each mode does here (docs/operations.md, "Postgres over TLS"):
 * - disable: no TLS.
 * - prefer, require: TLS, the server's certificate not checked, unless `sslrootcert` names a file: then
 *   as verify-ca (libpq does the same). Unlike libpq, prefer does not fall back to an unencrypted
 *   connection when the server has no TLS (node-postgres cannot): the start fails and says so.
 * - verify-ca: TLS, the certificate must chain to `sslrootcert` (a file: required); any host name.
 * - verify-full: as verify-ca, and the certificate must name the URL's host (DNS or IP SAN). Without
 *   `sslrootcert` Node's own CAs are trusted (libpq would want ~/.postgresql/root.crt);
 *   `sslrootcert=system` trusts the operating system's store (and, as in libpq 16, needs verify-full).
 * - allow: refused (plaintext first, TLS if the server insists: node-postgres cannot switch).
 * With no sslmode, libpq's default (prefer) applies when a certificate parameter is given; a URL
 * without any of these parameters connects without TLS, as node-postgres always did. The files are read
 * once, when the DataSource is made: rotated certificates take a restart.
 */
import { readFileSync } from "node:fs";
import tls, { type ConnectionOptions } from "node:tls";

/** The sslmode values sessiond accepts (`allow` is refused: see above). */
export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/** The URL parameters sessiond turns into TLS options; none of them reaches node-postgres. */
const TLS_PARAMETERS = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslnegotiation", "uselibpqcompat"];

/**
 * Takes the parameters `names` off `url`'s query: the URL without them (the others byte for byte:
 * URLSearchParams would re-encode them) and their percent-decoded values (the last one wins).
 */
export function takeParameters(url: string, names: readonly string[]): { url: string; values: Map<string, string> } {
  const values = new Map<string, string>();
  const at = url.indexOf("?");
  if (at < 0) return { url, values };
  const kept: string[] = [];
  for (const part of url.slice(at + 1).split("&")) {
    const eq = part.indexOf("=");
    const name = eq > 0 ? part.slice(0, eq) : "";
    if (!names.includes(name)) {
      kept.push(part);
      continue;
    }
    try {
      values.set(name, decodeURIComponent(part.slice(eq + 1)));
    } catch {
      throw new Error(`DATABASE_URL: ${name}: bad percent-encoding`);
    }
  }
  if (!values.size) return { url, values };
  return { url: url.slice(0, kept.length ? at + 1 : at) + kept.join("&"), values };
}

/** The TLS options sessiond sets (node-postgres passes them to tls.connect). */
export type PostgresSsl = Pick<ConnectionOptions, "ca" | "cert" | "key" | "rejectUnauthorized" | "checkServerIdentity">;

/** How sessiond connects to Postgres: the URL node-postgres gets, and its TLS options. */
export interface PostgresTls {
  /** `url` without the TLS parameters. */
  url: string;
  /** node-postgres' `ssl`: false for no TLS. */
  ssl: false | PostgresSsl;
  /** node-postgres' `sslnegotiation` (libpq's, PostgreSQL 17+), when the URL names it. */
  sslnegotiation?: "postgres" | "direct";
  /** For messages: the effective mode and the trust anchors' source (never a secret). */
  mode?: SslMode;
  rootCert?: string;
}

function read(parameter: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`DATABASE_URL: ${parameter}: cannot read "${file}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * Reads `url`'s TLS parameters into node-postgres options with libpq's meaning (see above). Throws an
 * Error whose message starts with "DATABASE_URL:" on a value libpq would refuse, on `allow`, on
 * verify-ca without a CA file, on sslcert without sslkey (or the reverse) and on an unreadable file.
 */
export function postgresTls(url: string): PostgresTls {
  const { url: rest, values } = takeParameters(url, TLS_PARAMETERS);
  if (!values.size) return { url, ssl: false };
  if (/[?&]ssl=/.test(rest)) throw new Error("DATABASE_URL: ssl= is node-postgres' own parameter; use sslmode only");
  const raw = values.get("sslmode");
  if (raw === "allow") throw new Error('DATABASE_URL: sslmode=allow is not supported (node-postgres cannot fall back between plaintext and TLS); use "disable" or "require"');
  if (raw !== undefined && !SSL_MODES.includes(raw as SslMode)) throw new Error(`DATABASE_URL: sslmode must be one of ${SSL_MODES.join(", ")}, got "${raw}"`);
  const negotiation = values.get("sslnegotiation");
  if (negotiation !== undefined && negotiation !== "postgres" && negotiation !== "direct") throw new Error(`DATABASE_URL: sslnegotiation must be postgres or direct, got "${negotiation}"`);
  const rootCert = values.get("sslrootcert") || undefined;
  const system = rootCert === "system";
  const certificates = rootCert !== undefined || values.has("sslcert") || values.has("sslkey");
  // libpq's default is prefer; sslrootcert=system makes it verify-full.
  const mode: SslMode | undefined = (raw as SslMode | undefined) ?? (system ? "verify-full" : certificates || negotiation === "direct" ? "prefer" : undefined);
  const base = { url: rest, ...(negotiation ? { sslnegotiation: negotiation as "postgres" | "direct" } : {}) };
  if (mode === undefined || mode === "disable") {
    if (negotiation === "direct") throw new Error("DATABASE_URL: sslnegotiation=direct needs TLS (sslmode require or stronger)");
    return { ...base, ssl: false, mode };
  }
  if (system && mode !== "verify-full") throw new Error(`DATABASE_URL: sslrootcert=system needs sslmode=verify-full, got "${mode}"`);
  if (mode === "verify-ca" && rootCert === undefined) throw new Error("DATABASE_URL: sslmode=verify-ca needs sslrootcert=<CA file> (with a public CA anyone it signed could pose as the server: use verify-full)");
  const ssl: PostgresSsl = {};
  if (system) {
    // tls.getCACertificates is Node 22.15+ (sessiond runs on the pinned Node 24).
    if (typeof tls.getCACertificates !== "function") throw new Error(`DATABASE_URL: sslrootcert=system needs Node 22.15 or later (this is ${process.versions.node})`);
    ssl.ca = [...tls.getCACertificates("system")];
  }
  else if (rootCert !== undefined) ssl.ca = read("sslrootcert", rootCert);
  if (mode === "prefer" || mode === "require") {
    // Without a CA file: encryption only. With one: verify-ca, as libpq does.
    if (rootCert === undefined) ssl.rejectUnauthorized = false;
    else ssl.checkServerIdentity = () => undefined;
  } else if (mode === "verify-ca") {
    ssl.checkServerIdentity = () => undefined;
  }
  const certFile = values.get("sslcert") || undefined;
  const keyFile = values.get("sslkey") || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error("DATABASE_URL: sslcert and sslkey go together (a client certificate and its key)");
  if (certFile && keyFile) {
    ssl.cert = read("sslcert", certFile);
    ssl.key = read("sslkey", keyFile);
  }
  return { ...base, ssl, mode, rootCert: system ? "system" : rootCert };
}

// Node's codes for a certificate chain it could not verify (the others name the host-name check).
const CHAIN = /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE|INVALID_CA)$/;

/**
 * The error to report when connecting failed: a TLS failure gets a message that says where, with which
 * mode and trust anchors, and what to fix (from `url`'s host and port: never its password); other
 * errors come back unchanged.
 */
export function explainConnectError(err: unknown, url: string, tlsOptions: PostgresTls): unknown {
  // A DatabaseError (it has a severity) is the server's own answer, already clear (e.g. a missing client certificate).
  if (!tlsOptions.mode || !(err instanceof Error) || "severity" in err) return err;
  const code = (err as NodeJS.ErrnoException).code ?? "";
  let why: string;
  if (err.message === "The server does not support SSL connections") {
    why = `the server does not offer TLS (its ssl setting is off); sessiond does not fall back to an unencrypted connection: turn ssl on in the server, or use sslmode=disable`;
  } else if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    why = `the server's certificate does not name the host in DATABASE_URL (${err.message}); connect by a name the certificate lists, or use verify-ca`;
  } else if (CHAIN.test(code)) {
    const anchors = tlsOptions.rootCert === "system" ? "the system's CAs" : tlsOptions.rootCert ? "sslrootcert" : "Node's CAs (no sslrootcert given)";
    why = `the server's certificate is not signed by a CA in ${anchors} (${err.message})`;
  } else if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_\w+|UNSUPPORTED_CERTIFICATE|DECRYPT_ERROR)$/.test(code)) {
    // OpenSSL's alerts: the server (not Node) refused what it was shown, i.e. the client certificate.
    const reason = (err as { reason?: string }).reason ?? code;
    why = `the server refused the client certificate (sslcert) or its absence: ${reason}; it must be signed by a CA in the server's ssl_ca_file`;
  } else if (/CERT|SSL|TLS/.test(code) || /certificate|ssl|tls/i.test(err.message)) {
    why = (err as { reason?: string }).reason ?? err.message;
  } else {
    return err;
  }
  let where = "";
  try {
    const u = new URL(url);
    where = ` at ${u.hostname || u.searchParams.get("host") || "localhost"}:${u.port || 5432}`;
  } catch {
    // The URL's host stays out of the message.
  }
  const anchors = tlsOptions.rootCert ? `, sslrootcert=${tlsOptions.rootCert}` : "";
  return new Error(`DATABASE_URL: TLS to Postgres${where} failed (sslmode=${tlsOptions.mode}${anchors}): ${why}`, { cause: err });
}
