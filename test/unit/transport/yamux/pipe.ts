/**
 * An in-process byte pipe: two Duplex ends, what one writes the other reads (like a socketpair). Delivery is
 * asynchronous and ordered, as on a socket.
 */
import { Duplex } from 'node:stream';

export function duplexPair(): [Duplex, Duplex] {
  let a!: Duplex;
  let b!: Duplex;
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        setImmediate(() => peer().push(chunk));
        cb();
      },
      final(cb) {
        setImmediate(() => peer().push(null));
        cb();
      },
      destroy(err, cb) {
        setImmediate(() => peer().destroy());
        cb(err);
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}
