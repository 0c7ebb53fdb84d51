/**
 * The TLS settings and the client-certificate identities: what configuration accepts and refuses,
 * how identities match certificates, and how Node's certificate strings are read.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { CERTIFICATE_REFUSED, CertificateRefusedError, createCertificateIdentities, type PeerCertificate } from "../../src/domain/certificate-identities.js";
import { commonName, subjectAltNames } from "../../src/handlers/peer.js";

const files = { SESSIOND_TLS_CERT_FILE: "/tls/cert.pem", SESSIOND_TLS_KEY_FILE: "/tls/key.pem" };
const mutual = { ...files, SESSIOND_TLS_CLIENT_CA_FILE: "/tls/clients.pem" };

describe("SESSIOND_TLS_*", () => {
  it("is off by default: cleartext only", () => {
    expect(loadConfig({})).toMatchObject({ tls: undefined, clientIdentities: [] });
  });

  it("turns TLS on with a certificate and its key, beside cleartext unless SESSIOND_TLS_REQUIRED", () => {
    expect(loadConfig(files).tls).toEqual({ certFile: "/tls/cert.pem", keyFile: "/tls/key.pem", clientCaFile: undefined, required: false, reloadIntervalMs: 5000 });
    expect(loadConfig({ ...files, SESSIOND_TLS_REQUIRED: "true", SESSIOND_TLS_RELOAD_INTERVAL_MS: "0" }).tls).toMatchObject({ required: true, reloadIntervalMs: 0 });
  });

  it("refuses half a configuration, naming the missing setting", () => {
    expect(() => loadConfig({ SESSIOND_TLS_CERT_FILE: "/c" })).toThrow(/^SESSIOND_TLS_KEY_FILE: TLS needs both/);
    expect(() => loadConfig({ SESSIOND_TLS_KEY_FILE: "/k" })).toThrow(/^SESSIOND_TLS_CERT_FILE: TLS needs both/);
    expect(() => loadConfig({ SESSIOND_TLS_REQUIRED: "true" })).toThrow(/^SESSIOND_TLS_REQUIRED: refusing cleartext needs a certificate/);
    expect(() => loadConfig({ SESSIOND_TLS_CLIENT_CA_FILE: "/ca" })).toThrow(/^SESSIOND_TLS_CLIENT_CA_FILE: mutual TLS needs a server certificate/);
    expect(() => loadConfig({ ...files, SESSIOND_TLS_REQUIRED: "yes" })).toThrow(/^SESSIOND_TLS_REQUIRED: expected true or false/);
  });
});

describe("SESSIOND_TLS_CLIENT_IDENTITIES", () => {
  const identities = (value: unknown, env: Record<string, string> = mutual) => loadConfig({ ...env, SESSIOND_TLS_CLIENT_IDENTITIES: typeof value === "string" ? value : JSON.stringify(value) }).clientIdentities;

  it("reads identities by SAN URI, DNS name or common name, for one namespace or all", () => {
    expect(identities([{ uri: "spiffe://m/ns/a/sa/x", role: "writer", namespace: "a" }, { cn: "ops", role: "admin" }, { dns: "svc.internal", role: "reader", namespace: null }])).toEqual([
      { uri: "spiffe://m/ns/a/sa/x", role: "writer", namespace: "a" },
      { cn: "ops", role: "admin", namespace: null },
      { dns: "svc.internal", role: "reader", namespace: null },
    ]);
  });

  it("refuses what it cannot use, naming the entry and field", () => {
    expect(() => identities([{ cn: "ops", role: "admin" }], files)).toThrow(/^SESSIOND_TLS_CLIENT_IDENTITIES: client certificates need SESSIOND_TLS_CLIENT_CA_FILE/);
    expect(() => identities("[{")).toThrow(/^SESSIOND_TLS_CLIENT_IDENTITIES: not JSON/);
    expect(() => identities({ cn: "ops" })).toThrow(/expected a JSON array/);
    expect(() => identities([{ role: "admin" }])).toThrow(/^SESSIOND_TLS_CLIENT_IDENTITIES\[0\]: name exactly one of uri, dns or cn/);
    expect(() => identities([{ cn: "a", uri: "b", role: "admin" }])).toThrow(/\[0\]: name exactly one/);
    expect(() => identities([{ cn: "ops", role: "root" }])).toThrow(/^SESSIOND_TLS_CLIENT_IDENTITIES\[0\]\.role: expected reader, writer or admin/);
    expect(() => identities([{ cn: "ops", role: "admin", namespace: "" }])).toThrow(/\[0\]\.namespace:/);
    expect(() => identities([{ cn: "ops", role: "admin", scope: "x" }])).toThrow(/\[0\]\.scope: unknown field/);
    expect(() => identities([{ uri: "*", role: "admin" }])).toThrow(/\[0\]\.uri: expected a non-empty string/);
    expect(() => identities([{ uri: "spiffe://m/ns/app*", role: "admin" }])).toThrow(/\[0\]\.uri: a prefix is a uri ending in "\/\*"/);
    expect(() => identities([{ cn: "ops*", role: "admin" }])).toThrow(/\[0\]\.cn: a prefix is a uri ending in "\/\*"/);
    expect(() => identities([{ cn: "ops", role: "admin" }, { cn: "ops", role: "reader" }])).toThrow(/\[1\]\.cn: "ops" is listed twice/);
  });
});

describe("certificate identities", () => {
  const DAY = 86_400_000;
  const cert = (over: Partial<PeerCertificate> = {}): PeerCertificate => ({ chained: true, uris: [], dnsNames: [], notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), ...over });
  let clock = Date.now();
  const ids = createCertificateIdentities([
    { uri: "spiffe://m/ns/a/sa/admin", role: "admin", namespace: "a" },
    { uri: "spiffe://m/ns/a/*", role: "reader", namespace: "a" },
    { dns: "batch.internal", role: "writer", namespace: null },
    { cn: "ops", role: "admin", namespace: null },
  ], () => clock);

  it("maps the first identity that matches, exact names before prefixes as listed", () => {
    expect(ids.identify(cert({ uris: ["spiffe://m/ns/a/sa/admin"] }))).toEqual({ kind: "certificate", identity: "uri:spiffe://m/ns/a/sa/admin", role: "admin", namespace: "a" });
    expect(ids.identify(cert({ uris: ["spiffe://m/ns/a/sa/other"] }))).toMatchObject({ identity: "uri:spiffe://m/ns/a/*", role: "reader" });
    expect(ids.identify(cert({ dnsNames: ["x", "batch.internal"] }))).toMatchObject({ identity: "dns:batch.internal", role: "writer", namespace: null });
    expect(ids.identify(cert({ dnsNames: ["Batch.Internal"] }))).toMatchObject({ identity: "dns:batch.internal" });
    expect(() => ids.identify(cert({ uris: ["spiffe://m/ns/ab/sa/x"] }))).toThrow(CertificateRefusedError);
    expect(ids.identify(cert({ commonName: "ops" }))).toMatchObject({ identity: "cn:ops", role: "admin", namespace: null });
  });

  it("refuses an unverified or unmapped certificate with the same message, keeping the reason for the log", () => {
    const refusal = (c: PeerCertificate) => {
      try {
        ids.identify(c);
      } catch (e) {
        return e as CertificateRefusedError;
      }
      throw new Error("identified");
    };
    const unverified = refusal(cert({ chained: false, chainError: "CERT_HAS_EXPIRED", commonName: "ops" }));
    const unmapped = refusal(cert({ uris: ["spiffe://m/ns/b/sa/x"], commonName: "OPS" }));
    expect(unverified).toBeInstanceOf(CertificateRefusedError);
    expect([unverified.message, unmapped.message]).toEqual([CERTIFICATE_REFUSED, CERTIFICATE_REFUSED]);
    expect(unverified.reason).toContain("CERT_HAS_EXPIRED");
    expect(unmapped.reason).toContain("maps to no configured identity");
  });

  it("checks validity on every call: a connection does not outlive its certificate", () => {
    const c = cert({ commonName: "ops", notAfter: new Date(clock + 1000) });
    expect(ids.identify(c)).toMatchObject({ identity: "cn:ops" });
    clock += 2000;
    expect(() => ids.identify(c)).toThrow(CERTIFICATE_REFUSED);
    clock = Date.now();
    expect(() => ids.identify(cert({ commonName: "ops", notBefore: new Date(clock + DAY) }))).toThrow(CERTIFICATE_REFUSED);
  });
});

describe("Node's certificate strings", () => {
  it("reads SANs by type, with quoted values unquoted", () => {
    expect(subjectAltNames('URI:spiffe://m/ns/a/sa/x, DNS:svc.internal, IP Address:127.0.0.1, URI:"spiffe://m/a,b", DNS:b')).toEqual({
      URI: ["spiffe://m/ns/a/sa/x", "spiffe://m/a,b"],
      DNS: ["svc.internal", "b"],
      "IP Address": ["127.0.0.1"],
    });
    expect(subjectAltNames("")).toEqual({});
  });

  it("reads the subject's common name", () => {
    expect(commonName("C=US\nO=Example\nCN=agent")).toBe("agent");
    expect(commonName('CN="a, b"')).toBe("a, b");
    expect(commonName("O=Example")).toBeUndefined();
  });
});
