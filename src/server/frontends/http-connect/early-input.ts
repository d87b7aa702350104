/**
 * What a CONNECT client sends before its tunnel is open. The socket keeps being read during the dial, because a
 * paused socket never sees its peer leave and the dial could not be aborted; the bytes are held (bounded, then the
 * socket is paused) and forwarded first once the tunnel is open. `EarlyBytes` is the rule, for both ways of serving
 * a CONNECT (`connect.ts`); `holdEarlyInput` listens for it, for the relayed way.
 */
import type { Duplex } from 'node:stream';

/** What a client sent during the dial when it sent nothing. */
const NOTHING: readonly Buffer[] = [];

/** Why a dial is given up when its client leaves. */
export const CLIENT_LEFT_DURING_DIAL = 'the client closed the connection during the dial';
export function clientErrorDuringDial(err: Error): string {
  return `client error during the dial: ${err.message}`;
}

/** What one client sent during its dial (the header's trailing bytes first), bounded, and whether its EOF came. */
export class EarlyBytes {
  private chunks: Buffer[] | undefined;
  private bytes = 0;
  /** The client's EOF came. */
  ended = false;

  constructor(
    head: Buffer,
    private readonly maxBytes: number,
  ) {
    if (head.length > 0) this.add(head);
  }

  /** Hold `chunk`; true once the bound is reached: pause the socket (the client waits, like any backpressure). */
  add(chunk: Buffer): boolean {
    (this.chunks ??= []).push(chunk);
    this.bytes += chunk.length;
    return this.full;
  }

  get full(): boolean {
    return this.bytes >= this.maxBytes;
  }

  /**
   * The client's EOF came. True when it sent nothing: it left during the dial (a client that sent data and then
   * half-closed still gets its data delivered and the answer, as the reference does).
   */
  end(): boolean {
    this.ended = true;
    return this.bytes === 0;
  }

  /** What was held, handed over once. */
  take(): readonly Buffer[] {
    const chunks = this.chunks ?? NOTHING;
    this.chunks = undefined;
    return chunks;
  }
}

/** The bytes held for one CONNECT socket until its tunnel is open. */
export interface EarlyInput {
  /** Stop reading; returns what was held (the header's trailing bytes first) and whether the client sent EOF. */
  release(): { chunks: readonly Buffer[]; ended: boolean };
}

/**
 * Start holding `socket`'s input, `head` first. `onGone` is called once when the client leaves during the dial:
 * an error, a close, or an EOF before any byte beyond the header.
 */
export function holdEarlyInput(socket: Duplex, head: Buffer, maxBytes: number, onGone: (why: string) => void): EarlyInput {
  const early = new EarlyBytes(head, maxBytes);
  let gone = false;
  const leave = (why: string): void => {
    if (gone) return;
    gone = true;
    onGone(why);
  };
  const onData = (chunk: Buffer): void => {
    if (early.add(chunk)) socket.pause();
  };
  const onEnd = (): void => {
    if (early.end()) leave(CLIENT_LEFT_DURING_DIAL);
  };
  const onError = (err: Error): void => leave(clientErrorDuringDial(err));
  const onClose = (): void => leave(CLIENT_LEFT_DURING_DIAL);
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.on('error', onError);
  socket.once('close', onClose);
  if (!early.full) socket.resume();
  return {
    release() {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      return { chunks: early.take(), ended: early.ended };
    },
  };
}
