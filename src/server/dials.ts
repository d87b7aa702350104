/**
 * The server's dials (PROTOCOL.md §2.3, server role): a frontend asks for a connection to `address`; the agent
 * registry's strategies pick an agent; DIAL_REQ goes to it (on its tunnel, or on a substream opened for this dial);
 * the dial waits in the pending table, keyed by its `random`, until the agent's DIAL_RSP or DIAL_CLS, its timeout,
 * the frontend's cancel, or the loss of the agent's stream, whichever comes first.
 *
 * Frontends see only the {@link DialBroker}; the agent streams answer through `answered` and `closedByAgent`.
 */
import { abortError } from '../protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { closeDial, closeRequest, dialRequest, type DialResponse, type Packet } from '../protocol/packet.js';
import type { EventSink } from '../tunnel/event-sink.js';
import { DialFailure, PendingDials, type PendingDial } from '../tunnel/pending-dials.js';
import type { Tunnel, TunnelConnection } from '../tunnel/tunnel.js';

/** Which frontend a dial came from: a gRPC `Proxy` stream, an HTTP-CONNECT request, or a `dial()` call. */
export type FrontendKind = 'grpc' | 'http-connect' | 'programmatic';

/** What is refused (agents, frontends, dials) once the server is shutting down. */
export function shuttingDown(): KonnectivityError {
  return new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down');
}

/** Why a dial failed, as the server's `dialFailed` event and metrics name it (the reference's metric reasons). */
export type DialFailureKind =
  | 'no_agent'
  | 'error_response'
  | 'unrecognized_response'
  | 'send_rsp'
  | 'backend_close'
  | 'backend_dial_timeout'
  | 'frontend_close'
  | 'shutting_down'
  /** Ours: a pending-dial limit (per frontend connection or per agent) was reached; see ProxyServerOptions. */
  | 'too_many_pending_dials';

/** The events of dials (part of ProxyServerEvents). */
export interface DialEvents {
  /** `dialID` is the dial's `random`; `connectionID` the agent's connectID. */
  dialSucceeded: [
    event: { address: string; agentID: string; frontend: FrontendKind; durationMs: number; dialID: bigint; connectionID: bigint },
  ];
  dialFailed: [
    /** `agentID`: the agent the dial was sent to (none when it was refused before one was picked). */
    event: { address: string; frontend: FrontendKind; reason: DialFailureKind; error: KonnectivityError; dialID: bigint; agentID?: string },
  ];
  connectionClosed: [event: { agentID: string; connectID: bigint; bytesFromAgent: number; bytesToAgent: number }];
}

/** What becomes of a started dial: exactly one of the two follows `beginDial`, unless the dial is cancelled. */
export interface DialCallbacks {
  succeed(connection: TunnelConnection, agentID: string): void;
  fail(err: KonnectivityError): void;
}

/** What `beginDial` gives a frontend: a way to give up. */
export interface DialHandle {
  /** The agent the dial went to. */
  readonly agentID: string;
  /** Give up (the frontend went away or sent DIAL_CLS): forget the dial and tell the agent. */
  cancel(): void;
}

/** What a frontend asks for. */
export interface FrontendDialRequest {
  address: string;
  random: bigint;
  protocol?: string;
  /**
   * The frontend connection the dial comes from (the HTTP/2 connection of a gRPC frontend's call): its pending
   * dials count against `maxPendingDialsPerFrontend`. None: the dial counts only against its agent's limit.
   */
  origin?: object | undefined;
}

/** The frontends' packet counts (ServerStats.packets). */
export type FrontendSegment = 'fromFrontend' | 'toFrontend';

/**
 * What a frontend needs of the server, and all it sees of it: start a dial, report the end of the connection it
 * got, count its packets. The gRPC frontend session and the programmatic dial are written against it.
 */
export interface DialBroker {
  /**
   * Pick an agent, register the dial, send DIAL_REQ. Returns the error (without throwing) when the dial cannot
   * start; otherwise exactly one of `callbacks.succeed`/`fail` follows, unless the handle cancels it.
   */
  beginDial(request: FrontendDialRequest, frontend: FrontendKind, timeoutMs: number, callbacks: DialCallbacks): DialHandle | KonnectivityError;
  /** A dial ID not pending now. */
  newDialID(): bigint;
  /** A connection a frontend got from `succeed` has ended. */
  connectionEnded(agentID: string, connection: TunnelConnection): void;
  count(segment: FrontendSegment, packet: Packet): void;
}

/** Where a dial goes: one agent stream (an AgentBackend). */
export interface DialRoute {
  readonly agentID: string;
  /** The tunnel for one dial's DIAL_REQ: the agent's own, or a substream opened for the dial. */
  tunnelForDial(): Tunnel;
  /** The dial on `via` is over: end its substream (nothing for the agent's own tunnel). */
  release(via: Tunnel): void;
}

