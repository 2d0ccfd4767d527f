/**
 * Tenant-wide fault injection for the sandbox: throttling (429 + Retry-After), outages (503), latency, bursts of
 * errors, and "lost responses" (the request is applied, then the connection is cut without an answer — the case
 * that makes signData unsafe to resend; DESIGN.md §5). Switchable at runtime; deterministic with a seed.
 */
import { seededRandom } from './seeded-random.ts';

/** The API calls the sandbox serves; also the keys of the per-method request counters. */
export type SandboxMethod = 'get' | 'claim' | 'signData' | 'getOperation' | 'uploadCertificate' | 'setFailure';

export const SANDBOX_METHODS: readonly SandboxMethod[] = [
  'get',
  'claim',
  'signData',
  'getOperation',
  'uploadCertificate',
  'setFailure',
];

export interface FaultSettings {
  /** Probability (0..1) that a request is answered 429 RESOURCE_EXHAUSTED with `Retry-After: 1`. Default 0. */
  readonly rate429?: number;
  /** Probability (0..1) that a request is answered 503 UNAVAILABLE. Default 0. */
  readonly rate503?: number;
  /** Restrict the random 429/503 faults and bursts to these methods. Default: every method. */
  readonly methods?: readonly SandboxMethod[];
  /** Fixed delay before every answer, in ms. Default 0. */
  readonly latencyMs?: number;
  /** Extra uniformly random delay 0..jitterMs added to latencyMs. Default 0. */
  readonly jitterMs?: number;
  /** The next `count` requests (of `methods`, if set) are answered 503 without being applied. Default 0. */
  readonly burst503?: number;
  /** The next `count` requests (of `methods`, if set) are answered 429 without being applied. Default 0. */
  readonly burst429?: number;
  /**
   * The next `count` requests of `method` are applied (signData really starts on the device) and then the socket
   * is destroyed without an answer: the client sees a reset connection, an unclear result.
   */
  readonly dropResponse?: { readonly method: SandboxMethod; readonly count: number };
  /**
   * The next `count` requests of `method` are applied and then answered with `status` (500 or 503): a front end
   * that failed after the backend acted. Also an unclear result for the client.
   */
  readonly errorAfterApply?: { readonly method: SandboxMethod; readonly count: number; readonly status: 500 | 503 };
  /**
   * The next `count` requests of `method` are applied and answered only after `ms`: a window in which a test can kill
   * the caller after Google accepted the call but before the caller learned of it (e.g. an accepted upload).
   */
  readonly holdResponse?: { readonly method: SandboxMethod; readonly count: number; readonly ms: number };
  /** Seed of the PRNG behind rate429/rate503/jitter; same seed and request order → same faults. Default: random. */
  readonly seed?: number;
}

/** What happens to one request, decided before it is handled. */
export type FaultDecision =
  | { readonly kind: 'none' }
  | { readonly kind: 'reject'; readonly httpStatus: 429 | 503 }
  | { readonly kind: 'drop-after-apply' }
  | { readonly kind: 'error-after-apply'; readonly httpStatus: 500 | 503 }
  | { readonly kind: 'hold-after-apply'; readonly ms: number };

const NO_FAULT: FaultDecision = { kind: 'none' };

