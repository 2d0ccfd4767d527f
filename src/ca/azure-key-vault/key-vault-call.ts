/**
 * One Key Vault call: per-attempt timeout, classification, and the throttling backoff Microsoft prescribes for Key
 * Vault (reference/azure-keyvault.md: on 429 back off 1, 2, 4, 8, 16 s), with the adapter's one jitter rule
 * (src/backoff.ts) so replicas throttled together do not return together.
 *
 * The SDK's own retry policy is switched off (`retryOptions.maxRetries: 0`, see client.ts): it retries
 * 429/503 only when `Retry-After` is present, and knows nothing of our outcome classes or metrics. Here:
 * - 429 with `Retry-After` waits at least that long; without it, the backoff schedule;
 * - 5xx, 408, timeouts and network failures are retried for safe operations only (sign and gets; DESIGN.md §5);
 * - a server asking for more than `maxRetryAfterMs` is not waited for in-call: the RetryableError carries the
 *   delay, and the workflow reschedules the step;
 * - 401/403/404/other 4xx are never retried here (deployment faults).
 *
 * The schedule, the clock and the randomness are injectable, so tests check the real 1–16 s schedule without
 * sleeping through it.
 */
import { backoffDelay } from '../../backoff.ts';
import { RetryableError, type CertprovError } from '../../errors.ts';
import { abortableSleep, type Sleep } from '../../http/abortable-sleep.ts';
import { attemptDeadline } from '../../http/attempt-deadline.ts';
import { isNothingApplied } from '../../http/classify.ts';
import type { Logger } from '../../observability/logger.ts';
import { statusClass, type Metrics } from '../../observability/metrics.ts';
import { classifyKeyVaultError, statusOf } from './errors.ts';
import type { KeyVaultOperation } from './operations.ts';
import type { KeyVaultCaConfig } from './config.ts';

export interface BackoffPolicy {
  /** Attempts per call, the first included. */
  readonly attempts: number;
  /** Backoff before the first retry; doubles per retry. */
  readonly initialDelayMs: number;
  /** Upper bound of one backoff. */
  readonly maxDelayMs: number;
  /** Longest server-requested delay waited for in-call. */
  readonly maxRetryAfterMs: number;
}

/** The call environment of a connection: its vault, retry policy and timeout, plus where to report. */
export function callEnvironmentOf(
  config: Pick<KeyVaultCaConfig, 'retry' | 'requestTimeout'>,
  vaultUrl: string,
  report: Pick<KeyVaultCallEnvironment, 'metrics' | 'log' | 'sleep' | 'random'>,
): KeyVaultCallEnvironment {
  return {
    vaultUrl,
    policy: {
      attempts: config.retry.attempts,
      initialDelayMs: config.retry.initialDelay,
      maxDelayMs: config.retry.maxDelay,
      maxRetryAfterMs: config.retry.maxRetryAfter,
    },
    timeoutMs: config.requestTimeout,
    ...report,
  };
}

export interface KeyVaultCallEnvironment {
  readonly vaultUrl: string;
  readonly policy: BackoffPolicy;
  /** Timeout of one attempt. */
  readonly timeoutMs: number;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Default: a timer. */
  readonly sleep?: Sleep;
  /** Default: Math.random. */
  readonly random?: () => number;
}

export interface KeyVaultCall<T> {
  readonly operation: KeyVaultOperation;
  /** For messages: `certificate issuing-ca version 3f…`. Never personal data. */
  readonly subject: string;
  /** Caller cancellation (shutdown, lost lease). */
  readonly signal: AbortSignal;
  /** The SDK call; pass `abortSignal` through. */
  run(abortSignal: AbortSignal): Promise<T>;
  /**
   * Reads the service's definitive refusals before the generic classification (the `kv-ca` commands turn a 409,
   * 403, 400 or 404 into advice). An error returned here is thrown as is, never retried.
   */
  refusal?(error: unknown): Error | undefined;
}

const API = 'keyvault';

/** Runs `call` with retries; resolves with its result or rejects with a classified {@link CertprovError}. */
export async function callKeyVault<T>(env: KeyVaultCallEnvironment, call: KeyVaultCall<T>): Promise<T> {
  const { policy, metrics, log } = env;
  const sleep = env.sleep ?? abortableSleep;
  const random = env.random ?? Math.random;
  const { operation } = call;
  for (let attempt = 1; ; attempt += 1) {
    call.signal.throwIfAborted();
    const deadline = attemptDeadline(env.timeoutMs, call.signal);
    const started = performance.now();
    let label = 'network';
    let error: CertprovError;
    try {
      const result = await call.run(deadline.signal);
      label = '2xx';
      return result;
    } catch (thrown) {
      // The caller's decision (shutdown, lost lease): not a Key Vault failure.
      if (call.signal.aborted) throw call.signal.reason;
      const status = statusOf(thrown);
      label = status === undefined ? (deadline.timedOut ? 'timeout' : 'network') : statusClass(status);
      const refusal = call.refusal?.(thrown);
      if (refusal !== undefined) throw refusal;
      error = classifyKeyVaultError(thrown, {
        operation,
        vaultUrl: env.vaultUrl,
        subject: call.subject,
        timedOut: deadline.timedOut,
        timeoutMs: env.timeoutMs,
      });
    } finally {
      deadline.dispose();
      if (!call.signal.aborted) {
        metrics.remoteRequests.inc({ api: API, method: operation.name, status_class: label });
        metrics.remoteRequestDuration.observe(
          { api: API, method: operation.name },
          (performance.now() - started) / 1000,
        );
      }
    }
    if (!(error instanceof RetryableError) || attempt >= policy.attempts) throw error;
    if (!operation.safeToRepeat && !isNothingApplied(error)) throw error;
    const serverDelay = error.retryAfterMs;
    if (serverDelay !== undefined && serverDelay > policy.maxRetryAfterMs) throw error;
    // Retry-After is a lower bound (DESIGN.md §5); without it, the 1-2-4-8-16 s schedule.
    const delayMs = backoffDelay(
      { initialMs: policy.initialDelayMs, maxMs: policy.maxDelayMs },
      attempt,
      serverDelay,
      random,
    );
    metrics.retries.inc({ where: API, error_class: error.errorClass });
    log.debug(
      { api: API, operation: operation.name, attempt, delayMs, retryAfterMs: serverDelay },
      `retrying keyvault ${operation.name} after: ${error.message}`,
    );
    await sleep(delayMs, call.signal);
  }
}