/** What the dials need of the server. */
export interface DialsHost {
  readonly events: EventSink<DialEvents>;
  /** Pending dials allowed per frontend connection (`origin`) and per agent route. */
  readonly limits: { readonly perFrontend: number; readonly perAgent: number };
  /** False once the server is shutting down. */
  accepting(): boolean;
  /** The agent the strategies pick for `address` among those `accept` takes, if any. */
  pick(address: string, accept?: (route: DialRoute) => boolean): DialRoute | undefined;
  count(segment: FrontendSegment, packet: Packet): void;
}

/** A dial waiting for its agent's answer; also the handle its frontend holds (no closure per dial). */
class ServerDial implements DialHandle {
  /** Its entry in the pending table. */
  entry!: PendingDial<ServerDial>;

  constructor(
    private readonly dials: Dials,
    readonly address: string,
    readonly origin: object | undefined,
    readonly route: DialRoute,
    readonly via: Tunnel,
    readonly frontend: FrontendKind,
    readonly callbacks: DialCallbacks,
  ) {}

  get agentID(): string {
    return this.route.agentID;
  }

  cancel(): void {
    this.dials.cancel(this.entry);
  }
}

export class Dials implements DialBroker {
  private readonly pending = new PendingDials<ServerDial>((d) => {
    this.perRoute.remove(d.value.route);
    if (d.value.origin) this.perOrigin.remove(d.value.origin);
  });
  /** Pending dials by agent route and by frontend connection, for the limits. */
  private readonly perRoute = new Tally<DialRoute>();
  private readonly perOrigin = new Tally<object>();
  private established = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly host: DialsHost) {}

  /** Resolves once no dial is pending and no connection is open (at once when that is so now). */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Fail every pending dial with `reason` (the server is shutting down) and tell each agent (DIAL_CLS). */
  failAll(reason: KonnectivityError): void {
    for (const dial of this.pending.settleWhere(() => true)) {
      dial.value.via.send(closeDial(dial.random));
      this.fail(dial, reason);
    }
  }

  /** Dials waiting for their DIAL_RSP. */
  get pendingCount(): number {
    return this.pending.size;
  }
  /** Connections handed to frontends and not ended yet. */
  get establishedCount(): number {
    return this.established;
  }

  beginDial(request: FrontendDialRequest, frontend: FrontendKind, timeoutMs: number, callbacks: DialCallbacks): DialHandle | KonnectivityError {
    const { address, random, origin } = request;
    const route = this.pickRoute(address, random, origin);
    if (route instanceof Refusal) {
      this.host.events.emit('dialFailed', { address, frontend, reason: route.reason, error: route.error, dialID: random });
      return route.error;
    }
    const via = route.tunnelForDial();
    this.perRoute.add(route);
    if (origin) this.perOrigin.add(origin);
    const dial = new ServerDial(this, address, origin, route, via, frontend, callbacks);
    dial.entry = this.pending.add(random, dial, timeoutMs > 0 ? timeoutMs : undefined, this.timedOut);
    // At once, in this turn: the transport gathers what a turn writes into one socket write.
    via.send(dialRequest(address, random, request.protocol ?? 'tcp'));
    return dial;
  }

  /** The agent a dial goes to, or why the dial is refused. */
  private pickRoute(address: string, random: bigint, origin: object | undefined): DialRoute | Refusal {
    const { perFrontend, perAgent } = this.host.limits;
    if (!this.host.accepting()) return new Refusal(shuttingDown(), 'shutting_down');
    if (this.pending.has(random)) {
      return new Refusal(new KonnectivityError(ErrorCode.PROTOCOL, `dial ID ${random} is already pending`), 'send_rsp');
    }
    if (origin && this.perOrigin.count(origin) >= perFrontend) {
      return new Refusal(tooManyDials(`too many pending dials on this frontend connection (limit ${perFrontend})`), 'too_many_pending_dials');
    }
    // An agent at its limit is passed over for another that fits; refused only when every one that fits is full.
    const route = this.host.pick(address, this.hasRoom);
    if (route) return route;
    if (this.host.pick(address)) {
      return new Refusal(tooManyDials(`too many pending dials on the agents for ${address} (limit ${perAgent} per agent)`), 'too_many_pending_dials');
    }
    return new Refusal(new KonnectivityError(ErrorCode.NO_AGENT, 'No agent available', { reason: 'endpoint' }), 'no_agent');
  }

  /** An agent route below its pending-dial limit. */
  private readonly hasRoom = (r: DialRoute): boolean => this.perRoute.count(r) < this.host.limits.perAgent;
  /** No DIAL_RSP in time: tell the agent (DIAL_CLS) and fail the dial. */
  private readonly timedOut = (d: PendingDial<ServerDial>): void => {
    d.settle();
    d.value.via.send(closeDial(d.random));
    this.fail(d, DialFailure.timedOut('timed out waiting for backend dial'));
  };

  newDialID(): bigint {
    return this.pending.newDialID();
  }

  connectionEnded(agentID: string, connection: TunnelConnection): void {
    this.established--;
    this.notifyIdle();
    this.host.events.emit('connectionClosed', {
      agentID,
      connectID: connection.connectID,
      bytesFromAgent: connection.bytesReceived,
      bytesToAgent: connection.bytesSent,
    });
  }

  count(segment: FrontendSegment, packet: Packet): void {
    this.host.count(segment, packet);
  }

  // ---- what the agent streams report ----

  /** DIAL_RSP from the agent on `via`. */
  answered(rsp: DialResponse | undefined, via: Tunnel): void {
    const connectID = rsp?.connectID ?? 0n;
    const dial = this.pending.get(rsp?.random ?? 0n);
    if (!dial || dial.value.via !== via) {
      // Too late (the frontend gave up) or never ours: make sure the agent does not keep the connection.
      if (connectID !== 0n && !rsp?.error) via.send(closeRequest(connectID));
      return;
    }
    dial.settle();
    if (rsp?.error) {
      this.fail(dial, DialFailure.refused(rsp.error));
    } else if (connectID === 0n || via.connections.has(connectID)) {
      this.fail(dial, DialFailure.invalid(`agent answered the dial with an invalid connectID ${connectID}`));
      if (connectID !== 0n) via.send(closeRequest(connectID));
    } else {
      this.succeed(dial, via.open(connectID));
    }
  }

  /** DIAL_CLS from the agent on `via`. */
  closedByAgent(random: bigint, via: Tunnel): void {
    const dial = this.pending.get(random);
    if (dial && dial.value.via === via && dial.settle()) this.fail(dial, DialFailure.closed());
  }

  /** The stream under some dials is gone: fail every dial `match` selects with `reason`. */
  failWhere(match: (dial: { route: DialRoute; via: Tunnel }) => boolean, reason: KonnectivityError): void {
    for (const dial of this.pending.settleWhere(match)) this.fail(dial, reason);
  }

  // ---- internals ----

  private succeed(dial: PendingDial<ServerDial>, connection: TunnelConnection): void {
    const { address, route, frontend, callbacks } = dial.value;
    this.established++;
    this.host.events.emit('dialSucceeded', {
      address,
      agentID: route.agentID,
      frontend,
      durationMs: performance.now() - dial.startedAt,
      dialID: dial.random,
      connectionID: connection.connectID,
    });
    callbacks.succeed(connection, route.agentID);
  }

  private fail(dial: PendingDial<ServerDial>, error: KonnectivityError): void {
    const { address, route, via, frontend, callbacks } = dial.value;
    this.host.events.emit('dialFailed', { address, frontend, reason: failureKind(error), error, dialID: dial.random, agentID: route.agentID });
    route.release(via);
    callbacks.fail(error);
    this.notifyIdle();
  }

  private get idle(): boolean {
    return this.pending.size === 0 && this.established === 0;
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0 || !this.idle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** @internal A frontend gave up on `dial` (its handle's `cancel()`). */
  cancel(dial: PendingDial<ServerDial>): void {
    if (!dial.settle()) return;
    const { address, route, via, frontend } = dial.value;
    // The reference drops the dial silently (issue #404); the agent must hear of it.
    via.send(closeDial(dial.random));
    const error = abortError('dial cancelled by the frontend');
    this.host.events.emit('dialFailed', { address, frontend, reason: 'frontend_close', error, dialID: dial.random, agentID: route.agentID });
    route.release(via);
    this.notifyIdle();
  }
}

/** Why a dial was refused before it started. */
class Refusal {
  constructor(
    readonly error: KonnectivityError,
    readonly reason: DialFailureKind,
  ) {}
}

function tooManyDials(message: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.LIMIT_EXCEEDED, message);
}

/** Counts by key; a key at zero is forgotten, so the map holds only keys with pending dials. */
class Tally<K> {
  private readonly counts = new Map<K, number>();
  count(key: K): number {
    return this.counts.get(key) ?? 0;
  }
  add(key: K): void {
    this.counts.set(key, this.count(key) + 1);
  }
  remove(key: K): void {
    const n = this.count(key) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
}

/** The metric reason of a failed dial, from its error code. */
function failureKind(err: KonnectivityError): DialFailureKind {
  switch (err.code) {
    case ErrorCode.DIAL_FAILED:
      return 'error_response';
    case ErrorCode.DIAL_TIMEOUT:
      return 'backend_dial_timeout';
    case ErrorCode.PROTOCOL:
      return 'unrecognized_response';
    case ErrorCode.SHUTTING_DOWN:
      return 'shutting_down';
    default:
      return 'backend_close';
  }
}
