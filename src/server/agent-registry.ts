/**
 * Connected agents and the selection strategies of `--proxy-strategies` (PROTOCOL.md §5).
 *
 * Agents are keyed by agentID; one agent may hold several streams (the first live one is used). Strategies are
 * tried in the configured order; draining agents are used only when no strategy finds another.
 */
import type { AgentIdentifiers } from '../protocol/identifiers.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { splitHostPort } from '../protocol/address.js';

/** The agent-selection strategies (`--proxy-strategies`). */
export const AGENT_STRATEGIES = ['default', 'destHost', 'defaultRoute'] as const;
/**
 * One agent-selection strategy: `default` (any agent), `destHost` (an agent that names the host), `defaultRoute` (an
 * agent that says it routes everything).
 */
export type AgentStrategy = (typeof AGENT_STRATEGIES)[number];

/** Parse the `--proxy-strategies` value (comma separated, ordered); empty or unknown names are rejected. */
export function parseStrategies(value: string): AgentStrategy[] {
  const names = value.split(',').map((s) => s.trim());
  if (names.length === 0 || names.some((n) => n === '')) {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, `proxy strategies must not be empty: ${JSON.stringify(value)}`);
  }
  for (const n of names) {
    if (!(AGENT_STRATEGIES as readonly string[]).includes(n)) {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `unknown proxy strategy ${JSON.stringify(n)}: expected ${AGENT_STRATEGIES.join(', ')}`);
    }
  }
  return names as AgentStrategy[];
}

/** What the registry needs to know of an agent stream. */
export interface RegisteredBackend {
  readonly agentID: string;
  readonly identifiers: AgentIdentifiers;
  readonly draining: boolean;
}

/** The connected agent streams, by agentID, and the strategies that pick one for a dial. */
export class AgentRegistry<B extends RegisteredBackend> {
  private readonly byAgent = new Map<string, B[]>();
  /** The same lists in an array, so that a dial picks without copying the map (agents come and go rarely). */
  private readonly lists: B[][] = [];

  /** Register an agent stream (an agent may have several, one per server connection). */
  add(backend: B): void {
    const list = this.byAgent.get(backend.agentID);
    if (list) {
      list.push(backend);
      return;
    }
    const fresh = [backend];
    this.byAgent.set(backend.agentID, fresh);
    this.lists.push(fresh);
  }

  /** Remove a stream; returns true when it was the agent's last one. */
  remove(backend: B): boolean {
    const list = this.byAgent.get(backend.agentID);
    if (!list) return false;
    const i = list.indexOf(backend);
    if (i >= 0) list.splice(i, 1);
    if (list.length > 0) return false;
    this.byAgent.delete(backend.agentID);
    this.lists.splice(this.lists.indexOf(list), 1);
    return true;
  }

  /** Distinct agentIDs with at least one stream. */
  get size(): number {
    return this.byAgent.size;
  }

  /** Every registered agent stream. */
  backends(): B[] {
    return [...this.byAgent.values()].flat();
  }

  /** Pick the stream for a dial to `address` among those `accept` takes (all by default), or undefined when none fits. */
  pick(address: string, strategies: readonly AgentStrategy[], accept: (b: B) => boolean = always): B | undefined {
    for (let draining = 0; draining < 2; draining++) {
      for (const s of strategies) {
        const b = this.pickWith(s, address, draining === 1, accept);
        if (b) return b;
      }
    }
    return undefined;
  }

  private pickWith(strategy: AgentStrategy, address: string, allowDraining: boolean, accept: (b: B) => boolean): B | undefined {
    const lists = this.lists;
    if (strategy === 'destHost') {
      const host = hostOf(address);
      for (const list of lists) {
        const b = usable(list, allowDraining, accept);
        if (b && advertises(b.identifiers, host)) return b;
      }
      return undefined;
    }
    if (lists.length === 0) return undefined;
    // Start at a random agent, as the reference does, and take the first usable one round the list.
    const start = Math.floor(Math.random() * lists.length);
    for (let i = 0; i < lists.length; i++) {
      const list = lists[(start + i) % lists.length]!;
      const b = usable(list, allowDraining, accept);
      if (!b) continue;
      if (strategy === 'defaultRoute' && !b.identifiers.defaultRoute) continue;
      return b;
    }
    return undefined;
  }
}

function usable<B extends RegisteredBackend>(list: readonly B[], allowDraining: boolean, accept: (b: B) => boolean): B | undefined {
  for (const b of list) if (!b.draining && accept(b)) return b;
  return allowDraining ? list.find(accept) : undefined;
}

const always = (): boolean => true;

function advertises(ids: AgentIdentifiers, host: string): boolean {
  return !!(ids.host?.includes(host) || ids.ipv4?.includes(host) || ids.ipv6?.includes(host));
}

/** The host of `host:port` / `[v6]:port`, brackets removed; an address without a port is its own host. */
export function hostOf(address: string): string {
  return splitHostPort(address).host;
}
