/**
 * How hard one replica presses on its store, adapted to how the store answers (docs/several-replicas.md "When the
 * store slows down"). A slow store must not be handed more work because it is slow: every call that times out is
 * retried later, so a replica that keeps its full concurrency and scan rate against a store past its limit multiplies
 * the load exactly when there is least room for it (congestion collapse). Two controls, both per replica, both back to
 * the configured values once the store is healthy:
 *
 * - **Concurrency (AIMD).** The number of processes run at once starts at `scheduler.maxConcurrent`. A store call
 *   that times out, is refused as overloaded, or takes longer than `slowCallMs` halves it (at least 1); calls that
 *   began before that halving do not halve it again — they were sent under the old limit, one congestion event is
 *   one halving (TCP's once per round trip). Every `limit` calls answered in time add one, up to the configured
 *   value. The halvings and recoveries of one period of congestion form one episode, told once when it begins and
 *   once when it ends ({@link CONGESTION_QUIET_MS}); the limit itself is exact at every moment.
 * - **Scan spacing.** The least time between two scans for due records grows with the last scan's duration (a scan
 *   may take at most a fifth of the time: the next begins no sooner than 5 × its duration after it began) and doubles with each scan in a row that
 *   launched nothing, from the store's own spacing up to `maxSpacingMs` (empty scans: up to `idleSpacingMs`).
 *   Scans that find work or answer quickly bring it back at once.
 *
 * Pure bookkeeping on a clock it is given: no timers, no I/O. The engine feeds it (engine.ts) and reads `limit` and
 * `spacingMs`. The engine feeds it the calls of the work (steps, creates) and the scans separately.
 */

import { StoreBusyError, type ProcessStore } from '../store/types.ts';

/** A scan may take a fifth of the time at most: the next one begins no sooner than this many durations after it began. */
const SCAN_DURATION_FACTOR = 5;

/**
 * How long the store must go without a congestion signal, at the configured concurrency, before a congestion episode
 * is over. AIMD probes: back at the ceiling, the limit is pushed against the store again, and a store at its capacity
 * answers one call slowly every few tens of seconds — each a halving, each a recovery seconds later. Those are one
 * period of congestion to an operator, so they are one episode: one line when it begins, one when it ends.
 */
export const CONGESTION_QUIET_MS = 60_000;

export interface StoreLoadOptions {
  /** The configured concurrency (`scheduler.maxConcurrent`): the limit's ceiling and starting value. */
  readonly maxConcurrent: number;
  /** The store's own least scan spacing (ProcessStore.scanSpacingMs). */
  readonly minSpacingMs: number;
  /** Ceiling of the spacing from empty scans in a row (the scheduler's idle poll interval). */
  readonly idleSpacingMs: number;
  /** Ceiling of the spacing from slow scans. */
  readonly maxSpacingMs: number;
  /** A store call slower than this signals congestion like a timeout does; undefined: only errors do. */
  readonly slowCallMs: number | undefined;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  /**
   * A congestion episode ends once the limit is back at `maxConcurrent` and no congestion signal came for this long.
   * Default {@link CONGESTION_QUIET_MS}.
   */
  readonly quietMs?: number;
  /** Told when a congestion episode begins and when it ends, with the limit after the change. */
  readonly onStateChange?: (change: StoreLoadChange) => void;
}

export interface StoreLoadChange {
  readonly state: 'healthy' | 'congested';
  readonly limit: number;
  /** What caused it: the congestion signal, or `recovered`. */
  readonly cause: 'timeout' | 'overload' | 'slow' | 'recovered';
  /** At the end of an episode: how many times the limit was halved during it, its lowest value, how long it lasted. */
  readonly episode?: { readonly halvings: number; readonly lowestLimit: number; readonly durationMs: number };
}

export type CallSignal = 'ok' | 'timeout' | 'overload' | 'other';

export class StoreLoadControl {
  private readonly options: StoreLoadOptions;
  private currentLimit: number;
  private answeredSinceIncrease = 0;
  private lastDecreaseAt = Number.NEGATIVE_INFINITY;
  private scanSpacing: number;
  private emptyScans = 0;
  private lastScanMs = 0;
  private readonly quietMs: number;
  /** The congestion episode under way, if any (see {@link CONGESTION_QUIET_MS}). */
  private episode: { startedAt: number; halvings: number; lowestLimit: number } | undefined;

  constructor(options: StoreLoadOptions) {
    this.options = options;
    this.quietMs = options.quietMs ?? CONGESTION_QUIET_MS;
    this.currentLimit = options.maxConcurrent;
    this.scanSpacing = options.minSpacingMs;
  }

