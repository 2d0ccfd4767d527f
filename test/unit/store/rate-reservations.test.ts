/**
 * The batch-reservation accounting behind the shared rate budget (src/store/rate-reservations.ts), without a store:
 * a simulated fleet of replicas, each using its reserved tokens at the worst moments, never exceeds a window.
 */
import { describe, expect, it } from 'vitest';
import {
  BatchedRateBudget,
  decideReservation,
  maxBatch,
  type Reservation,
  type ReservationLedger,
  type ReserveDecision,
} from '../../../src/store/rate-reservations.ts';

const DIGICERT = [
  { limit: 100, windowMs: 5_000 },
  { limit: 1_000, windowMs: 300_000 },
];

describe('decideReservation', () => {
  it('grants up to the room left in every window and records the reservation with its hold interval', () => {
    const d = decideReservation([], DIGICERT, 1_000, 25, 1_000);
    expect(d).toMatchObject({ granted: 25, waitMs: 0 });
    expect(d.entries).toEqual([{ from: 1_000, until: 2_000, count: 25 }]);
    const stored: Reservation[] = [{ from: 0, until: 1_000, count: 90 }];
    expect(decideReservation(stored, DIGICERT, 1_500, 25, 1_000).granted).toBe(10);
  });

  it('counts a reservation against a window until its hold interval has left the window', () => {
    const stored: Reservation[] = [{ from: 0, until: 1_000, count: 100 }];
    // Tokens may have been used up to t = 1000, so the 5 s window is full until 6000.
    const refused = decideReservation(stored, DIGICERT, 5_999, 1, 1_000);
    expect(refused).toMatchObject({ granted: 0, waitMs: 2 });
    expect(decideReservation(stored, DIGICERT, 6_001, 1, 1_000).granted).toBe(1);
  });

  it('computes the wait from the reservations that must age out, over the longest-blocked window', () => {
    const stored: Reservation[] = [
      { from: 0, until: 1_000, count: 600 },
      { from: 100_000, until: 101_000, count: 400 },
    ];
    const d = decideReservation(stored, DIGICERT, 200_000, 1, 1_000);
    expect(d.granted).toBe(0);
    // The 5-minute window frees room when the first reservation ages out: 1000 + 300000 − 200000 + 1.
    expect(d.waitMs).toBe(101_001);
  });

  it('prunes reservations older than the longest window', () => {
    const stored: Reservation[] = [{ from: 0, until: 1_000, count: 5 }];
    expect(decideReservation(stored, DIGICERT, 400_000, 1, 1_000).entries).toEqual([
      { from: 400_000, until: 401_000, count: 1 },
    ]);
  });

  it('never lets the tokens of several replicas, used at any moment of their intervals, exceed a window', () => {
    // Replicas reserve at random moments with random demand; each batch is spent either at the first or at the last
    // moment of its hold interval — the worst cases for a sliding window. A fixed seed keeps the run repeatable.
    let seed = 12_345;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const windows = [
      { limit: 20, windowMs: 1_000 },
      { limit: 120, windowMs: 10_000 },
    ];
    let stored: Reservation[] = [];
    const uses: number[] = [];
    for (let t = 0; t < 60_000; t += Math.floor(random() * 120)) {
      const want = 1 + Math.floor(random() * maxBatch(windows));
      const d = decideReservation(stored, windows, t, want, 700);
      stored = [...d.entries];
      if (d.granted === 0) continue;
      const reservation = d.entries[d.entries.length - 1] as Reservation;
      const at = random() < 0.5 ? reservation.from : reservation.until;
      for (let i = 0; i < d.granted; i += 1) uses.push(at);
    }
    uses.sort((a, b) => a - b);
    for (const { limit, windowMs } of windows) {
      for (const start of uses)
        expect(uses.filter((u) => u >= start && u < start + windowMs).length).toBeLessThanOrEqual(limit);
    }
    // …and still hands out most of the budget over time (60 s allow 720 by the 10 s window).
    expect(uses.length).toBeGreaterThan(500);
  });
});

describe('BatchedRateBudget', () => {
  function ledger(): ReservationLedger & { writes: number } {
    let stored: readonly Reservation[] = [];
    const l = {
      writes: 0,
      reserve(
        _bucket: string,
        decide: (s: readonly Reservation[], now: number) => ReserveDecision,
      ): Promise<ReserveDecision> {
        const d = decide(stored, clock.t);
        if (d.granted > 0) {
          stored = d.entries;
          l.writes += 1;
        }
        return Promise.resolve(d);
      },
    };
    return l;
  }
  const clock = { t: 0 };

  it('hands out tokens locally and writes once per batch, growing the batch while it is used up', async () => {
    clock.t = 0;
    const l = ledger();
    const budget = new BatchedRateBudget(l, 1_000, () => clock.t);
    let granted = 0;
    for (let i = 0; i < 50; i += 1) if ((await budget.take('b', DIGICERT)) === 0) granted += 1;
    expect(granted).toBe(50);
    // Batches 1, 2, 4, 8, 16, 25 (a quarter of 100): 6 writes for 56 tokens, not 50.
    expect(l.writes).toBe(6);
  });

  it('drops tokens whose hold interval has passed and answers how long to wait when the budget is spent', async () => {
    clock.t = 0;
    const budget = new BatchedRateBudget(ledger(), 1_000, () => clock.t);
    const windows = [{ limit: 4, windowMs: 10_000 }];
    expect(await budget.take('b', windows)).toBe(0); // batch of 1
    expect(await budget.take('b', windows)).toBe(0); // batch of 1 (max batch is 1 for a limit of 4)
    clock.t = 2_000;
    expect(await budget.take('b', windows)).toBe(0);
    expect(await budget.take('b', windows)).toBe(0);
    const wait = await budget.take('b', windows);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(9_001);
  });

  it('shares one reservation among concurrent callers', async () => {
    clock.t = 0;
    const l = ledger();
    const budget = new BatchedRateBudget(l, 1_000, () => clock.t);
    const waits = await Promise.all(
      Array.from({ length: 10 }, () => budget.take('b', [{ limit: 100, windowMs: 5_000 }])),
    );
    expect(waits.every((w) => w === 0)).toBe(true);
    expect(l.writes).toBeLessThanOrEqual(5);
  });
});
