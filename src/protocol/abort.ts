/** The one ERR_ABORTED error, for every wait that a caller's signal (or its owner's shutdown) cuts short. Pure. */
import { ErrorCode, KonnectivityError } from './errors.js';

/** ERR_ABORTED with the client reason `context` (konnectivity-client's), caused by `signal.reason` when given. */
export function abortError(message: string, signal?: AbortSignal): KonnectivityError {
  return new KonnectivityError(ErrorCode.ABORTED, message, { reason: 'context', cause: signal?.reason });
}
