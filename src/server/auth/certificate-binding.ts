/**
 * Tie what an agent claims to its client certificate (issue 11, item 14). Without it, any holder of a valid agent
 * certificate can register under another agent's ID, or advertise another node's identifiers, and carry its
 * traffic (the reference behaves the same). Off by default; needs mTLS on the agent listener.
 */
import type { AgentIdentifiers } from '../../protocol/identifiers.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';

/**
 * What must match the names of the agent's client certificate (subject CN, DNS and IP SANs):
 * - `agentID`: the agent ID is one of them;
 * - `identifiers`: the agent advertises at least one host, IPv4 or IPv6 identifier, and every one is among them
 *   (for agents whose ID is not their node's name, routed with `destHost`).
 */
export type AgentCertificateBinding = 'agentID' | 'identifiers';

/** Every value `agentCertificateBinding` accepts. */
export const AGENT_CERTIFICATE_BINDINGS: readonly AgentCertificateBinding[] = ['agentID', 'identifiers'];

/** Undefined when the agent's claims match its certificate's names; otherwise the ERR_UNAUTHENTICATED to refuse with. */
export function checkCertificateBinding(
  binding: AgentCertificateBinding,
  agent: { agentID: string; identifiers: AgentIdentifiers; certificateNames: readonly string[] },
): KonnectivityError | undefined {
  const names = agent.certificateNames;
  const refuse = (what: string): KonnectivityError =>
    new KonnectivityError(
      ErrorCode.UNAUTHENTICATED,
      names.length === 0
        ? `${what} cannot be checked: no verified client certificate`
        : `${what} does not match the client certificate (names: ${names.join(', ')})`,
    );
  if (binding === 'agentID') return names.includes(agent.agentID) ? undefined : refuse(`agent ID ${JSON.stringify(agent.agentID)}`);
  const claimed = [...(agent.identifiers.host ?? []), ...(agent.identifiers.ipv4 ?? []), ...(agent.identifiers.ipv6 ?? [])];
  if (claimed.length === 0) return refuse('an agent without host or IP identifiers');
  const stray = claimed.filter((c) => !names.includes(c));
  return stray.length === 0 ? undefined : refuse(`identifier ${stray.map((s) => JSON.stringify(s)).join(', ')}`);
}
