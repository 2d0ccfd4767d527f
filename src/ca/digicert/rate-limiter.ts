/**
 * Client-side throttling for one DigiCert API key. DigiCert's Services API "Rate limits" page documents today 100
 * requests per 5 s and 1,000 per 3 minutes per key, both rolling windows (older pages and the reference notes say
 * 5 minutes); over either → 429 `request_limit_exceeded`, no Retry-After; DigiCert asks clients not to burst.
 *
 * - One budget per API key, shared by every replica through {@link CoordinationStore.takeToken} (Firestore with
 *   several replicas). Before the backend is started (check-config, tests) a replica-local store stands in.
 * - Polling gets at most `pollingShare` of each window, through a second, smaller bucket it must pass first: pending
 *   orders can never use up the budget that ordering and downloads need.
 * - At most `maxConcurrent` requests in flight per replica (no bursts).
 * - After a 429 every request of this replica waits: 5 s, doubling up to 60 s while 429s continue.
 *
 * A wait longer than `maxWaitMs` is not taken inside a step: {@link RateBudgetExhaustedError} tells the caller to
 * reschedule (nothing was sent).
 */
import type { Sleep } from '../../http/abortable-sleep.ts';
import { RateBudgetExhaustedError, SharedRateLimiter } from '../../http/shared-rate-limiter.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { CoordinationStore, RateWindow } from '../../store/types.ts';

/** `issue`: orders, reconciliation, downloads, cancels. `poll`: status-changes and per-order status reads. */
export type RequestKind = 'issue' | 'poll';

export interface RateBudget {
  readonly requestsPer5Seconds: number;
  /** DigiCert's long window is 3 minutes (rolling). */
  readonly requestsPer3Minutes: number;
  /** Share (0–1] of both windows polling may use. */
  readonly pollingShare: number;
  readonly maxWaitMs: number;
  readonly maxConcurrent: number;
}

export interface RateLimiterOptions {
  /** Stable, non-secret id of the API key (a hash prefix): the bucket and lease names. */
  readonly keyId: string;
  readonly budget: RateBudget;
  readonly metrics: Metrics;
  /** Default: a replica-local store until {@link DigicertRateLimiter.useStore}. */
  readonly store?: CoordinationStore;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Default: a timer. */
  readonly sleep?: Sleep;
}

const FIVE_SECONDS = 5_000;
/** DigiCert's long window (rate-limits page, current): 3 minutes, rolling. */
const THREE_MINUTES = 180_000;
const PENALTY_INITIAL_MS = 5_000;
const PENALTY_MAX_MS = 60_000;

export { RateBudgetExhaustedError };

/** DigiCert's budget on the shared limiter (src/http/shared-rate-limiter.ts): the same mechanism as the Chrome API's. */
export class DigicertRateLimiter extends SharedRateLimiter {
  readonly keyId: string;

  constructor(options: RateLimiterOptions) {
    const { budget, keyId } = options;
    const windows: RateWindow[] = [
      { limit: budget.requestsPer5Seconds, windowMs: FIVE_SECONDS },
      { limit: budget.requestsPer3Minutes, windowMs: THREE_MINUTES },
    ];
    const pollWindows: RateWindow[] = [
      { limit: Math.max(1, Math.floor(budget.requestsPer5Seconds * budget.pollingShare)), windowMs: FIVE_SECONDS },
      { limit: Math.max(1, Math.floor(budget.requestsPer3Minutes * budget.pollingShare)), windowMs: THREE_MINUTES },
    ];
    super({
      bucket: `digicert:${keyId}`,
      windows,
      kindBuckets: { poll: { bucket: `digicert:${keyId}:polling`, windows: pollWindows } },
      maxConcurrent: budget.maxConcurrent,
      maxWaitMs: budget.maxWaitMs,
      metricPrefix: 'digicert',
      describe: (kind) => `digicert: the ${kind} budget of API key ${keyId}`,
      metrics: options.metrics,
      // DigiCert's 429 carries no Retry-After: 5 s, doubling up to 60 s while 429s continue.
      penaltyInitialMs: PENALTY_INITIAL_MS,
      penaltyMaxMs: PENALTY_MAX_MS,
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    });
    this.keyId = keyId;
  }

  /** The shared bucket name for this API key (all replicas use the same). */
  get bucket(): string {
    return `digicert:${this.keyId}`;
  }

  /** Polling's own, smaller bucket. */
  get pollBucket(): string {
    return `digicert:${this.keyId}:polling`;
  }

  override acquire(kind: RequestKind, signal?: AbortSignal): Promise<() => void> {
    return super.acquire(kind, signal);
  }
}
