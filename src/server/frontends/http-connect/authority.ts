/**
 * The target of a CONNECT request: the request-line authority (`CONNECT host:port HTTP/1.1`), as Go's
 * `r.Host` gives it to the reference server. Pure: no I/O.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { joinHostPort, splitHostPort } from '../../../protocol/address.js';

/** A validated CONNECT target. */
export interface ConnectAuthority {
  /** The host without brackets (`10.0.0.1`, `example.com`, `::1`). */
  host: string;
  /** 1-65535. */
  port: number;
  /** The address as it goes into DIAL_REQ (`host:port`, IPv6 in brackets), normalised from the request line. */
  address: string;
}

// RFC 1123 host names (letters, digits, hyphens, dots) plus `_`, which service records and some clusters use.
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$/;
const PORT = /^[0-9]{1,5}$/;

/**
 * Parse and validate `host:port` (IPv6 as `[addr]:port`). Returns undefined for anything else: a missing or
 * non-numeric port, port 0 or above 65535, an empty host, an unbracketed IPv6 address, a path or a scheme.
 */
export function parseConnectAuthority(authority: string | undefined): ConnectAuthority | undefined {
  if (authority === undefined || authority.length === 0 || authority.length > 300) return undefined;
  const { host, port: portText } = splitHostPort(authority);
  if (portText === undefined || !PORT.test(portText)) return undefined;
  if (authority.startsWith('[')) {
    // A zone (`fe80::1%eth0`) is allowed, as Go's SplitHostPort allows it.
    const zone = host.indexOf('%');
    const bare = zone < 0 ? host : host.slice(0, zone);
    if (!isIPv6(bare) || (zone >= 0 && !/^%[A-Za-z0-9_.-]+$/.test(host.slice(zone)))) return undefined;
  } else if (!isIPv4(host) && !HOST_NAME.test(host)) {
    return undefined;
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port, address: joinHostPort(host, port) };
}
