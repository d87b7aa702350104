/**
 * The gRPC frontend (`/ProxyService/Proxy`): one session per stream, carrying one connection, as in the reference
 * (`serveRecvFrontend`). Agent DATA is passed to the frontend as the same packet (no re-encoding when the transport
 * kept the bytes); the frontend's own HTTP/2 window is the connection's backpressure, so a slow frontend holds back
 * only its own agent connection (credit) and never the agent's other connections.
 *
 * It knows the server only as a {@link DialBroker}.
 */
import { KonnectivityError } from '../../../protocol/errors.js';
import {
  PacketType,
  closeRequest,
  closeResponse,
  connectIDOf,
  payloadOf,
  dialResponse,
  randomOf,
  type DataPacket,
  type DialRequestPacket,
  type Packet,
} from '../../../protocol/packet.js';
import type { PacketStream } from '../../../transport/packet-stream.js';
import { packetSwitch } from '../../../tunnel/packet-switch.js';
import { attachStream, closeStream } from '../../../tunnel/stream-lifecycle.js';
import type { ConnectionHandlers, TunnelConnection } from '../../../tunnel/tunnel.js';
import type { DialBroker, DialHandle } from '../../dials.js';

type State = 'idle' | 'dialing' | 'established' | 'closing' | 'done';

export class GrpcFrontendSession implements ConnectionHandlers {
  private static readonly packets = packetSwitch<GrpcFrontendSession, undefined>({
    [PacketType.DIAL_REQ]: (s, p) => s.dial(p),
    [PacketType.DATA]: (s, p) => s.data(p),
    [PacketType.CLOSE_REQ]: (s, p) => s.closeRequested(connectIDOf(p)),
    [PacketType.DIAL_CLS]: (s, p) => s.dialClosed(randomOf(p)),
    [PacketType.HALF_CLOSE]: (s, p) => s.halfClosed(connectIDOf(p)),
  });

  private state: State = 'idle';
  private random = 0n;
  private handle: DialHandle | undefined;
  private connection: TunnelConnection | undefined;
  private agentID = '';

  /**
   * `timeoutMs` bounds the wait for DIAL_RSP (0: none); `closeTimeoutMs` the agent's CLOSE_RSP once the frontend
   * has left, and the frontend's end of the stream once we ended ours.
   */
  constructor(
    private readonly broker: DialBroker,
    private readonly stream: PacketStream,
    private readonly timeoutMs: number,
    /** The client offered half-close and we confirmed it: its HALF_CLOSE is passed on to the agent. */
    private readonly halfClose: boolean,
    private readonly closeTimeoutMs: number,
  ) {
    stream.on('packet', (p) => {
      broker.count('fromFrontend', p);
      GrpcFrontendSession.packets(this, p, undefined);
    });
    stream.on('drain', () => this.connection?.release());
    attachStream(stream, { onEnd: () => this.frontendGone(), onClose: () => this.frontendGone() });
  }

  destroy(err: Error): void {
    this.stream.destroy(err);
  }

  /**
   * The server is shutting down: a connection in progress ends as if the agent had closed it (CLOSE_RSP to the
   * frontend, CLOSE_REQ to the agent), an idle stream just ends. A dial in progress is failed by the server.
   */
  shutdown(): void {
    const c = this.connection;
    if ((this.state === 'established' || this.state === 'closing') && c) {
      c.drop(closeRequest(c.connectID), this.closeTimeoutMs);
      this.end(closeResponse(c.connectID));
    } else if (this.state === 'idle') {
      this.end();
    }
  }

  private write(p: Packet): boolean {
    this.broker.count('toFrontend', p);
    return this.stream.write(p);
  }

  private dial(p: DialRequestPacket): void {
    const req = p.dialRequest;
    if (!req || this.state !== 'idle') return;
    this.state = 'dialing';
    this.random = req.random;
    const request = { ...req, origin: this.stream.sharedConnection ?? this.stream };
    const result = this.broker.beginDial(request, 'grpc', this.timeoutMs, {
      succeed: (connection, agentID) => this.established(connection, agentID),
      fail: (err) => {
        if (this.state !== 'dialing') return;
        this.end(dialResponse(this.random, 0n, err.message));
      },
    });
    if (result instanceof KonnectivityError) {
      this.end(dialResponse(this.random, 0n, result.message));
      return;
    }
    this.handle = result;
  }

