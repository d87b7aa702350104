/**
 * What a TLS listener tells of its peer's client certificate. The listeners that ask for one (mTLS) finish the
 * handshake whatever the certificate, and refuse an unauthorized peer themselves: OpenSSL's own refusal reaches
 * neither side with a reason (the server sees `socket hang up`, the client a closed connection), while this way the
 * server logs why and the peer is told why (a gRPC status, a yamux handshake error, an HTTP status).
 */
import type { TLSSocket } from 'node:tls';

/** OpenSSL's verify codes, as Node reports them in `authorizationError`, in words. */
const VERIFY_ERRORS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate signed by unknown authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate signed by unknown authority (self-signed certificate in the chain)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'certificate signed by unknown authority (self-signed certificate)',
  CERT_REVOKED: 'certificate has been revoked',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  INVALID_PURPOSE: 'certificate is not for client authentication',
};

/**
 * Why the peer of a server-side TLS socket that asked for a client certificate is not authorized, in words
 * (`client certificate refused: certificate has expired`), or undefined when it is.
 */
export function clientCertificateProblem(socket: TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return 'no client certificate presented';
  const code = String(socket.authorizationError ?? 'not authorized');
  return `client certificate refused: ${VERIFY_ERRORS[code] ?? code}`;
}

/**
 * The names a verified client certificate carries: its subject CN and its DNS and IP subject alternative names (empty
 * when the peer is not authorized or sent none).
 */
export function peerCertificateNames(socket: TLSSocket | undefined): string[] {
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return [];
  const cert = socket.getPeerCertificate();
  const names: string[] = [];
  const cn = cert?.subject?.CN as string | string[] | undefined;
  for (const n of Array.isArray(cn) ? cn : cn ? [cn] : []) names.push(n);
  for (const part of (cert?.subjectaltname ?? '').split(',')) {
    const m = /^\s*(?:DNS|IP Address):(.+)$/.exec(part);
    if (m) names.push(m[1]!.trim());
  }
  return [...new Set(names)];
}

const addresses = new WeakMap<object, { address: string; port: number | undefined }>();

/** Note the peer of a just-accepted TCP socket (a server's 'connection' event), for {@link socketAddress} later. */
export function rememberPeer(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
  if (socket.remoteAddress) addresses.set(socket, { address: socket.remoteAddress, port: socket.remotePort });
}

/**
 * The peer of a socket for logs, also once it is destroyed: a failed TLS handshake is reported after the socket
 * closed, when only what {@link rememberPeer} kept of the TCP socket under it (Node's `_parent`) still knows it.
 */
export function socketAddress(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined): { address?: string; port?: number } {
  if (socket?.remoteAddress) return { address: socket.remoteAddress, ...(socket.remotePort !== undefined ? { port: socket.remotePort } : {}) };
  const parent = (socket as { _parent?: object } | undefined)?._parent;
  const kept = (socket && addresses.get(socket)) ?? (parent && addresses.get(parent));
  return kept ? { address: kept.address, ...(kept.port !== undefined ? { port: kept.port } : {}) } : {};
}
