/**
 * TLS material from the reference's file flags, read at start-up with clear errors (the Go binaries fail to start
 * on a bad file too), and re-read while the program runs (the reference needs a restart, upstream #801):
 * - servers watch their files (a stat every `intervalMs`) and hand new material to their listeners, which use it
 *   for new handshakes (`setSecureContext`); connections already open keep theirs;
 * - the agent re-reads its files (when their stat changed) before each new tunnel's handshake.
 * New material is checked first (PEM readable, key matching the certificate); a broken file is reported through
 * `onError` and the last good material is kept. Also here: `--cipher-suites` (Go names to OpenSSL's).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureVersion } from 'node:tls';

/** Server-side TLS settings for a listener: certificate, key, and the CA that client certificates must chain to. */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** When set, client certificates are required and verified (mTLS), as the reference does. */
  ca?: string;
  /** Node's name for the minimum version (`TLSv1.2`). */
  minVersion?: SecureVersion;
  /** OpenSSL cipher list (from `--cipher-suites`); undefined: Node's defaults. */
  ciphers?: string;
}

/** What node:tls / node:http2 secure servers take. */
export interface ServerTlsOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
  minVersion: SecureVersion;
  ciphers?: string;
}

/** Client-side TLS settings: the CA to trust, an optional client certificate, ALPN protocols. */
export interface ClientTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  /** Offered before the transport's own (`h2` for gRPC), from `--alpn-proto`. */
  alpnProtocols?: string[];
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`failed to read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Every PEM certificate in `pem` (at least one) must parse: OpenSSL takes a CA file without one silently. */
function checkCertificates(pem: Buffer, what: string): void {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${what}: no PEM certificate found`);
  for (const b of blocks) new X509Certificate(b);
}

/** Check that the material makes a usable TLS context (PEM, key matches certificate); throws with a clear message. */
function check(material: { cert?: Buffer | undefined; key?: Buffer | undefined; ca?: Buffer | undefined; ciphers?: string | undefined }, files: string): void {
  try {
    if (material.ca) checkCertificates(material.ca, 'CA');
    createSecureContext({
      ...(material.cert ? { cert: material.cert } : {}),
      ...(material.key ? { key: material.key } : {}),
      ...(material.ca ? { ca: material.ca } : {}),
      ...(material.ciphers ? { ciphers: material.ciphers } : {}),
    });
  } catch (err) {
    throw new Error(`bad TLS material in ${files}: ${(err as Error).message}`);
  }
}

function loadServer(files: ServerTlsFiles): ServerTlsOptions {
  const ca = files.ca ? read(files.ca, 'CA certificate') : undefined;
  const options: ServerTlsOptions = {
    cert: read(files.cert, 'certificate'),
    key: read(files.key, 'key'),
    ...(ca ? { ca } : {}),
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
    minVersion: files.minVersion ?? 'TLSv1.2',
    ...(files.ciphers ? { ciphers: files.ciphers } : {}),
  };
  check(options, [files.cert, files.key, files.ca].filter(Boolean).join(', '));
  return options;
}

/** Load a listener's TLS files; undefined when no certificate is configured (plaintext). Throws on a bad file. */
export function loadServerTls(files: Partial<ServerTlsFiles>): ServerTlsOptions | undefined {
  if (!files.cert || !files.key) return undefined;
  return loadServer(files as ServerTlsFiles);
}

type ClientTlsFiles = { ca?: string; cert?: string; key?: string; servername?: string; alpnProtocols?: string[] };

function loadClient(files: ClientTlsFiles): ClientTlsOptions {
  const options: ClientTlsOptions = {
    ...(files.ca ? { ca: read(files.ca, 'CA certificate') } : {}),
    ...(files.cert ? { cert: read(files.cert, 'client certificate') } : {}),
    ...(files.key ? { key: read(files.key, 'client key') } : {}),
    ...(files.servername ? { servername: files.servername } : {}),
    ...(files.alpnProtocols && files.alpnProtocols.length > 0 ? { alpnProtocols: files.alpnProtocols } : {}),
  };
  check(options, [files.ca, files.cert, files.key].filter(Boolean).join(', '));
  return options;
}

/** Load the agent's TLS files; undefined when no CA is given (plaintext, our extension for tests and meshes). */
export function loadClientTls(files: ClientTlsFiles): ClientTlsOptions | undefined {
  if (!files.ca && !files.cert) return undefined;
  return loadClient(files);
}

