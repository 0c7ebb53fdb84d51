/**
 * The client certificate of a request's connection (mutual TLS), as the domain sees it
 * (domain/certificate-identities.ts): read once per connection from the TLS socket and kept for the
 * connection's life, so a call costs one WeakMap lookup. Cleartext connections and TLS connections
 * without a client certificate have none.
 */
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { TLSSocket } from "node:tls";
import { createContextKey } from "@connectrpc/connect";
import type { PeerCertificate } from "../domain/certificate-identities.js";

/** The call's client certificate (set by the edge, edge.ts), for the request gate. */
export const peerCertificateKey = createContextKey<PeerCertificate | undefined>(undefined, { description: "sessiond client certificate" });

// Per connection: the HTTP/1.1 socket, or the HTTP/2 session (whose `socket` is a new proxy object).
const seen = new WeakMap<object, PeerCertificate | null>();

/** The client certificate of `req`'s connection, if it presented one over TLS. */
export function peerCertificateOf(req: IncomingMessage | Http2ServerRequest): PeerCertificate | undefined {
  const h2 = req.httpVersionMajor === 2 ? (req as Http2ServerRequest).stream?.session : undefined;
  const holder: object | undefined = h2 ?? req.socket;
  if (!holder) return undefined;
  let cert = seen.get(holder);
  if (cert === undefined) {
    cert = read((h2 ? h2.socket : req.socket) as TLSSocket | undefined);
    seen.set(holder, cert);
  }
  return cert ?? undefined;
}

function read(socket: TLSSocket | undefined): PeerCertificate | null {
  if (!socket?.encrypted || typeof socket.getPeerX509Certificate !== "function") return null;
  const x = socket.getPeerX509Certificate();
  if (!x) return null;
  const san = subjectAltNames(x.subjectAltName ?? "");
  return {
    chained: socket.authorized,
    chainError: socket.authorized ? undefined : String(socket.authorizationError ?? "unverified"),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    commonName: commonName(x.subject),
    uris: san.URI ?? [],
    dnsNames: san.DNS ?? [],
  };
}

/** Unquotes one of Node's X.509 string values (JSON-quoted when it holds characters like `,` or `"`). */
function unquote(v: string): string {
  if (!v.startsWith('"')) return v;
  try {
    return JSON.parse(v) as string;
  } catch {
    return v;
  }
}

/** Node's `subjectAltName` string (`URI:spiffe://a/b, DNS:x, IP Address:127.0.0.1`) by type. */
export function subjectAltNames(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const m of text.matchAll(/(?:^|, )([A-Za-z ]+):("(?:\\.|[^"\\])*"|[^,]*)/g)) (out[m[1]] ??= []).push(unquote(m[2]));
  return out;
}

/** The common name of Node's `subject` string (`C=US\nO=Example\nCN=agent`). */
export function commonName(subject: string): string | undefined {
  const m = /(?:^|\n)CN=([^\n]*)/.exec(subject);
  return m ? unquote(m[1]) : undefined;
}
