/**
 * Bind-address handling shared by the programs: the reference's empty bind address means every interface.
 */

/** Errors that say the IPv6 wildcard is not available on this host. */
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EINVAL']);

/**
 * Run `listen(host)` with the host the flag names; for an empty flag try the dual-stack wildcard `::` first and
 * fall back to `0.0.0.0` on hosts without IPv6, as Go's `net.Listen(":port")` covers both.
 */
export async function listenOnBindAddress<T>(bindAddress: string, listen: (host: string) => Promise<T>): Promise<T> {
  if (bindAddress !== '') return listen(bindAddress);
  try {
    return await listen('::');
  } catch (err) {
    if (!NO_IPV6.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    return listen('0.0.0.0');
  }
}

export { joinHostPort } from '../protocol/address.js';
