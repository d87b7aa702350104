/**
 * Agent authentication: what an `authenticateAgent` hook is shown of an agent stream before it is accepted, and how
 * its verdict becomes the stream's refusal.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import type { AgentIdentifiers } from '../../protocol/identifiers.js';
import type { Metadata } from '../../transport/packet-stream.js';

/** What an agent presented. */
export interface AgentAuthContext {
  /** The agent's `agentid`. */
  agentID: string;
  /** The agent's `agentidentifiers`, parsed. */
  identifiers: AgentIdentifiers;
  /** The stream's request metadata (`authorization`, ...). */
  metadata: Metadata;
  /** Where the stream comes from. */
  remoteAddress: string;
  /** The verified TLS client certificate's common name, with mTLS. */
  peerCommonName?: string | undefined;
}

/** Checks an agent before it is accepted; throw (ideally ERR_UNAUTHENTICATED) to refuse it. */
export type AgentAuthenticator = (ctx: AgentAuthContext) => void | Promise<void>;

/**
 * Run `authenticate`. Resolves with undefined when the agent is admitted, otherwise with the refusal: the hook's own
 * KonnectivityError, or ERR_UNAUTHENTICATED naming the agent and the hook's reason.
 */
export async function checkAgent(authenticate: AgentAuthenticator, ctx: AgentAuthContext): Promise<KonnectivityError | undefined> {
  try {
    await authenticate(ctx);
    return undefined;
  } catch (err) {
    return err instanceof KonnectivityError
      ? err
      : new KonnectivityError(ErrorCode.UNAUTHENTICATED, `agent ${ctx.agentID} refused: ${(err as Error).message}`, { cause: err });
  }
}
