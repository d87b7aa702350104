/** `host:port` addresses as the contract carries them (DIAL_REQ `address`): split, parsed and joined here only. Pure. */

/**
 * Split `host:port`, `[v6]:port` or `[v6]`; brackets are removed. A bare IPv6 address (several colons, no
 * brackets) or a name without a colon is all host, with no port.
 */
export function splitHostPort(address: string): { host: string; port: string | undefined } {
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(address);
  if (v6) return { host: v6[1]!, port: v6[2] };
  const i = address.lastIndexOf(':');
  if (i < 0 || address.indexOf(':') !== i) return { host: address, port: undefined };
  return { host: address.slice(0, i), port: address.slice(i + 1) };
}

/**
 * Parse exactly `host:port` or `[v6]:port` with a decimal port (its range is the caller's to check); undefined for
 * any other shape. Brackets are removed; an unbracketed host may be empty (`:8090`).
 */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  return m ? { host: (m[1] ?? m[2])!, port: Number(m[3]) } : undefined;
}

/**
 * `host:port` with an IPv6 host in brackets (`[::1]:8091`); a host already in brackets is kept as it is. Without a
 * port, the host alone, bracketed when IPv6 (as a URL or Go's error text has it).
 */
export function joinHostPort(host: string, port?: number | string): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}
