/**
 * A client-side request budget shared by every replica of a deployment, for an API whose quota belongs to a key or a
 * project rather than to one pod (DigiCert per API key, the Chrome Management API per Google Cloud project):
 *
 * - Tokens come from sliding windows kept in the process store ({@link CoordinationStore.takeToken}; with Firestore a
 *   batched reservation per replica, src/store/rate-reservations.ts), so the replica set as a whole stays inside them.
 *   Before the store is handed over (check-config, tests) a replica-local store stands in.
 * - A kind of request may have its own, smaller budget it must pass first (e.g. DigiCert polling gets a share), so
 *   that kind can never use up what the others need.
 * - At most `maxConcurrent` requests in flight per replica (no bursts).
 * - After a 429 every request of this replica waits: the server's Retry-After when it gave one, else a backoff that
 *   doubles while 429s continue.
 *
 * A wait longer than `maxWaitMs` is not taken inside a step: {@link RateBudgetExhaustedError} tells the caller to
 * reschedule (nothing was sent).
 */
import { RetryableError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { MemoryProcessStore } from '../store/memory.ts';
import type { CoordinationStore, RateWindow } from '../store/types.ts';
import { abortableSleep, type Sleep } from './abortable-sleep.ts';
import { isNothingApplied, markNothingApplied } from './classify.ts';

/** The budget had no room within `maxWait`; nothing was sent. */
export class RateBudgetExhaustedError extends RetryableError {}

/** The server answered 429 (src/http/classify.ts: retryable, nothing applied, summarised as `… → 429 …`). */
export function isRateLimited(error: unknown): error is RetryableError {
  return error instanceof RetryableError && isNothingApplied(error) && / → 429\b/.test(error.message);
}

export interface SharedRateLimiterOptions {
  /** Name of the shared bucket (every replica of the deployment uses the same). */
  readonly bucket: string;
  readonly windows: readonly RateWindow[];
  /** A kind's own, smaller bucket, passed before the shared one. */
  readonly kindBuckets?: Readonly<Record<string, { readonly bucket: string; readonly windows: readonly RateWindow[] }>>;
  readonly maxConcurrent: number;
  readonly maxWaitMs: number;
  /** Prefix of the `bucket` label of `certprov_rate_limiter_wait_seconds` (`<prefix>_<kind>`). */
  readonly metricPrefix: string;
  /** What the budget is, for the "no room" message (e.g. `digicert: the issue budget of API key ab12`). */
  readonly describe: (kind: string) => string;
  readonly metrics: Metrics;
  /** 429 without Retry-After: first pause, doubling up to the max while 429s continue. */
  readonly penaltyInitialMs: number;
  readonly penaltyMaxMs: number;
  /** Default: a replica-local store until {@link SharedRateLimiter.useStore}. */
  readonly store?: CoordinationStore;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Default: a timer. */
  readonly sleep?: Sleep;
}

export class SharedRateLimiter {
  private readonly options: SharedRateLimiterOptions;
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private store: CoordinationStore;
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];
  private penaltyUntil = 0;
  private penaltyMs = 0;

  constructor(options: SharedRateLimiterOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
    this.store = options.store ?? new MemoryProcessStore({ now: this.now });
  }

  /** Switches to the shared budget of the process store (called once the store is open). */
  useStore(store: CoordinationStore): void {
    this.store = store;
  }

  /**
   * Waits for a concurrency slot and a token of the budget; returns the function that releases the slot (call it
   * when the response is in). Records the wait in `certprov_rate_limiter_wait_seconds{bucket="<prefix>_<kind>"}`.
   * @throws RateBudgetExhaustedError when the wait would exceed `maxWaitMs` (nothing taken, nothing sent).
   */
  async acquire(kind: string, signal?: AbortSignal): Promise<() => void> {
    const started = this.now();
    await this.slot(signal);
    try {
      await this.token(kind, started, signal);
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
    this.options.metrics.rateLimiterWait.observe(
      { bucket: `${this.options.metricPrefix}_${kind}` },
      (this.now() - started) / 1000,
    );
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.releaseSlot();
    };
  }

  /** The server answered 429: hold every request of this replica back for its Retry-After, or a growing backoff. */
  rateLimited(retryAfterMs?: number): void {
    this.penaltyMs = Math.min(this.options.penaltyMaxMs, Math.max(this.options.penaltyInitialMs, this.penaltyMs * 2));
    const pause = retryAfterMs !== undefined && retryAfterMs > 0 ? retryAfterMs : this.penaltyMs;
    this.penaltyUntil = Math.max(this.penaltyUntil, this.now() + pause);
  }

  /** A request went through: the next 429 starts the backoff from the beginning. */
  succeeded(): void {
    this.penaltyMs = 0;
  }

  /** Milliseconds until the 429 backoff ends (0 when none). */
  get backoffRemainingMs(): number {
    return Math.max(0, this.penaltyUntil - this.now());
  }

  private async token(kind: string, started: number, signal: AbortSignal | undefined): Promise<void> {
    const own = this.options.kindBuckets?.[kind];
    let ownTokenHeld = own === undefined;
    for (;;) {
      signal?.throwIfAborted();
      let wait = this.backoffRemainingMs;
      if (wait === 0 && !ownTokenHeld && own !== undefined) {
        // The kind's own bucket first: a denied request of that kind costs the shared budget nothing.
        wait = await this.store.takeToken(own.bucket, own.windows);
        if (wait === 0) ownTokenHeld = true;
      }
      if (wait === 0) {
        wait = await this.store.takeToken(this.options.bucket, this.options.windows);
        if (wait === 0) return;
      }
      const waited = this.now() - started;
      if (waited + wait > this.options.maxWaitMs) {
        throw markNothingApplied(
          new RateBudgetExhaustedError(
            `${this.options.describe(kind)} has no room for ${Math.ceil(wait / 1000)} s (client-side limit; nothing sent)`,
            { retryAfterMs: wait },
          ),
        );
      }
      // A little jitter, so replicas that were refused together do not all come back in the same millisecond.
      await this.sleep(wait + Math.floor(Math.random() * 50), signal);
    }
  }

  private async slot(signal: AbortSignal | undefined): Promise<void> {
    if (this.inFlight < this.options.maxConcurrent) {
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
