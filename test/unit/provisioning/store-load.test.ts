/**
 * The scheduler's load control on its own (src/provisioning/store-load.ts), on a clock the test moves: concurrency
 * halves on congestion once per event and comes back one step per window of calls answered in time; the halvings of
 * one period of congestion are one episode (told once when it begins, once when it ends); scan spacing grows with
 * slow and empty scans and comes back at once.
 */
import { describe, expect, it } from 'vitest';
import {
  CONGESTION_QUIET_MS,
  StoreLoadControl,
  callSignal,
  type StoreLoadChange,
} from '../../../src/provisioning/store-load.ts';
import { StoreBusyError } from '../../../src/store/types.ts';

function control(overrides: { slowCallMs?: number; maxConcurrent?: number } = {}) {
  let clock = 0;
  const changes: StoreLoadChange[] = [];
  const load = new StoreLoadControl({
    maxConcurrent: overrides.maxConcurrent ?? 32,
    minSpacingMs: 50,
    idleSpacingMs: 1_000,
    maxSpacingMs: 10_000,
    slowCallMs: 'slowCallMs' in overrides ? overrides.slowCallMs : 2_500,
    now: () => clock,
    onStateChange: (change) => changes.push(change),
  });
  return {
    load,
    changes,
    advance: (ms: number) => {
      clock += ms;
    },
    now: () => clock,
    /** A call that begins a moment from now and ends `ms` later with `signal`. */
    call(ms: number, signal: Parameters<StoreLoadControl['callEnded']>[1] = 'ok') {
      clock += 1;
      const startedAt = clock;
      clock += ms;
      load.callEnded(startedAt, signal);
    },
  };
}

describe('concurrency toward the store', () => {
  it('halves on a timeout, once for the calls sent before the halving, and says so once', () => {
    const t = control();
    const startedAt = t.now();
    t.advance(10_000);
    // 32 calls sent together, all timing out: one congestion event.
    for (let i = 0; i < 32; i += 1) t.load.callEnded(startedAt, 'timeout');
    expect(t.load.limit).toBe(16);
    expect(t.load.state).toBe('congested');
    expect(t.changes).toEqual([{ state: 'congested', limit: 16, cause: 'timeout' }]);
    // A call sent after the halving that times out too: the store is still congested at 16.
    t.call(10_000, 'timeout');
    expect(t.load.limit).toBe(8);
    expect(t.changes).toHaveLength(1);
  });

  it('treats a slow answer and a refusal for load as congestion, other failures not', () => {
    const t = control();
    t.call(3_000, 'ok'); // slower than slowCallMs
    expect(t.load.limit).toBe(16);
    expect(t.changes[0]?.cause).toBe('slow');
    t.call(10, 'overload');
    expect(t.load.limit).toBe(8);
    t.call(10, 'other'); // a conflict or a refusal: no load signal
    t.call(5_000, 'other');
    expect(t.load.limit).toBe(8);
  });

  it('without slowCallMs (a local store) only errors signal congestion', () => {
    const t = control({ slowCallMs: undefined });
    t.call(60_000, 'ok');
    expect(t.load.limit).toBe(32);
    t.call(10, 'timeout');
    expect(t.load.limit).toBe(16);
  });

  it('never goes below one process', () => {
    const t = control();
    for (let i = 0; i < 10; i += 1) t.call(10_000, 'timeout');
    expect(t.load.limit).toBe(1);
  });

  it('comes back one step per window of timely answers, and says it is healthy once quiet at the ceiling', () => {
    const t = control();
    t.call(10_000, 'timeout');
    const began = t.now();
    for (let i = 0; i < 9; i += 1) t.call(10_000, 'timeout');
    expect(t.load.limit).toBe(1);
    const lastTimeout = t.now();
    // At limit n it takes n timely answers to reach n + 1: 1 + 2 + … + 31 answers back to 32.
    let answers = 0;
    while (t.load.limit < 32) {
      t.call(20, 'ok');
      answers += 1;
      if (answers > 10_000) throw new Error('never recovered');
    }
    expect(answers).toBe((31 * 32) / 2);
    // Back at the ceiling after about 10 s: the episode lasts until a quiet minute has passed.
    expect(t.load.state).toBe('congested');
    t.advance(CONGESTION_QUIET_MS - (t.now() - lastTimeout) - 10);
    t.call(0, 'ok');
    expect(t.load.state).toBe('congested');
    t.advance(10);
    t.call(0, 'ok');
    expect(t.load.state).toBe('healthy');
    expect(t.changes).toHaveLength(2);
    expect(t.changes.at(-1)).toEqual({
      state: 'healthy',
      limit: 32,
      cause: 'recovered',
      episode: { halvings: 10, lowestLimit: 1, durationMs: t.now() - began },
    });
    // Never above the configured concurrency.
    for (let i = 0; i < 100; i += 1) t.call(20, 'ok');
    expect(t.load.limit).toBe(32);
  });

  it('with maxConcurrent 1, a timely answer after a congestion event says the store is healthy again', () => {
    const t = control({ maxConcurrent: 1 });
    t.call(10, 'timeout');
    expect(t.load.limit).toBe(1);
    expect(t.load.state).toBe('congested');
    t.advance(CONGESTION_QUIET_MS);
    t.call(10, 'ok');
    expect(t.load.limit).toBe(1);
    expect(t.load.state).toBe('healthy');
    expect(t.changes.map(({ state, limit, cause }) => ({ state, limit, cause }))).toEqual([
      { state: 'congested', limit: 1, cause: 'timeout' },
      { state: 'healthy', limit: 1, cause: 'recovered' },
    ]);
  });

  it('a congestion event during recovery halves again', () => {
    const t = control();
    for (let i = 0; i < 3; i += 1) t.call(10_000, 'timeout'); // 4
    for (let i = 0; i < 4 + 5; i += 1) t.call(20, 'ok'); // 4 → 5 → 6
    expect(t.load.limit).toBe(6);
    t.call(3_000, 'ok'); // slow
    expect(t.load.limit).toBe(3);
  });
});

