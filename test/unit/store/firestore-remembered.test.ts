/**
 * What the Firestore store remembers of process records (src/store/firestore-remembered.ts): a snapshot while this
 * replica is about to write the record again (leased, due, or among the latest others written), never one per
 * waiting process.
 */
import { describe, expect, it } from 'vitest';
import { RememberedRecords } from '../../../src/store/firestore-remembered.ts';
import { newProcessRecord, nextRecord } from '../../../src/store/new-record.ts';
import type { Lease, ProcessPatch, ProcessRecord } from '../../../src/store/types.ts';

const NOW = 1_000_000;

function record(processId: string, patch: ProcessPatch = {}, lease?: Lease): ProcessRecord {
  const created = newProcessRecord({ processId, customer: 'C0', correlationId: `c-${processId}`, dueAt: NOW }, NOW);
  return nextRecord(created, patch, lease, NOW, 60_000);
}

/** A process waiting for its device: signData sent, unleased, due at its next check. */
const waiting = (processId: string, dueIn = 15_000) =>
  record(processId, { step: 'await_signature', dueAt: NOW + dueIn });

describe('RememberedRecords', () => {
  it('keeps leased and due records, with the update time they were stored at', () => {
    const remembered = new RememberedRecords<string>();
    const leased = record('p1', { step: 'await_signature', dueAt: NOW + 60_000 }, { owner: 'a', expiresAt: NOW + 1 });
    const due = record('p2', { step: 'await_signature', dueAt: NOW });
    remembered.remember(leased, 't1', NOW);
    remembered.remember(due, 't2', NOW);
    expect(remembered.get('p1')).toEqual({ record: leased, updateTime: 't1' });
    expect(remembered.get('p2')).toEqual({ record: due, updateTime: 't2' });
    expect(remembered.size).toBe(2);
  });

  it('forgets finished records, and a record at every new snapshot of it', () => {
    const remembered = new RememberedRecords<string>();
    remembered.remember(record('p1', {}, { owner: 'a', expiresAt: NOW + 10 }), 't1', NOW);
    remembered.remember(record('p1', { step: 'done', outcome: 'issued' }), 't2', NOW);
    expect(remembered.get('p1')).toBeUndefined();
    remembered.remember(record('p2', {}, { owner: 'a', expiresAt: NOW + 10 }), 't1', NOW);
    remembered.remember(waiting('p2'), 't2', NOW);
    expect(remembered.get('p2')?.updateTime).toBe('t2');
    expect(remembered.size).toBe(1);
  });

  it('keeps a waiting record only among the latest others: the write right after a claim still finds it', () => {
    const remembered = new RememberedRecords<number>({ active: 10_000, recent: 3 });
    for (let i = 0; i < 3; i += 1) remembered.remember(waiting(`p${i}`), i, NOW);
    // The claim of p0 is followed by its lease (the check found the device signed): still remembered.
    expect(remembered.get('p0')?.updateTime).toBe(0);
    remembered.remember(waiting('p3'), 3, NOW);
    expect(remembered.get('p0')).toBeUndefined(); // the oldest went
    expect(remembered.get('p3')?.updateTime).toBe(3);
    // Written again, p1 is the latest: p2 is now the oldest and goes next.
    remembered.remember(waiting('p1'), 11, NOW);
    remembered.remember(waiting('p4'), 4, NOW);
    expect(remembered.get('p1')?.updateTime).toBe(11);
    expect(remembered.get('p2')).toBeUndefined();
    expect(remembered.size).toBe(3);
  });

  it('holds no snapshot per waiting process however many wait (scan, claim, release to wait)', () => {
    const remembered = new RememberedRecords<number>();
    const waitingProcesses = 20_000;
    for (let i = 0; i < waitingProcesses; i += 1) {
      const id = `p${i}`;
      remembered.remember(record(id, { step: 'await_signature', dueAt: NOW }), 1, NOW); // found by the due scan
      if (i % 2 === 0)
        remembered.remember(waiting(id), 2, NOW); // a further check claimed (reschedule)
      else {
        remembered.remember(record(id, { step: 'await_signature' }, { owner: 'a', expiresAt: NOW + 30_000 }), 2, NOW);
        remembered.remember(waiting(id), 3, NOW); // the first check released the lease to wait
      }
    }
    expect(remembered.size).toBe(1_024);
  });

  it('judges a lease expired at `now` as no lease', () => {
    const remembered = new RememberedRecords<number>({ active: 10_000, recent: 1 });
    remembered.remember(
      record('p1', { step: 'await_signature', dueAt: NOW + 60_000 }, { owner: 'a', expiresAt: NOW }),
      1,
      NOW,
    );
    remembered.remember(waiting('p2'), 2, NOW);
    expect(remembered.get('p1')).toBeUndefined();
  });
});
