/**
 * Dial IDs (`random`): a uniformly random non-negative 63-bit integer, as Go's rand.Int63() gives.
 * The randomness is the global Web Crypto `crypto.getRandomValues` (Node 20+), so protocol/ imports no built-in.
 */

const POOL_SIZE = 512;
const INT63_MASK = 0x7fff_ffff_ffff_ffffn;
/** 4 KiB of randomness at a time: one getRandomValues call serves 512 dials. */
const pool = new BigUint64Array(POOL_SIZE);
let poolPos = POOL_SIZE;

/** A random dial ID (`random`) in [1, 2^63), as the Go client draws with rand.Int63(). */
export function randomDialID(): bigint {
  if (poolPos === POOL_SIZE) {
    crypto.getRandomValues(pool);
    poolPos = 0;
  }
  const v = pool[poolPos++]! & INT63_MASK;
  // 0 means "none" on the wire.
  return v === 0n ? 1n : v;
}