describe('congestion episodes (what the log and certprov_store_congestion_total tell)', () => {
  /** A store at its capacity: one slow answer every `everyMs`, timely answers between them at `perSecond`. */
  function sawtooth(t: ReturnType<typeof control>, durationMs: number, everyMs: number, perSecond = 200) {
    const limits: number[] = [];
    let slow = 0;
    const end = t.now() + durationMs;
    let nextSlow = t.now() + everyMs;
    while (t.now() < end) {
      if (t.now() >= nextSlow) {
        t.call(3_000, 'ok'); // over slowCallMs (2.5 s)
        slow += 1;
        nextSlow = t.now() + everyMs;
      } else t.call(1_000 / perSecond - 1, 'ok');
      limits.push(t.load.limit);
    }
    return { limits, slow };
  }

  it('the 32 ↔ 16 sawtooth of a store at its capacity is one episode: one line when it begins, one when it ends', () => {
    const t = control();
    // Ten minutes of a slow answer every 45 s: the limit halves each time and is back at 32 within seconds.
    const { limits, slow } = sawtooth(t, 600_000, 43_000);
    // The limit is exact at every moment: it went down and up again each time.
    const halvings = limits.filter((limit, i) => i > 0 && limit < (limits[i - 1] ?? 0)).length;
    expect(slow).toBe(13);
    expect(halvings).toBe(13);
    expect(Math.min(...limits)).toBe(16);
    expect(limits.at(-1)).toBe(32);
    expect(t.changes).toEqual([{ state: 'congested', limit: 16, cause: 'slow' }]);
    expect(t.load.state).toBe('congested');
    // The store keeps up for a quiet minute: the episode ends, with what happened during it.
    sawtooth(t, CONGESTION_QUIET_MS, Number.POSITIVE_INFINITY);
    expect(t.load.state).toBe('healthy');
    expect(t.changes).toHaveLength(2);
    expect(t.changes[1]).toMatchObject({ state: 'healthy', limit: 32, cause: 'recovered' });
    expect(t.changes[1]?.episode).toMatchObject({ halvings: 13, lowestLimit: 16 });
    expect(t.changes[1]?.episode?.durationMs).toBeGreaterThan(600_000);
  });

  it('two congestion periods apart by more than the quiet time are two episodes', () => {
    const t = control();
    sawtooth(t, 120_000, 30_000);
    sawtooth(t, 2 * CONGESTION_QUIET_MS, Number.POSITIVE_INFINITY);
    sawtooth(t, 120_000, 30_000);
    sawtooth(t, 2 * CONGESTION_QUIET_MS, Number.POSITIVE_INFINITY);
    expect(t.changes.map((c) => c.state)).toEqual(['congested', 'healthy', 'congested', 'healthy']);
  });

  it('an idle replica ends the episode at its next scan once quiet', () => {
    const t = control();
    t.call(10_000, 'timeout');
    while (t.load.limit < 32) t.call(20, 'ok'); // back at 32, no more calls: the replica is idle
    expect(t.load.limit).toBe(32);
    t.advance(CONGESTION_QUIET_MS);
    expect(t.load.state).toBe('congested');
    t.load.scanEnded(5, 0);
    expect(t.load.state).toBe('healthy');
    expect(t.changes.map((c) => c.state)).toEqual(['congested', 'healthy']);
  });

  it('a congestion signal while still below the ceiling, however long after, stays in the episode', () => {
    const t = control({ maxConcurrent: 1_000 });
    t.call(10_000, 'timeout'); // 500: a long way back at one step per window
    t.advance(5 * CONGESTION_QUIET_MS);
    t.call(10, 'ok');
    expect(t.load.state).toBe('congested');
    t.call(10_000, 'timeout');
    expect(t.changes).toHaveLength(1);
  });
});

describe('scan spacing', () => {
  it("is the store's own while scans are quick and find work", () => {
    const t = control();
    t.load.scanEnded(4, 3);
    expect(t.load.spacingMs).toBe(50);
  });

  it('grows with a slow scan (five times its duration) up to the ceiling, and comes back after a quick one', () => {
    const t = control();
    t.load.scanEnded(400, 3);
    expect(t.load.spacingMs).toBe(2_000);
    t.load.scanEnded(9_000, 3);
    expect(t.load.spacingMs).toBe(10_000);
    t.load.scanEnded(5, 3);
    expect(t.load.spacingMs).toBe(50);
  });

  it('doubles with every scan in a row that launched nothing, up to the idle interval, and resets on work', () => {
    const t = control();
    const spacings: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      t.load.scanEnded(2, 0);
      spacings.push(t.load.spacingMs);
    }
    expect(spacings).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
    t.load.scanEnded(2, 1);
    expect(t.load.spacingMs).toBe(50);
  });

  it('a slow empty scan spaces out by the longer of the two', () => {
    const t = control();
    t.load.scanEnded(1_000, 0);
    expect(t.load.spacingMs).toBe(5_000);
  });
});

describe('callSignal', () => {
  it('tells a timeout and a refusal for load from other failures', () => {
    expect(callSignal()).toBe('ok');
    expect(callSignal(new StoreBusyError('slow', 'timeout', {}))).toBe('timeout');
    expect(callSignal(new StoreBusyError('full', 'overload', {}))).toBe('overload');
    expect(callSignal(new Error('conflict'))).toBe('other');
  });
});
