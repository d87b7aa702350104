/**
 * A custom agent dialer: the agent serves some addresses in-process (here `clock.internal:13`, a daytime-like
 * service) and hands every other address to the default TCP dialer. Any Duplex will do as an endpoint.
 *
 *   npx tsx examples/custom-dialer/index.ts
 */
import { Duplex } from 'node:stream';
import { once } from 'node:events';
import { Agent, ProxyServer, memoryConnector, tcpDialer, type Dialer } from 'konnectivity-ts';

/** An in-process service: answers each write with the time and what was written. */
function clockService(): Duplex {
  return new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      this.push(`[${new Date().toISOString().slice(11, 19)}] you said: ${chunk.toString()}`);
      callback();
    },
    final(callback) {
      this.push(null);
      callback();
    },
  });
}

const tcp = tcpDialer({ timeoutMs: 2000 });
const dialer: Dialer = async (request) => {
  if (request.address === 'clock.internal:13') return clockService();
  if (request.address.endsWith('.internal:13')) throw new Error(`dial tcp ${request.address}: no such service`);
  return tcp(request);
};

// Server and agent in one process, joined by an in-memory stream instead of a network transport.
const server = new ProxyServer({ serverID: 'dialer-example' });
const agent = new Agent({ agentID: 'dialer-agent', dialer });
await agent.connect(memoryConnector((incoming) => void server.acceptAgent(incoming)));

const socket = await server.dial('clock.internal:13');
socket.setEncoding('utf8');
socket.write('what time is it?');
const [reply] = (await once(socket, 'data')) as [string];
console.log(`clock.internal:13 answered: ${reply}`);
socket.end();
await once(socket, 'close');

try {
  await server.dial('nowhere.internal:13');
} catch (err) {
  console.log(`nowhere.internal:13 failed as expected: ${(err as Error).message}`);
}

await agent.close();
await server.close();
console.log('done');
