/**
 * What every unit of work receives: cancellation and a logger already bound to the process (graphile's
 * `JobHelpers.abortSignal`). Its own module so that the Chrome client, the CA backends and the workflow can all take
 * it without importing one another's types.
 */
import type { Logger } from './observability/logger.ts';

export interface StepContext {
  /** Aborted on shutdown or when the lease on the process is lost; pass it into every I/O call. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}
