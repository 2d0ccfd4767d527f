/**
 * Retry delays: exponential with "equal jitter" (half fixed, half random) so replicas that failed together do not
 * retry together, and never shorter than what the server asked for (Retry-After).
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Delay before attempt `attempt + 1` (attempt counts from 1). `random` is injectable for tests. */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  retryAfterMs?: number,
  random = Math.random,
): number {
  const exponential = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exponential / 2 + random() * (exponential / 2);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}

/**
 * How long to wait before looking for the device signature again: short at first (a device that is online signs
 * within seconds), growing to `maxMs` (the device asks for instructions every 30 s), proportional to the time
 * already waited.
 */
export function signaturePollDelay(policy: BackoffPolicy, waitedMs: number): number {
  return Math.round(Math.min(policy.maxMs, Math.max(policy.initialMs, waitedMs / 4)));
}
