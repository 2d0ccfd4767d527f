/**
 * The memory store answers the scheduler's due-query from an index (src/store/due-index.ts) instead of scanning
 * every waiting process. Here its answers are compared, step by step, with the query's definition evaluated over all
 * records, through a long random sequence of the writes the engine makes: creates, leases that expire or are
 * renewed, waits, wake-ups, finished processes — and a wall clock that sometimes steps back.
 */
import { describe, expect, it } from 'vitest';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { workableAt } from '../../../src/store/due-index.ts';
import type { ProcessRecord } from '../../../src/store/types.ts';
import { seededRandom } from '../../../src/sandbox/seeded-random.ts';

/** findDue's definition: not done, due, lease absent or expired; earliest dueAt first. */
function expectedDue(records: readonly ProcessRecord[], now: number): ProcessRecord[] {
  return records
    .filter((r) => r.step !== 'done' && r.dueAt <= now && (r.lease === undefined || r.lease.expiresAt <= now))
    .sort((a, b) => a.dueAt - b.dueAt);
}

/**
 * findDue's page (src/store/types.ts): records past `start` first, then those at `start`, each group earliest due
 * first — except that `reserve` places go to starts when that many are due.
 */
function expectedPage(due: readonly ProcessRecord[], limit: number, reserve: number): ProcessRecord[] {
  const continuing = due.filter((r) => r.step !== 'start');
  const starts = due.filter((r) => r.step === 'start');
  const kept = Math.min(reserve, starts.length, limit);
  const first = continuing.slice(0, limit - kept);
  return [...first, ...starts.slice(0, limit - first.length)];
}

/** What a page is compared by: each record's group and due time (records tied in dueAt may come in any order). */
const shape = (records: readonly ProcessRecord[]) => records.map((r) => `${r.step === 'start' ? 'S' : 'C'}@${r.dueAt}`);

describe('memory store due-query under its index', () => {
  for (const seed of [1, 2, 3]) {
    it(`matches a scan of every record through random writes (seed ${seed})`, async () => {
      const rand = seededRandom(seed);
      let now = Date.UTC(2030, 0, 1);
      const store = new MemoryProcessStore({ now: () => now, finishedRetentionMs: 3_600_000 });
      const ids: string[] = [];
      const pick = () => ids[Math.floor(rand() * ids.length)] as string;
      let compared = 0;
      for (let i = 0; i < 4_000; i += 1) {
        const action = rand();
        if (action < 0.15 || ids.length === 0) {
          const id = `p${ids.length}`;
          ids.push(id);
          await store.create({
            processId: id,
            customer: 'C0',
            correlationId: `c-${id}`,
            dueAt: now + (rand() - 0.3) * 5_000,
          });
        } else if (action < 0.4) {
          // A replica takes a lease (or fails to), then records a wait, moves on, or finishes.
          const id = pick();
          const owner = rand() < 0.5 ? 'a' : 'b';
          const leased = await store.tryLease(id, owner, 1_000 + Math.floor(rand() * 4_000));
          if (leased !== undefined) {
            const next = rand();
            if (next < 0.5) {
              await store.update(
                id,
                owner,
                { step: 'await_signature', dueAt: now + rand() * 8_000 },
                { release: true },
              );
            } else if (next < 0.65) {
              await store.update(id, owner, { step: 'done', outcome: 'issued', dueAt: now }, { release: true });
            } else if (next < 0.8) {
              await store.update(id, owner, { step: 'issue', lookupKey: `k-${id}` }, { renewLeaseMs: 3_000 });
            }
            // else: the replica keeps the lease and never writes again (it crashed); the lease expires.
          }
        } else if (action < 0.5) {
          await store.renewLease(pick(), rand() < 0.5 ? 'a' : 'b', 2_000);
        } else if (action < 0.55) {
          await store.wakeByLookupKey(`k-${pick()}`);
        } else {
          // Time passes — now and then the wall clock steps back a little.
          now += rand() < 0.05 ? -Math.floor(rand() * 500) : Math.floor(rand() * 400);
          const all = (await Promise.all(ids.map((id) => store.get(id)))).filter((r) => r !== undefined);
          const want = expectedDue(all, now);
          const limit = 1 + Math.floor(rand() * 40);
          const reserve = rand() < 0.5 ? 0 : Math.floor(rand() * 8);
          const got = await store.findDue(now, limit, { reserveForStarts: reserve });
          // Ties in dueAt may come in any order: compare groups and due times in order, and that each one is due.
          expect(shape(got)).toEqual(shape(expectedPage(want, limit, reserve)));
          const wanted = new Set(want.map((r) => r.processId));
          for (const r of got) expect(wanted.has(r.processId)).toBe(true);
          expect(got.every((r) => r === all.find((a) => a.processId === r.processId))).toBe(true);

          const active = all.filter((r) => r.step !== 'done');
          const next = await store.nextDueAt();
          if (active.length === 0) expect(next).toBeUndefined();
          else if (want.length === 0) expect(next).toBe(Math.min(...active.map(workableAt)));
          else expect(next).toBeLessThanOrEqual(now); // something is workable already: scan at once
          compared += 1;
        }
      }
      expect(compared).toBeGreaterThan(500);
    });
  }

  it('keeps its index bounded by the records it holds, however often they are rewritten', async () => {
    let now = 0;
    const store = new MemoryProcessStore({ now: () => now });
    for (let i = 0; i < 100; i += 1) {
      await store.create({ processId: `p${i}`, customer: 'C0', correlationId: `c${i}`, dueAt: now });
    }
    for (let round = 0; round < 200; round += 1) {
      for (let i = 0; i < 100; i += 1) {
        await store.tryLease(`p${i}`, 'a', 1_000);
        await store.update(`p${i}`, 'a', { dueAt: now + 10_000 }, { release: true });
      }
      now += 1; // nothing comes due: every entry left behind is stale, none is dropped by a scan
    }
    const index = (store as unknown as { dueIndex: { size: number } }).dueIndex;
    expect(index.size).toBeLessThanOrEqual(4 * 100 + 1_024 + 1);
    expect((await store.findDue(now + 10_000, 500)).length).toBe(100);
  });
});
