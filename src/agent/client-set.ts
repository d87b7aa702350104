/**
 * `ServerTunnels`: an agent's tunnels to every proxy server, kept open (the reference's ClientSet, PROTOCOL.md §4).
 * `Agent.connect()` opens one tunnel and never reconnects; this is what keeps an agent connected.
 *
 * Two ways to find servers:
 * - one address behind a load balancer (`connector`): every attempt opens a new connection, so the balancer may
 *   land it on another server; the set keeps one tunnel per distinct `serverid` until it holds `servercount` of
 *   them (or, with `syncForever`, keeps dialling to discover new servers);
 * - a list of server addresses (`connectors`): one tunnel through each, redialled when lost.
 * A tunnel that lands on a server already held is a duplicate and is closed at once. Failures back off from
 * `syncIntervalMs` to `syncIntervalCapMs` (factor 1.5, +10 % jitter). `drain()` sends DRAIN on every tunnel and stops
 * dialling; the tunnels keep serving until they end.
 *
 * Kept whole: one state machine, a little over 400 lines, whose parts (the two loops, an attempt, the held tunnels,
 * the probe and the three ways to stop) share one `stop` signal and one `held` map; it reads better in one file.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { abortError } from '../protocol/abort.js';
import { checkNumber, type NumberRule } from '../protocol/options.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { rejectBadGrace, type CloseOptions } from '../transport/grace.js';
import type { TunnelConnector } from '../transport/packet-stream.js';
import { Backoff } from './backoff.js';

/** What the set needs from one of the agent's tunnels (the Agent's `AgentTunnel` fits). */
export interface ClientSetTunnel {
  /** The server's `serverid` response header; a tunnel without one is refused. */
  readonly serverID: string | undefined;
  /** The server's `servercount` response header. */
  readonly serverCount: number;
  /** Settles when the tunnel has ended, with its error if it failed. */
  readonly done: Promise<Error | undefined>;
  /** False once the connection under the tunnel cannot carry new work; the probe then retires the tunnel. */
  readonly transportReady?: boolean;
  /** End the tunnel; destroy it if the server has not ended it within the grace period. */
  close(options?: CloseOptions): Promise<void>;
  /** Tear the tunnel down at once. */
  destroy(err?: Error): void;
}

/** What the set needs from the agent (the `Agent` class fits). */
export interface ClientSetAgent<T extends ClientSetTunnel = ClientSetTunnel> {
  /** Open one tunnel through `connector` and serve it. */
  connect(connector: TunnelConnector, options?: { signal?: AbortSignal }): Promise<T>;
  /** Send DRAIN on every tunnel. */
  drain(): void;
}

/** Options for {@link ServerTunnels}. Give exactly one of `connector` and `connectors`. */
export interface ServerTunnelsOptions {
  /** One server address, normally a load balancer in front of several servers: a new connection per attempt. */
  connector?: TunnelConnector;
  /** Server-list mode: one tunnel through each connector. */
  connectors?: readonly TunnelConnector[];
  /** Wait between sync attempts and the first retry delay, in ms (`--sync-interval`, default 1000). */
  syncIntervalMs?: number;
  /** The largest retry delay, in ms (`--sync-interval-cap`, default 10000). */
  syncIntervalCapMs?: number;
  /** Keep dialling through the load balancer even with `servercount` tunnels, to find new servers (default false). */
  syncForever?: boolean;
  /** How long one attempt may take to open a tunnel, in ms (default 30000). */
  connectTimeoutMs?: number;
  /**
   * How often each tunnel's connection is checked, in ms (`--probe-interval`, default 1000). A tunnel whose
   * connection is no longer ready (closed, or told to go away) is closed, and the set dials again.
   */
  probeIntervalMs?: number;
  /**
   * The number of servers to hold tunnels to, given the last `servercount` received from a new server (0 before
   * any); default: that count. Lease counting plugs in here (`--count-server-leases`, `--server-count-source`);
   * call `recount()` when its answer changes.
   */
  serverCount?: (fromResponses: number) => number;
  /** Aborting it closes the set, as `close()` does. */
  signal?: AbortSignal;
  /** Randomness for jitter, in [0, 1) (default Math.random). */
  random?: () => number;
}

/** Events of {@link ServerTunnels}. */
export interface ServerTunnelsEvents<T extends ClientSetTunnel> {
  /** A tunnel to a new server was added. */
  tunnelAdded: [tunnel: T];
  /** A tunnel of the set ended; `err` is why, if it failed. */
  tunnelRemoved: [tunnel: T, err: Error | undefined];
  /** An attempt reached a server the set already holds; the new tunnel was closed. The next try is in `retryInMs`. */
  duplicate: [serverID: string, retryInMs: number];
  /** An attempt failed; the next one is in `retryInMs`. */
  connectFailed: [err: Error, retryInMs: number];
  /** Readiness changed: true once a tunnel is up, false when the last one ends. */
  readyChange: [ready: boolean];
  /** The probe found a tunnel whose connection is not ready any more and closed it. */
  probeFailed: [tunnel: T];
}

