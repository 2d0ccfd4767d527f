/**
 * The per-API-key budget (DigiCert's rate-limits page today: 100 per 5 s and 1,000 per 3 min; 429 beyond, no
 * Retry-After): shared
 * by replicas through the store, polling capped at its share so issuance keeps the rest, no bursts beyond
 * maxConcurrent, a growing backoff after 429s, and waits recorded in the metric. Time is virtual.
 */
import { describe, expect, it } from 'vitest';
import {
  DigicertRateLimiter,
  RateBudgetExhaustedError,
  type RateBudget,
} from '../../../src/ca/digicert/rate-limiter.ts';
import { digicertConfigSchema } from '../../../src/ca/digicert/config.ts';
import { isNothingApplied } from '../../../src/http/classify.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { VirtualClock } from '../../fakes/digicert/issue-request.ts';

const BUDGET: RateBudget = {
  requestsPer5Seconds: 10,
  requestsPer3Minutes: 100,
  pollingShare: 0.2,
  maxWaitMs: 600_000,
  maxConcurrent: 100,
};

function limiter(
  clock: VirtualClock,
  store: MemoryProcessStore,
  budget: Partial<RateBudget> = {},
  metrics = new Metrics({ defaultMetrics: false }),
) {
  return new DigicertRateLimiter({
    keyId: 'k1',
    budget: { ...BUDGET, ...budget },
    metrics,
    store,
    now: clock.now,
    sleep: clock.sleep,
  });
}

/** Grants of `n` acquisitions as virtual timestamps. */
async function grants(
  l: DigicertRateLimiter,
  clock: VirtualClock,
  kind: 'issue' | 'poll',
  n: number,
): Promise<number[]> {
  const at: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const release = await l.acquire(kind);
    at.push(clock.now());
    release();
  }
  return at;
}

function maxInWindow(times: readonly number[], windowMs: number): number {
  let max = 0;
  for (const t of times) max = Math.max(max, times.filter((u) => u >= t && u < t + windowMs).length);
  return max;
}