function probability(value: number | undefined, name: string): number {
  const p = value ?? 0;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${p}`);
  return p;
}

function count(value: number | undefined, name: string): number {
  const n = value ?? 0;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
  return n;
}

/** Mutable fault state of one tenant; bursts and one-shot faults count down as requests consume them. */
export class FaultInjector {
  private settings: FaultSettings = {};
  private random: () => number = seededRandom(Math.floor(Math.random() * 2 ** 32));
  private burst503 = 0;
  private burst429 = 0;
  private drop: { method: SandboxMethod; remaining: number } | undefined;
  private errorAfter: { method: SandboxMethod; remaining: number; status: 500 | 503 } | undefined;
  private hold: { method: SandboxMethod; remaining: number; ms: number } | undefined;

  /** Replaces every setting (unset fields go back to their defaults) and reseeds the PRNG if a seed is given. */
  set(settings: FaultSettings): void {
    probability(settings.rate429, 'rate429');
    probability(settings.rate503, 'rate503');
    this.burst503 = count(settings.burst503, 'burst503');
    this.burst429 = count(settings.burst429, 'burst429');
    this.drop =
      settings.dropResponse === undefined
        ? undefined
        : { method: settings.dropResponse.method, remaining: count(settings.dropResponse.count, 'dropResponse.count') };
    this.errorAfter =
      settings.errorAfterApply === undefined
        ? undefined
        : {
            method: settings.errorAfterApply.method,
            remaining: count(settings.errorAfterApply.count, 'errorAfterApply.count'),
            status: settings.errorAfterApply.status,
          };
    this.hold =
      settings.holdResponse === undefined
        ? undefined
        : {
            method: settings.holdResponse.method,
            remaining: count(settings.holdResponse.count, 'holdResponse.count'),
            ms: count(settings.holdResponse.ms, 'holdResponse.ms'),
          };
    if (settings.seed !== undefined) this.random = seededRandom(settings.seed);
    this.settings = { ...settings };
  }

  /** The current settings with the remaining counts of bursts and one-shot faults. */
  get(): FaultSettings {
    return {
      ...this.settings,
      burst503: this.burst503,
      burst429: this.burst429,
      ...(this.drop === undefined ? {} : { dropResponse: { method: this.drop.method, count: this.drop.remaining } }),
      ...(this.errorAfter === undefined
        ? {}
        : {
            errorAfterApply: {
              method: this.errorAfter.method,
              count: this.errorAfter.remaining,
              status: this.errorAfter.status,
            },
          }),
      ...(this.hold === undefined
        ? {}
        : { holdResponse: { method: this.hold.method, count: this.hold.remaining, ms: this.hold.ms } }),
    };
  }

  /** Delay before answering this request, in ms (0 when no latency is configured). */
  delayMs(): number {
    const latency = this.settings.latencyMs ?? 0;
    const jitter = this.settings.jitterMs ?? 0;
    return jitter > 0 ? latency + this.random() * jitter : latency;
  }

  /** Decides the fate of one request; consumes one unit of a burst or one-shot fault when it applies. */
  decide(method: SandboxMethod): FaultDecision {
    const s = this.settings;
    const targeted = s.methods === undefined || s.methods.includes(method);
    if (targeted && this.burst503 > 0) {
      this.burst503 -= 1;
      return { kind: 'reject', httpStatus: 503 };
    }
    if (targeted && this.burst429 > 0) {
      this.burst429 -= 1;
      return { kind: 'reject', httpStatus: 429 };
    }
    // Roll the dice only when a rate is set, so a seeded run's sequence does not depend on unrelated settings.
    if (targeted && (s.rate429 ?? 0) > 0 && this.random() < (s.rate429 ?? 0))
      return { kind: 'reject', httpStatus: 429 };
    if (targeted && (s.rate503 ?? 0) > 0 && this.random() < (s.rate503 ?? 0))
      return { kind: 'reject', httpStatus: 503 };
    if (this.drop !== undefined && this.drop.method === method && this.drop.remaining > 0) {
      this.drop.remaining -= 1;
      return { kind: 'drop-after-apply' };
    }
    if (this.errorAfter !== undefined && this.errorAfter.method === method && this.errorAfter.remaining > 0) {
      this.errorAfter.remaining -= 1;
      return { kind: 'error-after-apply', httpStatus: this.errorAfter.status };
    }
    if (this.hold !== undefined && this.hold.method === method && this.hold.remaining > 0) {
      this.hold.remaining -= 1;
      return { kind: 'hold-after-apply', ms: this.hold.ms };
    }
    return NO_FAULT;
  }
}
