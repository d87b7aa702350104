/**
 * Every default limit on what a peer can make us hold, in one place (the windows are in windows.ts). Each is an
 * option of its component, named in its doc and checked with `checkNumber` where the component is built; past a
 * limit the new work is refused with ERR_LIMIT_EXCEEDED and everything else keeps being served.
 *
 * The defaults are far above what a normal deployment uses (kube-apiserver holds thousands of connections on one
 * server, and a dial is pending for a few milliseconds), but low enough that one peer cannot take every descriptor
 * or all the memory of the process.
 */

import { readFileSync } from 'node:fs';

/**
 * The least number of connections one listener holds at once by default (`maxConnections` of the gRPC server, the
 * yamux listener, HTTP-CONNECT); see {@link defaultMaxConnectionsPerListener}.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_LISTENER = 16_384;
/** Descriptors the default connection limit leaves to the process itself: listeners, tunnels, health, metrics, logs. */
export const DESCRIPTORS_KEPT_BACK = 64;

let defaultMaxConnections: number | undefined;

/**
 * Connections one listener holds at once by default: what the process's open-files limit allows, less
 * DESCRIPTORS_KEPT_BACK, and never fewer than DEFAULT_MAX_CONNECTIONS_PER_LISTENER. So a server holds as many idle
 * connections as its descriptors allow with nothing to tune, as the reference does (it has no such limit), and a
 * flood still leaves descriptors for the agents' tunnels and the health endpoints. Read once, from
 * /proc/self/limits (the soft limit); elsewhere the floor.
 */
export function defaultMaxConnectionsPerListener(): number {
  if (defaultMaxConnections === undefined) {
    let limits = '';
    try {
      limits = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      // Not Linux: the floor.
    }
    defaultMaxConnections = connectionsAllowedBy(limits);
  }
  return defaultMaxConnections;
}

/** The default connection limit for a process whose `/proc/self/limits` reads `limits` (the floor if it has no soft open-files limit). */
export function connectionsAllowedBy(limits: string): number {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = Number(line?.slice('Max open files'.length).trim().split(/\s+/)[0]);
  const usable = Number.isSafeInteger(soft) && soft > 0 ? Math.min(soft, 2 ** 31 - 1) - DESCRIPTORS_KEPT_BACK : 0;
  return Math.max(DEFAULT_MAX_CONNECTIONS_PER_LISTENER, usable);
}

/**
 * How long a new connection may take to become usable (`handshakeTimeoutMs` of every listener): the TLS handshake,
 * then the HTTP/2 preface and SETTINGS, the yamux control-stream handshake, or the HTTP-CONNECT request head.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Concurrent calls on one HTTP/2 connection (`maxConcurrentStreams` of the gRPC server, sent in SETTINGS). A
 * client that shares one connection for all its dials (konnectivity-client's reusable tunnel) holds one call per
 * open connection, so this is high; what bounds a burst of dials is the pending-dial limit.
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 16_384;

/**
 * Bytes held in gRPC messages that have not arrived whole yet, over all calls of one HTTP/2 connection
 * (`maxPartialMessageBytes` of the gRPC server). HTTP/2 flow control does not bound them: the window is returned
 * as bytes are read, whether or not a message is complete. At least twice the largest message, so two may be in
 * progress at once.
 */
export const DEFAULT_MAX_PARTIAL_MESSAGE_BYTES = 32 * 1024 * 1024;

/** Dials one frontend connection may have pending on the server (`maxPendingDialsPerFrontend` of ProxyServer). */
export const DEFAULT_MAX_PENDING_DIALS_PER_FRONTEND = 256;

/** Dials the server may have pending on one agent tunnel (`maxPendingDialsPerAgent` of ProxyServer). */
export const DEFAULT_MAX_PENDING_DIALS_PER_AGENT = 1024;

/** Endpoint dials one agent runs at once, over all its tunnels (`maxPendingDials` of Agent). */
export const DEFAULT_AGENT_MAX_PENDING_DIALS = 1024;