type Attempt<T> =
  | { kind: 'added'; tunnel: T; removed: Promise<void> }
  | { kind: 'duplicate'; serverID: string }
  | { kind: 'error'; error: Error }
  | { kind: 'stopped' };

const DEFAULTS = { syncIntervalMs: 1000, syncIntervalCapMs: 10_000, connectTimeoutMs: 30_000, probeIntervalMs: 1000 };

/**
 * Keeps an agent's tunnels to every server (see the module comment). `start()` begins dialling; `ready` is true
 * while at least one tunnel is up.
 */
export class ServerTunnels<T extends ClientSetTunnel = ClientSetTunnel> extends EventEmitter<ServerTunnelsEvents<T>> {
  /** Wait between sync attempts and the first retry delay, in ms. */
  readonly syncIntervalMs: number;
  /** The largest retry delay, in ms. */
  readonly syncIntervalCapMs: number;
  /** Keep dialling through a load balancer after `servercount` tunnels are held, to find new servers. */
  readonly syncForever: boolean;
  /** How long one attempt may take to open a tunnel, in ms. */
  readonly connectTimeoutMs: number;
  /** How often each tunnel's connection is checked, in ms. */
  readonly probeIntervalMs: number;

  private probeTimer: NodeJS.Timeout | undefined;
  private readonly agent: ClientSetAgent<T>;
  private readonly connector: TunnelConnector | undefined;
  private readonly connectors: readonly TunnelConnector[] | undefined;
  private readonly random: () => number;
  private readonly held = new Map<string, T>();
  /** Aborted on drain, close and destroy: stops every loop, sleep and attempt in flight. */
  private readonly stop = new AbortController();
  private changeWaiters: Array<() => void> = [];
  private loops: Promise<void>[] = [];
  private state: 'idle' | 'running' | 'draining' | 'closed' = 'idle';
  private drained = false;
  private lastReceivedServerCount = 0;
  private readonly countServers: (fromResponses: number) => number;
  private closing: Promise<void> | undefined;

