/** The store contract against the memory store (one replica: its "peer" is the same object). */
import { describe, expect, it } from 'vitest';
import { MemoryProcessStore } from '../../src/store/memory.ts';
import { describeStoreContract } from './store-contract.ts';

describeStoreContract('memory', {
  open: (clock, retentionMs) => {
    const store = new MemoryProcessStore({ now: clock, finishedRetentionMs: retentionMs });
    return Promise.resolve({ store, peer: store, close: () => store.close() });
  },
});

describe('memory store rate budget', () => {
  it('refuses exactly until the oldest grant inside a window ages out, however many grants it holds', async () => {
    let now = 1_000_000;
    const store = new MemoryProcessStore({ now: () => now });
    const windows = [
      { limit: 3, windowMs: 1_000 },
      { limit: 5_000, windowMs: 60_000 },
    ];
    // 4,000 grants in the long window first, all older than the short window.
    for (let i = 0; i < 4_000; i += 1) {
      expect(await store.takeToken('chrome', [{ limit: 5_000, windowMs: 60_000 }])).toBe(0);
      now += 10;
    }
    now += 1_000;
    const first = now;
    for (const step of [0, 100, 100]) {
      now += step;
      expect(await store.takeToken('chrome', windows)).toBe(0);
    }
    now += 100; // 300 ms after the first of the three
    expect(await store.takeToken('chrome', windows)).toBe(first + 1_000 - now + 1);
    now = first + 1_001;
    expect(await store.takeToken('chrome', windows)).toBe(0);
    // The long window: 4,000 + 4 grants; 996 more fit, then it waits for the oldest of the last 5,000.
    for (let i = 0; i < 996; i += 1) {
      expect(await store.takeToken('chrome', [{ limit: 5_000, windowMs: 60_000 }])).toBe(0);
    }
    const wait = await store.takeToken('chrome', [{ limit: 5_000, windowMs: 60_000 }]);
    expect(wait).toBe(1_000_000 + 60_000 - now + 1);
  });

  it('keeps a grant made on a clock that stepped back in order', async () => {
    let now = 50_000;
    const store = new MemoryProcessStore({ now: () => now });
    const windows = [{ limit: 2, windowMs: 1_000 }];
    expect(await store.takeToken('b', windows)).toBe(0);
    now -= 400; // the wall clock stepped back
    expect(await store.takeToken('b', windows)).toBe(0);
    now += 500;
    // The two grants are at 49,600 and 50,000: the oldest ages out first.
    expect(await store.takeToken('b', windows)).toBe(49_600 + 1_000 - now + 1);
  });
});
