/** Byte helpers shared by the yamux tests. */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';

export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Everything a stream delivers until its end. Note: `for await` destroys the stream once done. */
export async function readAll(s: Duplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