  constructor(agent: ClientSetAgent<T>, options: ServerTunnelsOptions) {
    super();
    const { connector, connectors } = options;
    if ((connector === undefined) === (connectors === undefined)) {
      throw invalidOption('give exactly one of connector and connectors');
    }
    if (connectors !== undefined && (connectors.length === 0 || connectors.some((c) => typeof c !== 'function'))) {
      throw invalidOption('connectors must be a non-empty list of functions');
    }
    if (connector !== undefined && typeof connector !== 'function') throw invalidOption('connector must be a function');
    this.agent = agent;
    this.connector = connector;
    this.connectors = connectors;
    const check = (name: string, value: number, rule: NumberRule): number => checkNumber(`ServerTunnels: ${name}`, value, rule);
    this.syncIntervalMs = check('syncIntervalMs', options.syncIntervalMs ?? DEFAULTS.syncIntervalMs, { min: 0 });
    // The cap's lower bound is the interval: a cap below it would never be reached.
    this.syncIntervalCapMs = check('syncIntervalCapMs', options.syncIntervalCapMs ?? DEFAULTS.syncIntervalCapMs, { min: this.syncIntervalMs });
    this.connectTimeoutMs = check('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, { above: 0 });
    this.probeIntervalMs = check('probeIntervalMs', options.probeIntervalMs ?? DEFAULTS.probeIntervalMs, { above: 0 });
    this.syncForever = options.syncForever ?? false;
    this.random = options.random ?? Math.random;
    this.countServers = options.serverCount ?? ((n) => n);
    this.stop.signal.addEventListener('abort', () => this.notifyChange(), { once: true });
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) void this.close();
      else signal.addEventListener('abort', () => void this.close(), { once: true, signal: this.stop.signal });
    }
  }

  /** True while at least one tunnel is up (agent readiness). */
  get ready(): boolean {
    return this.held.size > 0;
  }

  /** True once `drain()` was called. */
  get draining(): boolean {
    return this.drained;
  }

  /** The tunnels held, one per server. */
  get tunnels(): T[] {
    return [...this.held.values()];
  }

  /** The server IDs the set holds a tunnel to. */
  get serverIDs(): string[] {
    return [...this.held.keys()];
  }

  /** The server count in use: the last `servercount` received from a new server (0 before any), or the `serverCount` option's. */
  get serverCount(): number {
    return this.countServers(this.lastReceivedServerCount);
  }

  /** The `serverCount` option's answer may have changed: a sync loop that holds enough tunnels looks again. */
  recount(): void {
    this.notifyChange();
  }

  /** Begin dialling (idempotent). */
  start(): this {
    if (this.state !== 'idle') return this;
    this.state = 'running';
    if (this.connector) this.loops.push(this.guard(this.syncLoop(this.connector)));
    else for (const c of this.connectors!) this.loops.push(this.guard(this.serverLoop(c)));
    this.probeTimer = setInterval(() => this.probe(), this.probeIntervalMs).unref();
    return this;
  }

  /** The reference's probe: retire tunnels whose connection is not ready; the loops then dial again. */
  private probe(): void {
    for (const t of this.held.values()) {
      if (t.transportReady !== false) continue;
      this.emit('probeFailed', t);
      t.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `probe: the connection to server ${t.serverID} is not ready`));
    }
  }

  /** Resolve once a tunnel is up; reject when the set closes or `signal` aborts first. */
  whenReady(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal;
      const cleanup = (): void => {
        this.off('readyChange', onChange);
        signal?.removeEventListener('abort', onAbort);
        this.stop.signal.removeEventListener('abort', onStop);
      };
      const onChange = (ready: boolean): void => {
        if (!ready) return;
        cleanup();
        resolve();
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortError('aborted waiting for a tunnel', signal));
      };
      // Draining also stops dialling: no tunnel will come.
      const onStop = (): void => {
        cleanup();
        reject(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the agent client set stopped before a tunnel came up'));
      };
      if (signal?.aborted) return onAbort();
      if (this.stop.signal.aborted) return onStop();
      this.on('readyChange', onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.stop.signal.addEventListener('abort', onStop, { once: true });
    });
  }

  /** Send DRAIN on every tunnel and stop dialling; the tunnels keep serving (idempotent). */
  drain(): void {
    if (this.state === 'draining' || this.state === 'closed') return;
    this.state = 'draining';
    this.drained = true;
    this.stop.abort(shuttingDown('draining'));
    this.agent.drain();
  }

  /**
   * Stop dialling and close every tunnel of the set (each tunnel's `close(options)`: destroyed if its server has
   * not ended it `graceMs` later, default 5000 for the agent's tunnels, or when `signal` aborts). Resolves once the
   * tunnels are gone and the loops have stopped. Idempotent. The agent itself stays open.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (!this.closing) {
      const bad = rejectBadGrace(options, 0);
      if (bad) return bad;
      clearInterval(this.probeTimer);
      this.state = 'closed';
      this.stop.abort(shuttingDown('closed'));
      const tunnels = this.tunnels;
      this.closing = Promise.allSettled([...tunnels.map((t) => t.close(options)), ...this.loops]).then(() => undefined);
    }
    return this.closing;
  }

  /** Stop dialling and destroy every tunnel of the set at once (idempotent). */
  destroy(err?: Error): void {
    clearInterval(this.probeTimer);
    this.state = 'closed';
    this.stop.abort(err ?? shuttingDown('destroyed'));
    for (const t of this.tunnels) t.destroy(err);
    this.closing ??= Promise.allSettled(this.loops).then(() => undefined);
  }

  // ---- the loops ----------------------------------------------------------------------------------------------

  /** Load-balancer mode (the reference's `sync`/`connectOnce`). */
  private async syncLoop(connector: TunnelConnector): Promise<void> {
    const backoff = this.newBackoff();
    while (!this.stopped) {
      const serverCount = this.serverCount;
      const full = (): boolean => serverCount > 0 && this.held.size >= serverCount;
      if (!this.syncForever && full()) {
        // Nothing changes the count but a lost tunnel; wait for one instead of polling.
        await this.nextChange();
        await this.pause(backoff.interval());
        continue;
      }
      const attempt = await this.attempt(connector);
      let delay: number;
      if (attempt.kind === 'stopped') return;
      if (attempt.kind === 'added') {
        this.lastReceivedServerCount = attempt.tunnel.serverCount;
        backoff.reset();
        delay = backoff.interval();
      } else if (attempt.kind === 'duplicate' && !full()) {
        // Landing on a known server while some are missing is luck, not failure: retry at the plain interval.
        backoff.reset();
        delay = backoff.interval();
      } else {
        delay = backoff.next();
      }
      this.report(attempt, delay);
      await this.pause(delay);
    }
  }

  /** Server-list mode: keep one tunnel through `connector`. */
  private async serverLoop(connector: TunnelConnector): Promise<void> {
    const backoff = this.newBackoff();
    while (!this.stopped) {
      const attempt = await this.attempt(connector);
      let delay: number;
      if (attempt.kind === 'stopped') return;
      if (attempt.kind === 'added') {
        backoff.reset();
        await this.untilRemoved(attempt.removed);
        delay = backoff.interval();
      } else {
        delay = backoff.next();
      }
      this.report(attempt, delay);
      await this.pause(delay);
    }
  }

  /** One attempt to open a tunnel; adds it to the set or closes it as a duplicate. */
  private async attempt(connector: TunnelConnector): Promise<Attempt<T>> {
    const ac = new AbortController();
    const onStop = (): void => ac.abort(this.stop.signal.reason);
    this.stop.signal.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(
      () => ac.abort(new KonnectivityError(ErrorCode.DIAL_TIMEOUT, `no tunnel after ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    );
    timer.unref();
    let tunnel: T;
    try {
      tunnel = await this.agent.connect(connector, { signal: ac.signal });
    } catch (err) {
      if (this.stopped) return { kind: 'stopped' };
      return { kind: 'error', error: ac.signal.aborted ? asError(ac.signal.reason) : asError(err) };
    } finally {
      clearTimeout(timer);
      this.stop.signal.removeEventListener('abort', onStop);
    }
    if (this.stopped) {
      // Drain or close came while the tunnel opened: it would never hear DRAIN, so do not keep it.
      tunnel.destroy();
      return { kind: 'stopped' };
    }
    const serverID = tunnel.serverID;
    if (serverID === undefined || serverID === '') {
      tunnel.destroy();
      return { kind: 'error', error: new KonnectivityError(ErrorCode.PROTOCOL, 'the server sent no serverid') };
    }
    if (this.held.has(serverID)) {
      tunnel.destroy();
      return { kind: 'duplicate', serverID };
    }
    const removed = this.hold(serverID, tunnel);
    return { kind: 'added', tunnel, removed };
  }

  /** Add a tunnel and watch for its end. */
  private hold(serverID: string, tunnel: T): Promise<void> {
    const removed = tunnel.done.then(
      (err) => this.release(serverID, tunnel, err),
      (err: unknown) => this.release(serverID, tunnel, asError(err)),
    );
    this.held.set(serverID, tunnel);
    this.emit('tunnelAdded', tunnel);
    if (this.held.size === 1) this.emit('readyChange', true);
    return removed;
  }

  private release(serverID: string, tunnel: T, err: Error | undefined): void {
    if (this.held.get(serverID) !== tunnel) return;
    this.held.delete(serverID);
    this.emit('tunnelRemoved', tunnel, err);
    if (this.held.size === 0) this.emit('readyChange', false);
    this.notifyChange();
  }

  private report(attempt: Attempt<T>, delay: number): void {
    if (attempt.kind === 'duplicate') this.emit('duplicate', attempt.serverID, delay);
    else if (attempt.kind === 'error') this.emit('connectFailed', attempt.error, delay);
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  private get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  private newBackoff(): Backoff {
    return new Backoff({ initialMs: this.syncIntervalMs, capMs: this.syncIntervalCapMs, random: this.random });
  }

  /** Sleep `ms` (unref'd), waking early when the set stops. */
  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    await sleep(ms, undefined, { ref: false, signal: this.stop.signal }).catch(() => undefined);
  }

  /** Resolves when `removed` does or the set stops; leaves no listener behind (a tunnel may live for months). */
  private untilRemoved(removed: Promise<void>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const signal = this.stop.signal;
      const onStop = (): void => resolve();
      signal.addEventListener('abort', onStop, { once: true });
      void removed.then(() => {
        signal.removeEventListener('abort', onStop);
        resolve();
      });
    });
  }

  /** Resolves when a tunnel is removed or the set stops. */
  private nextChange(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => this.changeWaiters.push(resolve));
  }

  private notifyChange(): void {
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const w of waiters) w();
  }

  /** A loop must never reject unobserved: a bug in it destroys the set with the error. */
  private guard(loop: Promise<void>): Promise<void> {
    return loop.catch((err: unknown) => this.destroy(asError(err)));
  }
}

function invalidOption(message: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.INVALID_OPTION, `ServerTunnels: ${message}`);
}

function shuttingDown(what: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.SHUTTING_DOWN, `agent client set ${what}`);
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The former name of {@link ServerTunnels}, kept as an alias: the same class (`new AgentClientSet(...)` and
 * `instanceof` work), named after the reference's ClientSet.
 */
export const AgentClientSet = ServerTunnels;
/** The former name of {@link ServerTunnels}, kept as an alias. */
export type AgentClientSet<T extends ClientSetTunnel = ClientSetTunnel> = ServerTunnels<T>;
/** The former name of {@link ServerTunnelsOptions}, kept as an alias. */
export type AgentClientSetOptions = ServerTunnelsOptions;
/** The former name of {@link ServerTunnelsEvents}, kept as an alias. */
export type AgentClientSetEvents<T extends ClientSetTunnel> = ServerTunnelsEvents<T>;
