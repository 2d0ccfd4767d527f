/**
 * Retry delays, one rule for every retry loop in the adapter (the engine's step retries, the HTTP client, Key Vault,
 * DigiCert): the schedule `initial × 2^(retry-1)` capped at `max`, each delay drawn within ±20 % of it so replicas
 * that failed together do not retry together, never above `max`, and never shorter than what the server asked for
 * (Retry-After). ±20 % keeps a schedule a provider prescribes recognisable (Key Vault: 1, 2, 4, 8, 16 s;
 * reference/azure-keyvault.md).
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** How far a delay may stray from the schedule, either way. */
export const BACKOFF_JITTER = 0.2;

/** Delay before retry number `retry` (1 for the first retry). `random` returns [0, 1) and is injectable for tests. */
export function backoffDelay(
  policy: BackoffPolicy,
  retry: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const scheduled = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, retry - 1));
  const jittered = Math.min(policy.maxMs, scheduled * (1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random()));
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
