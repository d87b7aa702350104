/**
 * DATA payload bytes as the hot path holds them: one buffer, or the views of the receive buffers a transport got
 * them in (HTTP/2 hands over 16 KiB frames, so a 32 KiB message arrives in three pieces). Pieces travel to the
 * endpoint, or to the next hop, as they are: joining them would copy every byte once more. Pure: no I/O.
 */

/** Payload bytes: one buffer, or its pieces in order. */
export type Payload = Uint8Array | readonly Uint8Array[];

const EMPTY = new Uint8Array(0);

/** True when the payload is held in pieces. */
export function isPieces(p: Payload): p is readonly Uint8Array[] {
  return !(p instanceof Uint8Array);
}

/** Total bytes of a payload. */
export function payloadLength(p: Payload): number {
  if (!isPieces(p)) return p.length;
  let n = 0;
  for (const piece of p) n += piece.length;
  return n;
}

/** The payload as one buffer: itself, or its pieces copied once into a new one. */
export function joinPayload(p: Payload, length = payloadLength(p)): Uint8Array {
  if (!isPieces(p)) return p;
  if (p.length === 1) return p[0]!;
  if (length === 0) return EMPTY;
  const out = Buffer.allocUnsafe(length);
  let off = 0;
  for (const piece of p) {
    out.set(piece, off);
    off += piece.length;
  }
  return out;
}

/** Bytes [start, end) of a payload, as views (no copy). */
export function slicePayload(p: Payload, start: number, end: number): Payload {
  if (!isPieces(p)) return p.subarray(start, end);
  const out: Uint8Array[] = [];
  let off = 0;
  for (const piece of p) {
    const next = off + piece.length;
    if (next > start && off < end) {
      out.push(start <= off && next <= end ? piece : piece.subarray(Math.max(0, start - off), Math.min(piece.length, end - off)));
    }
    if (next >= end) break;
    off = next;
  }
  return out.length === 1 ? out[0]! : out;
}

/**
 * The `Data` of a DATA packet whose payload is held in pieces. `data` joins them on first read (one copy), for code
 * that wants one buffer; the forwarding path reads `pieces` and copies nothing.
 */
export class PiecewiseData {
  /** Always empty: a DATA packet with an error is never held in pieces. */
  error = '';
  private joined: Uint8Array | undefined;

  constructor(
    public connectID: bigint,
    public pieces: readonly Uint8Array[],
    public length: number,
  ) {}

  /** The payload as one buffer, joined from the pieces on first read. */
  get data(): Uint8Array {
    return (this.joined ??= joinPayload(this.pieces, this.length));
  }

  /** Replace the payload with one buffer. */
  set data(value: Uint8Array) {
    this.joined = value;
    this.pieces = [value];
    this.length = value.length;
  }
}

/** A view that holds on to a buffer more than this many times its own size is copied before it waits in a queue. */
const MAX_PINNED_RATIO = 4;

/**
 * The payload for a queue where it may wait long (a sink that is not keeping up). A view keeps its whole receive
 * buffer alive, and a small one (the last bytes of a message, in a buffer that held the next messages too) may hold
 * on to far more than it carries; such views are copied, so that what waits costs at most MAX_PINNED_RATIO times its
 * own size (about its own size when pieces share their buffers, as the pieces of one message do). A payload with no
 * such view is returned as it is.
 */
export function ownPayload(p: Payload): Payload {
  if (!isPieces(p)) return pins(p) ? copyOf(p) : p;
  let out: Uint8Array[] | undefined;
  for (let i = 0; i < p.length; i++) {
    const piece = p[i]!;
    if (!pins(piece)) continue;
    out ??= p.slice();
    out[i] = copyOf(piece);
  }
  return out ?? p;
}

/** A copy in a buffer of its own (not a slice of the shared pool, which would pin the pool's slab instead). */
function copyOf(view: Uint8Array): Uint8Array {
  const copy = Buffer.allocUnsafeSlow(view.byteLength);
  copy.set(view);
  return copy;
}

function pins(view: Uint8Array): boolean {
  return view.buffer.byteLength > MAX_PINNED_RATIO * view.byteLength;
}