  private data(p: DataPacket): void {
    const id = connectIDOf(p);
    if (id === 0n) return;
    if (this.state === 'established' && this.connection) {
      if (id !== this.connection.connectID) {
        // One connection per stream: a second ID means a confused client; close both.
        this.connection.finish(closeRequest(this.connection.connectID), false);
        this.end(closeResponse(id, 'mismatched connection IDs'));
        return;
      }
      if (!this.connection.sendData(payloadOf(p))) this.stream.pause();
      return;
    }
    if (this.state === 'closing') return; // the reference discards data after CLOSE_REQ
    this.write(closeResponse(id, 'backend not initialized'));
  }

  private closeRequested(id: bigint): void {
    if (this.state === 'established' && this.connection && id === this.connection.connectID) {
      this.state = 'closing';
      this.connection.finish(closeRequest(id), true);
      return;
    }
    if (this.state !== 'closing') this.write(closeResponse(id, 'backend uninitialized'));
  }

  /** HALF_CLOSE from the client: end the agent's side of the connection after the data (if the agent can hear it). */
  private halfClosed(id: bigint): void {
    if (this.halfClose && this.state === 'established' && this.connection && id === this.connection.connectID) {
      this.connection.endWrite();
    }
  }

  private dialClosed(random: bigint): void {
    if (this.state === 'dialing' && random === this.random) {
      this.handle?.cancel();
      this.end();
    }
  }

  private established(connection: TunnelConnection, agentID: string): void {
    if (this.state !== 'dialing') {
      // The frontend left while the agent was dialing.
      connection.finish(closeRequest(connection.connectID), false);
      return;
    }
    this.state = 'established';
    this.connection = connection;
    this.agentID = agentID;
    this.write(dialResponse(this.random, connection.connectID));
    // The session is the connection's handlers itself: no handler object or closures per connection.
    connection.handlers = this;
  }

  /** ConnectionHandlers: agent DATA goes on to the frontend as the same packet. */
  onData(packet: DataPacket, length: number): void {
    this.connection!.handedOn(length, this.write(packet));
  }

  /** ConnectionHandlers: the agent side has room again. */
  onWritable(): void {
    this.stream.resume();
  }

  /** ConnectionHandlers: the agent closed the connection. */
  onPeerClosed(error: string): void {
    this.end(closeResponse(this.connection!.connectID, error));
  }

  /** ConnectionHandlers: the agent's tunnel went away. */
  onTunnelClosed(): void {
    this.end(closeResponse(this.connection!.connectID));
  }

  /** The frontend stream ended or failed: the agent side must not outlive it. */
  private frontendGone(): void {
    if (this.state === 'dialing') {
      this.handle?.cancel();
    } else if ((this.state === 'established' || this.state === 'closing') && this.connection) {
      const c = this.connection;
      // Closing: our CLOSE_REQ is queued after the frontend's data already; otherwise it goes now.
      if (this.state === 'closing') c.discardIncoming(this.closeTimeoutMs);
      else c.drop(closeRequest(c.connectID), this.closeTimeoutMs);
    }
    this.finishConnection();
    this.state = 'done';
    if (!this.stream.closed) void closeStream(this.stream, { graceMs: this.closeTimeoutMs });
  }

  /** Send a last packet (if any) and end the stream. */
  private end(last?: Packet): void {
    if (this.state === 'done') return;
    this.finishConnection();
    this.state = 'done';
    if (last) this.write(last);
    void closeStream(this.stream, { graceMs: this.closeTimeoutMs });
  }

  private finishConnection(): void {
    if (this.connection && this.state !== 'done') {
      this.broker.connectionEnded(this.agentID, this.connection);
    }
  }
}