  /** How many processes may run at once now. */
  get limit(): number {
    return this.currentLimit;
  }

  /** Least time between two scans now. */
  get spacingMs(): number {
    return this.scanSpacing;
  }

  /** `congested` from the first halving until the episode ends (back at the ceiling, quiet for `quietMs`). */
  get state(): 'healthy' | 'congested' {
    return this.episode === undefined ? 'healthy' : 'congested';
  }

  /** One store call ended: began at `startedAt` (this control's clock), answered (`ok`) or failed how. */
  callEnded(startedAt: number, signal: CallSignal): void {
    const took = this.options.now() - startedAt;
    const slow = this.options.slowCallMs !== undefined && took > this.options.slowCallMs;
    if (signal === 'timeout' || signal === 'overload' || (signal === 'ok' && slow)) {
      this.congestion(startedAt, signal === 'ok' ? 'slow' : signal);
      return;
    }
    if (signal !== 'ok') return; // a refusal or a conflict says nothing about load
    this.answeredSinceIncrease += 1;
    if (this.answeredSinceIncrease >= this.currentLimit) {
      this.answeredSinceIncrease = 0;
      if (this.currentLimit < this.options.maxConcurrent) this.currentLimit += 1;
    }
    this.endEpisodeIfQuiet();
  }

  /**
   * Ends the congestion episode when the limit is back at the ceiling and no congestion signal came for `quietMs`.
   * Called on every timely answer and every scan, so an episode also ends on a replica that has gone idle.
   */
  private endEpisodeIfQuiet(): void {
    const episode = this.episode;
    if (episode === undefined || this.currentLimit < this.options.maxConcurrent) return;
    const now = this.options.now();
    if (now - this.lastDecreaseAt < this.quietMs) return;
    this.episode = undefined;
    this.options.onStateChange?.({
      state: 'healthy',
      limit: this.currentLimit,
      cause: 'recovered',
      episode: { halvings: episode.halvings, lowestLimit: episode.lowestLimit, durationMs: now - episode.startedAt },
    });
  }

  /** One scan for due records ended: it took `durationMs` and launched `launched` processes. */
  scanEnded(durationMs: number, launched: number): void {
    this.lastScanMs = durationMs;
    this.emptyScans = launched > 0 ? 0 : Math.min(this.emptyScans + 1, 30);
    const { minSpacingMs, idleSpacingMs, maxSpacingMs } = this.options;
    const empty = Math.min(idleSpacingMs, minSpacingMs * 2 ** this.emptyScans);
    const slow = Math.min(maxSpacingMs, SCAN_DURATION_FACTOR * this.lastScanMs);
    this.scanSpacing = Math.max(minSpacingMs, this.emptyScans === 0 ? 0 : empty, slow);
    this.endEpisodeIfQuiet();
  }

  private congestion(startedAt: number, cause: 'timeout' | 'overload' | 'slow'): void {
    // A call sent before the last decrease reflects the load before it: one congestion event, one halving.
    if (startedAt <= this.lastDecreaseAt) return;
    this.lastDecreaseAt = this.options.now();
    this.answeredSinceIncrease = 0;
    this.currentLimit = Math.max(1, Math.floor(this.currentLimit / 2));
    if (this.episode === undefined) {
      this.episode = { startedAt: this.lastDecreaseAt, halvings: 1, lowestLimit: this.currentLimit };
      this.options.onStateChange?.({ state: 'congested', limit: this.currentLimit, cause });
    } else {
      // The same period of congestion: the limit (and its gauge) moves, the log does not.
      this.episode.halvings += 1;
      this.episode.lowestLimit = Math.min(this.episode.lowestLimit, this.currentLimit);
    }
  }
}

/** What a store call's end says about load: answered, timed out, refused for load, or failed otherwise. */
export function callSignal(error?: unknown): CallSignal {
  if (error === undefined) return 'ok';
  return error instanceof StoreBusyError ? error.busy : 'other';
}

/**
 * The store, with every call's duration and outcome told to `control` (a thin proxy: the calls and their results are
 * the store's own).
 */
export function observedStore(store: ProcessStore, control: StoreLoadControl, now: () => number): ProcessStore {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const startedAt = now();
        const result: unknown = Reflect.apply(value, target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (answer: unknown) => {
            control.callEnded(startedAt, 'ok');
            return answer;
          },
          (error: unknown) => {
            control.callEnded(startedAt, callSignal(error));
            throw error;
          },
        );
      };
    },
  });
}
