/**
 * Test certificates made with Debian's openssl: certificate authorities, server certificates (for
 * localhost and 127.0.0.1) and client certificates (a subject common name and SAN URIs, as service
 * meshes issue them), valid, expired or not yet valid. Keys are EC P-256 (fast to make). Everything is
 * written under one temporary directory per call of {@link createPki}.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** A certificate and its key on disk (PEM), with their text. */
export interface IssuedCert {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/** A certificate authority that can issue certificates. */
export interface TestCa extends IssuedCert {
  name: string;
  /** Issues a certificate signed by this CA. */
  issue(options: IssueOptions): IssuedCert;
}

/** What to put in a certificate. */
export interface IssueOptions {
  /** File name stem (unique within the PKI). */
  name: string;
  /** Subject common name (default: `name`). */
  cn?: string;
  /** Extra subject attributes, e.g. `{ O: "Example" }`. */
  subject?: Record<string, string>;
  /** SAN DNS names. */
  dns?: string[];
  /** SAN IP addresses. */
  ips?: string[];
  /** SAN URIs (SPIFFE ids, for example). */
  uris?: string[];
  /** What it is for (default: both). */
  usage?: "server" | "client" | "both";
  /** Validity window (default: from an hour ago for 30 days). */
  notBefore?: Date;
  notAfter?: Date;
}

/** A directory of test certificates; `dispose()` deletes it. */
export interface TestPki {
  dir: string;
  createCa(name: string): TestCa;
  dispose(): void;
}

const HOUR = 3600_000;

/** openssl's `YYYYMMDDHHMMSSZ`. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes a fresh temporary PKI directory. */
export function createPki(prefix = "sessiond-pki-"): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    createCa: (name) => createCa(dir, name),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function createCa(root: string, name: string): TestCa {
  const dir = path.join(root, name);
  mkdirSync(path.join(dir, "issued"), { recursive: true });
  writeFileSync(path.join(dir, "index.txt"), "");
  writeFileSync(path.join(dir, "serial"), `${Date.now().toString(16).padStart(16, "0")}\n`);
  writeFileSync(
    path.join(dir, "ca.cnf"),
    [
      "[ ca ]",
      "default_ca = ca_default",
      "[ ca_default ]",
      `database = ${path.join(dir, "index.txt")}`,
      `new_certs_dir = ${path.join(dir, "issued")}`,
      `serial = ${path.join(dir, "serial")}`,
      "default_md = sha256",
      "policy = policy_any",
      "unique_subject = no",
      "email_in_dn = no",
      "[ policy_any ]",
      "commonName = supplied",
      "organizationName = optional",
      "organizationalUnitName = optional",
      "",
    ].join("\n"),
  );
  const certFile = path.join(dir, "ca.pem");
  const keyFile = path.join(dir, "ca.key");
  openssl(
    ["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", certFile, "-subj", `/CN=${name}`, "-days", "30",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    dir,
  );
  const ca: TestCa = {
    name,
    certFile,
    keyFile,
    cert: readFileSync(certFile, "utf8"),
    key: readFileSync(keyFile, "utf8"),
    issue: (options) => issue(root, ca, dir, options),
  };
  return ca;
}

function issue(root: string, ca: TestCa, caDir: string, o: IssueOptions): IssuedCert {
  const keyFile = path.join(root, `${o.name}.key`);
  const certFile = path.join(root, `${o.name}.pem`);
  const csr = path.join(root, `${o.name}.csr`);
  const ext = path.join(root, `${o.name}.ext`);
  const subject = `/CN=${o.cn ?? o.name}` + Object.entries(o.subject ?? {}).map(([k, v]) => `/${k}=${v}`).join("");
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", subject], root);
  const san = [...(o.dns ?? []).map((d) => `DNS:${d}`), ...(o.ips ?? []).map((ip) => `IP:${ip}`), ...(o.uris ?? []).map((u) => `URI:${u}`)];
  const usage = o.usage ?? "both";
  const eku = usage === "server" ? "serverAuth" : usage === "client" ? "clientAuth" : "serverAuth,clientAuth";
  writeFileSync(
    ext,
    ["[ v3 ]", "basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature,keyEncipherment", `extendedKeyUsage = ${eku}`, ...(san.length ? [`subjectAltName = ${san.join(",")}`] : []), ""].join("\n"),
  );
  const notBefore = o.notBefore ?? new Date(Date.now() - HOUR);
  const notAfter = o.notAfter ?? new Date(Date.now() + 30 * 24 * HOUR);
  openssl(
    ["ca", "-batch", "-config", path.join(caDir, "ca.cnf"), "-cert", ca.certFile, "-keyfile", ca.keyFile, "-in", csr, "-out", certFile, "-notext", "-preserveDN",
      "-startdate", asn1Time(notBefore), "-enddate", asn1Time(notAfter), "-extfile", ext, "-extensions", "v3"],
    root,
  );
  rmSync(csr);
  rmSync(ext);
  return { certFile, keyFile, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
}

/** A server certificate for this machine's loopback names (localhost, 127.0.0.1, ::1). */
export function issueServerCert(ca: TestCa, name = "server", extra: Partial<IssueOptions> = {}): IssuedCert {
  return ca.issue({ name, cn: "localhost", dns: ["localhost"], ips: ["127.0.0.1", "::1"], usage: "server", ...extra });
}
