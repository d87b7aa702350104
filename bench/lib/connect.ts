/** A minimal HTTP CONNECT client (what kube-apiserver does against the proxy server's HTTP-CONNECT frontend). */
import net from 'node:net';
import type { Duplex } from 'node:stream';

/** Where the frontend listens: a loopback port or a Unix socket. */
export type FrontendAddress = { port: number } | { path: string };

export function connectVia(proxy: FrontendAddress, address: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const sock = 'path' in proxy ? net.connect({ path: proxy.path }) : net.connect({ port: proxy.port, host: '127.0.0.1', noDelay: true });
    let buf: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      sock.off('error', onError);
      sock.pause();
      const status = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.[01] 200/.test(status)) {
        sock.destroy();
        reject(new Error(`CONNECT refused: ${status}`));
        return;
      }
      const rest = buf.subarray(end + 4);
      if (rest.length) sock.unshift(rest);
      resolve(sock);
    };
    const onError = (err: Error) => reject(err);
    sock.on('data', onData);
    sock.on('error', onError);
    sock.write(`CONNECT ${address} HTTP/1.1\r\nHost: ${address}\r\n\r\n`);
  });
}
