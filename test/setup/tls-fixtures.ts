/**
 * One PKI for the real-client TLS tests (test/tls: grpcio, buf curl, Chromium): a test CA with the
 * server's certificate and client certificates (good ones that map to identities, and ones that must be
 * refused), another CA nobody trusts, and the sessiond settings that serve TLS with mutual TLS. Made
 * synchronously when a test file loads (openssl, EC keys: a fraction of a second), because useServer
 * takes its settings when it is called; deleted after the file.
 */
import { createHash, X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { afterAll } from "vitest";
import { createPki, issueServerCert, type IssuedCert, type TestCa } from "./certs.js";

/** The SPIFFE id of tenant-a's agent, which the settings map to a writer of tenant-a. */
export const AGENT_URI = "spiffe://mesh.test/ns/tenant-a/sa/agent";
const DAY = 24 * 3600_000;

/** The identities the test server maps client certificates to. */
export const CLIENT_IDENTITIES = [
  { uri: AGENT_URI, role: "writer", namespace: "tenant-a" },
  { cn: "ops", role: "admin" },
];

/** The fixtures of one test file. */
export interface TlsFixtures {
  /** The CA the server's certificate and the accepted client certificates chain to. */
  ca: TestCa;
  /** A CA that neither the server nor the clients were told about. */
  otherCa: TestCa;
  /** The server's certificate (localhost, 127.0.0.1, ::1) from `ca`. */
  server: IssuedCert;
  /**
   * A server certificate for the same names from `otherCa`, its file holding the chain (leaf, then
   * `otherCa`): a client trusting `ca` must refuse it.
   */
  strangeServer: IssuedCert;
  /** Client certificates: the agent (writer of tenant-a), ops (admin), and ones to refuse. */
  clients: {
    agent: IssuedCert;
    ops: IssuedCert;
    /** The agent's SPIFFE id, but expired yesterday. */
    expired: IssuedCert;
    /** The agent's SPIFFE id, from the other CA. */
    otherCa: IssuedCert;
    /** From the right CA, but naming no configured identity. */
    unmapped: IssuedCert;
  };
  /**
   * sessiond settings: TLS with the server certificate (its file holding the leaf alone, or with
   * `fullChain` the leaf and then `ca`), mutual TLS with `ca` and CLIENT_IDENTITIES.
   */
  env: Record<string, string>;
}

/** A copy of `leaf` whose certificate file holds the chain: the leaf, then its CA (a "fullchain.pem"). */
function withChain(leaf: IssuedCert, ca: TestCa): IssuedCert {
  const certFile = leaf.certFile.replace(/\.pem$/, ".fullchain.pem");
  const cert = leaf.cert + ca.cert;
  writeFileSync(certFile, cert);
  return { ...leaf, certFile, cert };
}

/**
 * Makes the fixtures now and registers their deletion after this file's tests. `fullChain`: sessiond
 * sends its CA after its certificate, as a server does whose certificate file is a full chain. Chromium
 * needs that to apply `--ignore-certificate-errors-spki-list` to the CA: it matches the pin against the
 * certificates the server sent, and a chain to an unknown root stops at what was sent.
 */
export function useTlsFixtures(options: { fullChain?: boolean } = {}): TlsFixtures {
  const pki = createPki("sessiond-tls-clients-");
  afterAll(() => pki.dispose());
  const ca = pki.createCa("test-ca");
  const otherCa = pki.createCa("other-ca");
  const leaf = issueServerCert(ca);
  const server = options.fullChain ? withChain(leaf, ca) : leaf;
  const now = Date.now();
  const clients = {
    agent: ca.issue({ name: "agent", cn: "agent", uris: [AGENT_URI], usage: "client" }),
    ops: ca.issue({ name: "ops", cn: "ops", usage: "client" }),
    expired: ca.issue({ name: "expired", cn: "agent", uris: [AGENT_URI], usage: "client", notBefore: new Date(now - 3 * DAY), notAfter: new Date(now - DAY) }),
    otherCa: otherCa.issue({ name: "stranger", cn: "agent", uris: [AGENT_URI], usage: "client" }),
    unmapped: ca.issue({ name: "unmapped", cn: "nobody", uris: ["spiffe://mesh.test/ns/tenant-b/sa/agent"], usage: "client" }),
  };
  return {
    ca,
    otherCa,
    server,
    strangeServer: withChain(issueServerCert(otherCa, "strange-server"), otherCa),
    clients,
    env: {
      SESSIOND_TLS_CERT_FILE: server.certFile,
      SESSIOND_TLS_KEY_FILE: server.keyFile,
      SESSIOND_TLS_CLIENT_CA_FILE: ca.certFile,
      SESSIOND_TLS_CLIENT_IDENTITIES: JSON.stringify(CLIENT_IDENTITIES),
    },
  };
}

/**
 * The base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what Chromium's
 * `--ignore-certificate-errors-spki-list` and HPKP-style pins name.
 */
export function spkiSha256(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" })).digest("base64");
}

/** The `certificate_problem` of the server's "rpc rejected" log lines so far (why a certificate was refused). */
export function certificateProblems(logs: string[]): string[] {
  return logs
    .flatMap((chunk) => chunk.split("\n"))
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { msg?: string; certificate_problem?: string })
    .filter((l) => l.msg === "rpc rejected" && l.certificate_problem !== undefined)
    .map((l) => l.certificate_problem!);
}
