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
import { RetryableError } from '../../errors.ts';
import { markNothingApplied } from '../../http/classify.ts';
import { abortableSleep, type Sleep } from '../../http/abortable-sleep.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { MemoryProcessStore } from '../../store/memory.ts';
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

/** The budget had no room within `maxWait`; nothing was sent. */
export class RateBudgetExhaustedError extends RetryableError {}

export class DigicertRateLimiter {
  readonly keyId: string;
  private readonly options: RateLimiterOptions;
  private readonly windows: readonly RateWindow[];
  private readonly pollWindows: readonly RateWindow[];
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private store: CoordinationStore;
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];
  private penaltyUntil = 0;
  private penaltyMs = 0;

  constructor(options: RateLimiterOptions) {
    this.options = options;
    this.keyId = options.keyId;
    const { budget } = options;
    this.windows = [
      { limit: budget.requestsPer5Seconds, windowMs: FIVE_SECONDS },
      { limit: budget.requestsPer3Minutes, windowMs: THREE_MINUTES },
    ];
    this.pollWindows = [
      { limit: Math.max(1, Math.floor(budget.requestsPer5Seconds * budget.pollingShare)), windowMs: FIVE_SECONDS },
      { limit: Math.max(1, Math.floor(budget.requestsPer3Minutes * budget.pollingShare)), windowMs: THREE_MINUTES },
    ];
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
    this.store = options.store ?? new MemoryProcessStore({ now: this.now });
  }

  /** The shared bucket name for this API key (all replicas use the same). */
  get bucket(): string {
    return `digicert:${this.keyId}`;
  }

  /** Polling's own, smaller bucket. */
  get pollBucket(): string {
    return `digicert:${this.keyId}:polling`;
  }

  /** Switches to the shared budget of the process store (called when the backend starts). */
  useStore(store: CoordinationStore): void {
    this.store = store;
  }

  /**
   * Waits for a concurrency slot and a token of the budget; returns the function that releases the slot (call it
   * when the response is in). Records the wait in `certprov_rate_limiter_wait_seconds{bucket="digicert_<kind>"}`.
   * @throws RateBudgetExhaustedError when the wait would exceed `maxWaitMs` (nothing taken, nothing sent).
   */
  async acquire(kind: RequestKind, signal?: AbortSignal): Promise<() => void> {
    const started = this.now();
    await this.slot(signal);
    try {
      await this.token(kind, started, signal);
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
    this.options.metrics.rateLimiterWait.observe({ bucket: `digicert_${kind}` }, (this.now() - started) / 1000);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.releaseSlot();
    };
  }

  /** DigiCert answered 429: hold every request of this replica back, longer while it keeps happening. */
  rateLimited(): void {
    this.penaltyMs = Math.min(PENALTY_MAX_MS, Math.max(PENALTY_INITIAL_MS, this.penaltyMs * 2));
    this.penaltyUntil = Math.max(this.penaltyUntil, this.now() + this.penaltyMs);
  }

  /** A request went through: the next 429 starts the backoff from the beginning. */
  succeeded(): void {
    this.penaltyMs = 0;
  }

  /** Milliseconds until the 429 backoff ends (0 when none). */
  get backoffRemainingMs(): number {
    return Math.max(0, this.penaltyUntil - this.now());
  }

  private async token(kind: RequestKind, started: number, signal: AbortSignal | undefined): Promise<void> {
    let pollTokenHeld = kind !== 'poll';
    for (;;) {
      signal?.throwIfAborted();
      let wait = this.backoffRemainingMs;
      if (wait === 0 && !pollTokenHeld) {
        // Polling passes its own bucket first: a denied poll costs the shared budget nothing.
        wait = await this.store.takeToken(this.pollBucket, this.pollWindows);
        if (wait === 0) pollTokenHeld = true;
      }
      if (wait === 0) {
        wait = await this.store.takeToken(this.bucket, this.windows);
        if (wait === 0) return;
      }
      const waited = this.now() - started;
      if (waited + wait > this.options.budget.maxWaitMs) {
        throw markNothingApplied(
          new RateBudgetExhaustedError(
            `digicert: the ${kind} budget of API key ${this.keyId} has no room for ${Math.ceil(wait / 1000)} s (client-side limit; nothing sent)`,
            { retryAfterMs: wait },
          ),
        );
      }
      // A little jitter, so replicas that were refused together do not all come back in the same millisecond.
      await this.sleep(wait + Math.floor(Math.random() * 50), signal);
    }
  }

  private async slot(signal: AbortSignal | undefined): Promise<void> {
    if (this.inFlight < this.options.budget.maxConcurrent) {
      this.inFlight += 1;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        this.inFlight += 1;
        resolve();
      };
      const onAbort = () => {
        const index = this.queue.indexOf(grant);
        if (index >= 0) this.queue.splice(index, 1);
        reject(signal?.reason as Error);
      };
      if (signal?.aborted === true) {
        reject(signal.reason as Error);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(grant);
    });
  }

  private releaseSlot(): void {
    this.inFlight -= 1;
    this.queue.shift()?.();
  }
}
