/** Dial IDs (`random`): a uniformly random non-negative 63-bit integer, as Go's rand.Int63() gives. */
import { randomBytes } from 'node:crypto';

const POOL_SIZE = 8 * 512;
let pool = Buffer.alloc(0);
let poolPos = 0;

export function randomDialID(): bigint {
  if (poolPos + 8 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolPos = 0;
  }
  const v = pool.readBigUInt64BE(poolPos) & 0x7fff_ffff_ffff_ffffn;
  poolPos += 8;
  // 0 means "none" on the wire.
  return v === 0n ? 1n : v;
}
