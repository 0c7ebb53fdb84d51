/**
 * Client certificates as credentials (mutual TLS). A certificate that chains to the configured client
 * CA and is within its validity is a credential of its own: a configured identity maps it, by a SAN URI
 * (as service meshes issue them: `spiffe://cluster.local/ns/app/sa/agent`), a SAN DNS name or the
 * subject's common name, to a role and a namespace scope, exactly what an API key carries. From there
 * the certificate goes through the same authorization, audit and scope rules as an API key.
 *
 * A certificate that does not chain, is expired or not yet valid, is not for client authentication, or
 * maps to no identity is refused with one and the same message; which of these it was is kept for the
 * server's log only.
 */
import type { Principal, Role } from "./access.js";
import { UnauthenticatedError } from "./errors.js";

/** What the TLS handshake established about the client's certificate. */
export interface PeerCertificate {
  /**
   * Whether the TLS stack verified it: it chains to the client CA, is within its validity, and its
   * extended key usage (if it has one) allows client authentication.
   */
  chained: boolean;
  /** The TLS stack's reason when it is not (e.g. CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, INVALID_PURPOSE). */
  chainError?: string;
  /**
   * Its validity. The TLS stack checked it at the handshake; it is checked again on every call, since
   * a connection (a long-lived HTTP/2 one) can outlive the certificate that opened it.
   */
  notBefore: Date;
  notAfter: Date;
  /** The subject's common name, if any. */
  commonName?: string;
  /** SAN URIs. */
  uris: string[];
  /** SAN DNS names. */
  dnsNames: string[];
}

/**
 * One configured identity: what a certificate must name (exactly one of `uri`, `dns`, `cn`; a `uri`
 * ending in `*` matches by prefix, e.g. every service account of a namespace), and what it may do.
 */
export interface CertificateIdentity {
  uri?: string;
  dns?: string;
  cn?: string;
  role: Role;
  /** The one namespace it may reach; null for all. */
  namespace: string | null;
}

/** The message of every refused certificate: the handshake and the answer never say which check failed. */
export const CERTIFICATE_REFUSED = "the client certificate is not accepted";

/** A refused client certificate, with the reason for the server's log (never sent to the client). */
export class CertificateRefusedError extends UnauthenticatedError {
  constructor(readonly reason: string) {
    super(CERTIFICATE_REFUSED);
  }
}

/** How the audit log and other principals' messages name the identity a certificate mapped to. */
function nameOf(identity: CertificateIdentity): string {
  return identity.uri !== undefined ? `uri:${identity.uri}` : identity.dns !== undefined ? `dns:${identity.dns}` : `cn:${identity.cn}`;
}

/** Whether `value` (a lowercase DNS name in certificates' SANs, any case in configuration) is `name`. */
const sameDnsName = (value: string, name: string) => value.toLowerCase() === name.toLowerCase();

/** What a certificate presented names, against one identity. */
function matches(identity: CertificateIdentity, cert: PeerCertificate): boolean {
  if (identity.uri !== undefined) {
    const u = identity.uri;
    return u.endsWith("*") ? cert.uris.some((v) => v.startsWith(u.slice(0, -1))) : cert.uris.includes(u);
  }
  if (identity.dns !== undefined) return cert.dnsNames.some((d) => sameDnsName(d, identity.dns!));
  return identity.cn !== undefined && cert.commonName === identity.cn;
}

/** Maps client certificates to principals. */
export interface CertificateIdentities {
  /** The principal of `cert`. @throws CertificateRefusedError */
  identify(cert: PeerCertificate): Extract<Principal, { kind: "certificate" }>;
}

/**
 * The identities, checked in order: the first that matches wins (so list exact names before prefixes).
 */
export function createCertificateIdentities(identities: readonly CertificateIdentity[], now: () => number = Date.now): CertificateIdentities {
  return {
    identify(cert) {
      if (!cert.chained) throw new CertificateRefusedError(`does not chain to the client CA or is out of its validity (${cert.chainError ?? "unverified"})`);
      const at = now();
      if (at > cert.notAfter.getTime()) throw new CertificateRefusedError("does not chain to the client CA or is out of its validity (CERT_HAS_EXPIRED since the connection opened)");
      if (at < cert.notBefore.getTime()) throw new CertificateRefusedError("does not chain to the client CA or is out of its validity (CERT_NOT_YET_VALID)");
      const identity = identities.find((i) => matches(i, cert));
      if (!identity) throw new CertificateRefusedError("it maps to no configured identity (SESSIOND_TLS_CLIENT_IDENTITIES)");
      return { kind: "certificate", identity: nameOf(identity), role: identity.role, namespace: identity.namespace };
    },
  };
}