describe('DigicertRateLimiter', () => {
  it('never lets more than the budget through in any 5-second or 3-minute window', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }));
    const times = await grants(l, clock, 'issue', 250);
    expect(maxInWindow(times, 5_000)).toBeLessThanOrEqual(10);
    expect(maxInWindow(times, 180_000)).toBeLessThanOrEqual(100);
    // …and does use it: 250 requests need at least two full 3-minute windows, not much more.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(360_000);
    expect(times.at(-1)! - times[0]!).toBeLessThan(420_000);
  });

  it('two replicas on one store share one budget', async () => {
    const clock = new VirtualClock();
    const store = new MemoryProcessStore({ now: clock.now });
    const [a, b] = [limiter(clock, store), limiter(clock, store)];
    const times: number[] = [];
    for (let i = 0; i < 30; i += 1) {
      for (const l of [a, b]) {
        const release = await l.acquire('issue');
        times.push(clock.now());
        release();
      }
    }
    expect(maxInWindow(times, 5_000)).toBeLessThanOrEqual(10);
  });

  it('polling gets at most its share; issuance still gets the rest at once', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }));
    const polls = await grants(l, clock, 'poll', 6);
    // 20% of 10 per 5 s = 2 polls per 5 s.
    expect(maxInWindow(polls, 5_000)).toBeLessThanOrEqual(2);
    expect(polls.at(-1)! - polls[0]!).toBeGreaterThanOrEqual(10_000);
    // The polls used 2 of the shared 10 in the current window: 8 issue requests go through without waiting.
    const start = clock.now();
    const issues = await grants(l, clock, 'issue', 8);
    expect(issues.every((t) => t === start)).toBe(true);
  });

  it('a denied poll costs the shared budget nothing', async () => {
    const clock = new VirtualClock();
    const store = new MemoryProcessStore({ now: clock.now });
    const l = limiter(clock, store, { maxWaitMs: 0 });
    await grants(l, clock, 'poll', 2);
    await expect(l.acquire('poll')).rejects.toBeInstanceOf(RateBudgetExhaustedError);
    // 10 per 5 s minus the 2 granted polls: exactly 8 issue tokens left in this window.
    const start = clock.now();
    const issues = await grants(limiter(clock, store), clock, 'issue', 9);
    expect(issues.filter((t) => t === start)).toHaveLength(8);
  });

  it('gives up beyond maxWait with a retryable error that says nothing was sent', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }), { maxWaitMs: 1_000 });
    await grants(l, clock, 'issue', 10);
    const error = await l.acquire('issue').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateBudgetExhaustedError);
    expect((error as RateBudgetExhaustedError).retryAfterMs).toBeGreaterThan(1_000);
    expect(isNothingApplied(error)).toBe(true);
  });

  it('after a 429 every request waits 5 s, then 10 s after another; success resets the growth', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }));
    l.rateLimited();
    let start = clock.now();
    (await l.acquire('issue'))();
    expect(clock.now() - start).toBeGreaterThanOrEqual(5_000);
    l.rateLimited();
    start = clock.now();
    (await l.acquire('issue'))();
    expect(clock.now() - start).toBeGreaterThanOrEqual(10_000);
    l.succeeded();
    l.rateLimited();
    start = clock.now();
    (await l.acquire('issue'))();
    expect(clock.now() - start).toBeLessThan(6_000);
  });

  it('holds at most maxConcurrent requests in flight', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }), { maxConcurrent: 2 });
    const first = await l.acquire('issue');
    const second = await l.acquire('issue');
    let thirdGranted = false;
    const third = l.acquire('issue').then((release) => {
      thirdGranted = true;
      return release;
    });
    await new Promise((r) => setImmediate(r));
    expect(thirdGranted).toBe(false);
    first();
    (await third)();
    expect(thirdGranted).toBe(true);
    second();
  });

  it('an aborted wait for a slot leaves the queue', async () => {
    const clock = new VirtualClock();
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }), { maxConcurrent: 1 });
    const held = await l.acquire('issue');
    const abort = new AbortController();
    const waiting = l.acquire('issue', abort.signal);
    abort.abort(new Error('shutdown'));
    await expect(waiting).rejects.toThrow('shutdown');
    held();
    (await l.acquire('issue'))();
  });

  it('records every wait in certprov_rate_limiter_wait_seconds by kind', async () => {
    const clock = new VirtualClock();
    const metrics = new Metrics({ defaultMetrics: false });
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }), {}, metrics);
    await grants(l, clock, 'issue', 12);
    await grants(l, clock, 'poll', 1);
    const text = await metrics.scrape();
    expect(text).toMatch(/certprov_rate_limiter_wait_seconds_count\{bucket="digicert_issue"\} 12/);
    expect(text).toMatch(/certprov_rate_limiter_wait_seconds_count\{bucket="digicert_poll"\} 1/);
    // Two of the 12 waited for the next 5-second window.
    const sum = /certprov_rate_limiter_wait_seconds_sum\{bucket="digicert_issue"\} ([\d.]+)/.exec(text)?.[1];
    expect(Number(sum)).toBeGreaterThan(4);
  });
});

describe('DigicertRateLimiter with the default configuration', () => {
  it("stays inside DigiCert's documented 100 per 5 s and 1,000 per 3 minutes, and uses the 3-minute window", async () => {
    const clock = new VirtualClock();
    const { rateLimit } = digicertConfigSchema.parse({
      type: 'digicert',
      apiKey: { env: 'K' },
      product: 'client_authentication_plus',
      organizationId: 1,
      processIdCustomFieldId: 77,
    });
    const l = limiter(clock, new MemoryProcessStore({ now: clock.now }), {
      requestsPer5Seconds: rateLimit.requestsPer5Seconds,
      requestsPer3Minutes: rateLimit.requestsPer3Minutes,
    });
    const times = await grants(l, clock, 'issue', 2_000);
    expect(maxInWindow(times, 5_000)).toBeLessThanOrEqual(100);
    expect(maxInWindow(times, 180_000)).toBeLessThanOrEqual(1_000);
    // 2,000 requests at 900 per 3 minutes need a little over two windows (6 min) — under a 5-minute window they
    // would need over 10.
    const span = times.at(-1)! - times[0]!;
    expect(span).toBeGreaterThanOrEqual(360_000);
    expect(span).toBeLessThan(420_000);
  });
});
