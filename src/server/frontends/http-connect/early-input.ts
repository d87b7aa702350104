/**
 * What a CONNECT client sends before its tunnel is open. The socket keeps being read during the dial, because a
 * paused socket never sees its peer leave and the dial could not be aborted; the bytes are held (bounded, then the
 * socket is paused) and forwarded first once the tunnel is open.
 */
import type { Duplex } from 'node:stream';

/** The bytes held for one CONNECT socket until its tunnel is open. */
export interface EarlyInput {
  /** Stop reading; returns what was held (the header's trailing bytes first) and whether the client sent EOF. */
  release(): { chunks: Buffer[]; ended: boolean };
}

/**
 * Start holding `socket`'s input, `head` first. `onGone` is called once when the client leaves during the dial:
 * an error, a close, or an EOF before any byte beyond the header (a client that sent data and then half-closed
 * still gets its data delivered and the answer, as the reference does).
 */
export function holdEarlyInput(socket: Duplex, head: Buffer, maxBytes: number, onGone: (why: string) => void): EarlyInput {
  const chunks: Buffer[] = head.length > 0 ? [head] : [];
  let held = head.length;
  let ended = false;
  let gone = false;
  const leave = (why: string): void => {
    if (gone) return;
    gone = true;
    onGone(why);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    held += chunk.length;
    if (held >= maxBytes) socket.pause(); // the client waits for the tunnel, like any backpressure
  };
  const onEnd = (): void => {
    ended = true;
    if (held === 0) leave('the client closed the connection during the dial');
  };
  const onError = (err: Error): void => leave(`client error during the dial: ${err.message}`);
  const onClose = (): void => leave('the client closed the connection during the dial');
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.on('error', onError);
  socket.once('close', onClose);
  if (held < maxBytes) socket.resume();
  return {
    release() {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      return { chunks, ended };
    },
  };
}
