/**
 * TLS for the one port: the server's certificate, key and (for mutual TLS) client CA read from PEM
 * files, the protocol versions and ciphers allowed, and reloading when the files change.
 *
 * Rotation: the files are read again every `reloadIntervalMs` and, when any of them changed, a new
 * secure context is built and handed to the TLS server (`setSecureContext`). Only new handshakes use
 * it; connections already open keep theirs, so calls in flight are never dropped. Files are compared by
 * content, so an atomic symlink swap (as Kubernetes mounts Secrets) and an in-place write are both
 * seen. A rotation caught half-way (a new certificate beside the old key) fails to build: the old
 * context stays and the next tick tries again.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import tls from "node:tls";

/** Where the PEM files are. */
export interface TlsFiles {
  /** The server's certificate chain (leaf first). */
  certFile: string;
  /** The server certificate's private key. */
  keyFile: string;
  /** CA certificates a client certificate must chain to (mutual TLS); undefined: none are asked for. */
  clientCaFile?: string;
}

/**
 * What is allowed on the wire: TLS 1.2 and 1.3 only; for TLS 1.2, ECDHE key exchange with AEAD ciphers
 * only (Mozilla's "intermediate" list, which HTTP/2's RFC 9113 §9.2.2 also requires); TLS 1.3's own
 * suites are all AEAD.
 */
export const TLS_POLICY = {
  minVersion: "TLSv1.2",
  ciphers: [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
  ].join(":"),
  honorCipherOrder: true,
  ecdhCurve: "X25519:prime256v1:secp384r1",
} as const satisfies tls.SecureContextOptions;

/** The PEM texts of one load. */
interface Loaded {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  digest: string;
}

function digestOf(parts: (Buffer | undefined)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p ?? Buffer.alloc(0)).update("\0");
  return h.digest("hex");
}

/** Options for a secure context over `loaded`; throws when they do not make one (e.g. a key that does not match). */
function contextOptions(loaded: Loaded, mutual: boolean): tls.SecureContextOptions & tls.TlsOptions {
  const options = { ...TLS_POLICY, cert: loaded.cert, key: loaded.key, ...(loaded.ca ? { ca: loaded.ca } : {}) };
  // Throws now, with OpenSSL's reason, rather than on the first handshake.
  tls.createSecureContext(options);
  // A client certificate is asked for but not required, and checked after the handshake (by the
  // request's authentication), so that a wrong, expired or unknown certificate fails the same way as a
  // bad API key: `unauthenticated`, with no TLS alert telling which.
  return mutual ? { ...options, requestCert: true, rejectUnauthorized: false } : options;
}

/** A failure to read or use the configured files, naming the setting. */
export class TlsConfigError extends Error {}

/** The server-side TLS material, loaded once at start and reloaded when the files change. */
export interface TlsSource {
  /** Options for `tls.createServer` (the policy, certificate, key and client CA). */
  readonly options: tls.TlsOptions;
  /** Whether clients are asked for a certificate (a client CA is configured). */
  readonly mutual: boolean;
  /** Starts checking the files every `intervalMs`; `apply` gets the options of every change. */
  watch(intervalMs: number, apply: (options: tls.TlsOptions) => void, events: TlsReloadEvents): void;
  /** Stops checking. */
  close(): void;
}

/** What a reload tells its caller (to log it). */
export interface TlsReloadEvents {
  reloaded(info: { notAfter: string; subject: string }): void;
  failed(err: Error): void;
}

/** The certificate's subject and expiry, for the log. */
function describe(cert: Buffer): { notAfter: string; subject: string } {
  const x = new X509Certificate(cert);
  return { notAfter: new Date(x.validTo).toISOString(), subject: x.subject.replaceAll("\n", ", ") };
}

/**
 * Reads `files` (synchronously: once, at start) and checks that they make a secure context.
 * @throws TlsConfigError naming the setting and the file
 */
export function loadTls(files: TlsFiles, names: { cert: string; key: string; clientCa: string }): TlsSource {
  const read = (file: string, setting: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsConfigError(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read(files.certFile, names.cert);
  const key = read(files.keyFile, names.key);
  const ca = files.clientCaFile ? read(files.clientCaFile, names.clientCa) : undefined;
  const mutual = ca !== undefined;
  let loaded: Loaded = { cert, key, ca, digest: digestOf([cert, key, ca]) };
  let options: tls.TlsOptions;
  try {
    options = contextOptions(loaded, mutual);
  } catch (err) {
    throw new TlsConfigError(`${names.cert}/${names.key}: the certificate and key do not make a TLS context: ${(err as Error).message}`);
  }
  try {
    describe(cert);
  } catch (err) {
    throw new TlsConfigError(`${names.cert}: not a PEM certificate: ${(err as Error).message}`);
  }
  let timer: NodeJS.Timeout | undefined;
  let checking = false;
  return {
    get options() {
      return options;
    },
    mutual,
    watch(intervalMs, apply, events) {
      if (intervalMs <= 0 || timer) return;
      let lastFailure = "";
      timer = setInterval(() => {
        if (checking) return;
        checking = true;
        void (async () => {
          const [c, k, a] = await Promise.all([readFile(files.certFile), readFile(files.keyFile), files.clientCaFile ? readFile(files.clientCaFile) : undefined]);
          const digest = digestOf([c, k, a]);
          if (digest === loaded.digest) return;
          const next: Loaded = { cert: c, key: k, ca: a, digest };
          const nextOptions = contextOptions(next, mutual);
          const info = describe(c);
          apply(nextOptions);
          loaded = next;
          options = nextOptions;
          lastFailure = "";
          events.reloaded(info);
        })()
          .catch((err: Error) => {
            // Said once per distinct failure, not every tick while a rotation is half-way.
            if (err.message !== lastFailure) events.failed(err);
            lastFailure = err.message;
          })
          .finally(() => (checking = false));
      }, intervalMs);
      timer.unref();
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