/** A fingerprint of the files' state: a change of any means "read them again". */
function stamp(paths: readonly string[]): string {
  return paths
    .map((p) => {
      try {
        const s = statSync(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/** Reports of a reloader. */
export interface TlsReloadEvents<T> {
  /** New material was read and checked; new handshakes use it. */
  onReload?: (material: T, files: readonly string[]) => void;
  /** New files could not be used; the old material is kept. */
  onError?: (err: Error, files: readonly string[]) => void;
}

/**
 * TLS material that follows its files: `current` is the last good material; `refresh()` reads the files again
 * when their stat changed (cheap otherwise). Construction reads them once and throws on a bad file.
 */
export class ReloadingTls<T> {
  private material: T;
  private seen: string;
  private failedStamp: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly paths: readonly string[],
    private readonly load: () => T,
    private readonly events: TlsReloadEvents<T> = {},
  ) {
    this.seen = stamp(paths);
    this.material = load();
  }

  get current(): T {
    return this.material;
  }

  /** Read the files again if they changed; returns the material to use now (the old one if the new is broken). */
  refresh(): T {
    const now = stamp(this.paths);
    if (now === this.seen || now === this.failedStamp) return this.material;
    try {
      this.material = this.load();
      this.seen = now;
      this.failedStamp = undefined;
      this.events.onReload?.(this.material, this.paths);
    } catch (err) {
      // Report a broken state once, not at every check; a later change is tried again.
      this.failedStamp = now;
      this.events.onError?.(err as Error, this.paths);
    }
    return this.material;
  }

  /** Check every `intervalMs` (an unref'd timer); `stop()` ends it. */
  watch(intervalMs: number): this {
    this.stop();
    this.timer = setInterval(() => this.refresh(), intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** A server listener's reloading material; undefined without a certificate. */
export function reloadingServerTls(files: Partial<ServerTlsFiles>, events?: TlsReloadEvents<ServerTlsOptions>): ReloadingTls<ServerTlsOptions> | undefined {
  if (!files.cert || !files.key) return undefined;
  const paths = [files.cert, files.key, ...(files.ca ? [files.ca] : [])];
  return new ReloadingTls(paths, () => loadServer(files as ServerTlsFiles), events);
}

/** The agent's reloading material; undefined without a CA or a certificate (plaintext). */
export function reloadingClientTls(files: ClientTlsFiles, events?: TlsReloadEvents<ClientTlsOptions>): ReloadingTls<ClientTlsOptions> | undefined {
  if (!files.ca && !files.cert) return undefined;
  const paths = [files.ca, files.cert, files.key].filter((p): p is string => Boolean(p));
  return new ReloadingTls(paths, () => loadClient(files), events);
}

/**
 * Go's TLS 1.0-1.2 cipher suite names that the reference accepts in `--cipher-suites` (its secure list, without
 * the RSA key exchange ones, which it refuses too), with OpenSSL's names.
 */
export const GO_CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
};
/** TLS 1.3 suites: accepted, and (as in Go) not configurable, so they stay enabled. */
export const TLS13_CIPHER_SUITES: readonly string[] = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/**
 * Turn `--cipher-suites` (comma-separated Go names) into an OpenSSL cipher list for TLS 1.2 and below, keeping
 * the TLS 1.3 suites. Undefined for an empty list (Node's defaults). Throws with the reference's wording for a
 * name it would refuse.
 */
export function opensslCiphers(goNames: readonly string[]): string | undefined {
  const names = goNames.map((n) => n.trim()).filter((n) => n !== '');
  if (names.length === 0) return undefined;
  const tls12: string[] = [];
  for (const n of names) {
    if (TLS13_CIPHER_SUITES.includes(n)) continue;
    const openssl = GO_CIPHER_SUITES[n];
    if (!openssl) throw new Error(`cipher suite ${n} not supported, doesn't exist or considered as insecure`);
    tls12.push(openssl);
  }
  const list = [...tls12, ...TLS13_CIPHER_SUITES].join(':');
  try {
    createSecureContext({ ciphers: list });
  } catch (err) {
    throw new Error(`cipher suites ${names.join(',')}: not available in this OpenSSL (${(err as Error).message})`);
  }
  return list;
}
