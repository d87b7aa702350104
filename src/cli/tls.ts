/**
 * TLS material from the reference's file flags, read once at start-up with clear errors (the Go binaries fail to
 * start on a bad file too).
 */
import { readFileSync } from 'node:fs';
import type { SecureVersion } from 'node:tls';

/** Server-side TLS settings for a listener: certificate, key, and the CA that client certificates must chain to. */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** When set, client certificates are required and verified (mTLS), as the reference does. */
  ca?: string;
  /** Node's name for the minimum version (`TLSv1.2`). */
  minVersion?: SecureVersion;
}

/** What node:tls / node:http2 secure servers take. */
export interface ServerTlsOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
  minVersion: SecureVersion;
}

/** Client-side TLS settings: the CA to trust and an optional client certificate. */
export interface ClientTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`failed to read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** Load a listener's TLS files; undefined when no certificate is configured (plaintext). */
export function loadServerTls(files: Partial<ServerTlsFiles>): ServerTlsOptions | undefined {
  if (!files.cert || !files.key) return undefined;
  const ca = files.ca ? read(files.ca, 'CA certificate') : undefined;
  return {
    cert: read(files.cert, 'certificate'),
    key: read(files.key, 'key'),
    ...(ca ? { ca } : {}),
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
    minVersion: files.minVersion ?? 'TLSv1.2',
  };
}

/** Load the agent's TLS files; undefined when no CA is given (plaintext, our extension for tests and meshes). */
export function loadClientTls(files: { ca?: string; cert?: string; key?: string; servername?: string }): ClientTlsOptions | undefined {
  if (!files.ca && !files.cert) return undefined;
  return {
    ...(files.ca ? { ca: read(files.ca, 'CA certificate') } : {}),
    ...(files.cert ? { cert: read(files.cert, 'client certificate') } : {}),
    ...(files.key ? { key: read(files.key, 'client key') } : {}),
    ...(files.servername ? { servername: files.servername } : {}),
  };
}
