/** A gRPC listener's TLS options, and the secure context they make (at creation and at each rotation). */
import type { SecureContextOptions } from 'node:tls';

/** TLS for a gRPC listener. */
export interface GrpcServerTlsOptions {
  /** PEM private key. */
  key: string | Buffer;
  /** PEM certificate chain. */
  cert: string | Buffer;
  /** PEM CA bundle for client certificates. When set, every client must present a certificate it signed (mTLS). */
  ca?: string | Buffer;
  /** Lowest TLS version accepted (default TLSv1.2, as the reference). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list (default: Node's). */
  ciphers?: string;
}

/** The secure context of a TLS listener's options. */
export function secureContextOptions(t: GrpcServerTlsOptions): SecureContextOptions {
  return { key: t.key, cert: t.cert, ...(t.ca !== undefined ? { ca: t.ca } : {}), minVersion: t.minVersion ?? 'TLSv1.2', ...(t.ciphers ? { ciphers: t.ciphers } : {}) };
}
