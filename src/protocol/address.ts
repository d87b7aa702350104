/** `host:port` addresses as the contract carries them (DIAL_REQ `address`). Pure. */

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
