/**
 * Agent identifiers, carried in the `agentidentifiers` metadata as a URL query string
 * (`host=node1&ipv4=10.0.0.5&cidr=10.0.0.0/16&default-route=true`). Pure.
 */
export interface AgentIdentifiers {
  /** IPv4 addresses the agent reaches (`destHost` strategy). */
  ipv4?: string[];
  /** IPv6 addresses the agent reaches (`destHost` strategy). */
  ipv6?: string[];
  /** Host names the agent reaches (`destHost` strategy). */
  host?: string[];
  /** CIDR ranges the agent reaches. */
  cidr?: string[];
  /** Advertises that this agent can reach any address (the `defaultRoute` strategy). */
  defaultRoute?: boolean;
}

/** The identifier keys an agent may advertise (the reference agent's flag validation accepts exactly these). */
export const IDENTIFIER_KEYS = ['ipv4', 'ipv6', 'host', 'cidr', 'default-route'] as const;

/** Encode identifiers as the URL query string the reference agent sends (empty string when there are none). */
export function encodeAgentIdentifiers(ids: AgentIdentifiers = {}): string {
  const q = new URLSearchParams();
  for (const key of ['ipv4', 'ipv6', 'host', 'cidr'] as const) for (const v of ids[key] ?? []) q.append(key, v);
  if (ids.defaultRoute) q.append('default-route', 'true');
  return q.toString();
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** Parse the `agentidentifiers` value as the reference server does: unknown keys are ignored (fail open). */
export function parseAgentIdentifiers(value: string | undefined): AgentIdentifiers {
  const ids: AgentIdentifiers = {};
  if (!value) return ids;
  const q = new URLSearchParams(value);
  for (const key of ['ipv4', 'ipv6', 'host', 'cidr'] as const) {
    const all = q.getAll(key).filter((v) => v.length > 0);
    if (all.length) ids[key] = all;
  }
  const dr = q.getAll('default-route')[0];
  if (dr !== undefined && parseGoBool(dr)) ids.defaultRoute = true;
  return ids;
}

/**
 * Parse the agent's `--agent-identifiers` flag form (same query syntax) and refuse what the reference agent's
 * validation refuses, with its words: an unknown key (`unknown address type: uid`) or a `default-route` that is not
 * a Go bool. Throws an Error.
 */
export function parseAgentIdentifiersFlag(value: string): AgentIdentifiers {
  for (const [key, v] of new URLSearchParams(value)) {
    if (!(IDENTIFIER_KEYS as readonly string[]).includes(key)) throw new Error(`unknown address type: ${key}`);
    if (key === 'default-route' && parseGoBool(v) === undefined) throw new Error(`invalid default-route value "${v}"`);
  }
  return parseAgentIdentifiers(value);
}
