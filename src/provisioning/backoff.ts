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
 * How long to wait before looking for the device signature again, given how long the device has had since signData:
 * `initialMs` for the first check (most devices answer within a fraction of a second), then as long as already waited
 * — the checks come at initial × 1, 2, 4, 8 … — up to `maxMs` (a device with its lid closed signs hours later).
 * Requests therefore grow with the logarithm of the wait, then linearly at one per `maxMs`: with 200 ms and 15 min,
 * 6 checks for a device that signs within 5 s, 45 for one that signs after 8 hours.
 */
export function signaturePollDelay(policy: BackoffPolicy, waitedMs: number): number {
  return Math.round(Math.min(policy.maxMs, Math.max(policy.initialMs, waitedMs)));
}
