/**
 * The store contract against Firestore (the emulator from the global setup): two store instances — two clients, as
 * two replicas would have — over one fresh collection per test. Then what the Firestore store keeps in memory of the
 * records it works on (src/store/firestore-remembered.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { describeStoreContract } from './store-contract.ts';
import { firestoreTestStore, uniqueCollection } from '../support/firestore.ts';
import type { FirestoreProcessStore } from '../../src/store/firestore.ts';

describeStoreContract('firestore', {
  open: (clock, retentionMs) => {
    const collection = uniqueCollection('contract');
    const options = { collection, now: clock, finishedRetentionMs: retentionMs };
    const store = firestoreTestStore(options);
    const peer = firestoreTestStore(options);
    return Promise.resolve({ store, peer, close: async () => void (await Promise.all([store.close(), peer.close()])) });
  },
});

describe('firestore store: what it remembers of waiting processes', () => {
  let store: FirestoreProcessStore | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  it('remembers the records it works on, not the ones it released or rescheduled to wait', async () => {
    let t = Date.UTC(2030, 0, 1);
    const recent = 3;
    const s = (store = firestoreTestStore({ now: () => t, rememberRecent: recent }));
    const ids = Array.from({ length: 12 }, (_, i) => `p${i}`);
    await Promise.all(ids.map((id) => s.create({ processId: id, customer: 'C0', correlationId: `c-${id}`, dueAt: t })));
    // The due scan finds them all; this replica leases each and asks its device (one step, lease held).
    expect((await s.findDue(t, 100)).map((r) => r.processId).sort()).toEqual([...ids].sort());
    const leased = await Promise.all(ids.map((id) => s.tryLease(id, 'replica-a', 30_000)));
    expect(leased.every((r) => r !== undefined)).toBe(true);
    expect(s.rememberedRecords).toBe(ids.length); // all about to be written again under their lease
    // The devices sleep: each wait releases the lease with the next check later.
    const waiting = await Promise.all(
      ids.map((id) => s.update(id, 'replica-a', { step: 'await_signature', dueAt: t + 200 }, { release: true })),
    );
    expect(s.rememberedRecords).toBe(recent);
    // The checks come due: the scan brings each record back; each further check is claimed without a lease.
    t += 200;
    expect(await s.findDue(t, 100)).toHaveLength(ids.length);
    expect(s.rememberedRecords).toBe(ids.length);
    const claimed = await Promise.all(waiting.map((r) => s.reschedule(r.processId, r.version, t + 15_000)));
    expect(claimed.every((r) => r !== undefined)).toBe(true);
    expect(s.rememberedRecords).toBe(recent);
    // The check that finds a device signed takes the lease right after its claim: the claim is still there to
    // write on, and the record is the one claimed.
    const last = claimed.at(-1);
    const acting = await s.tryLease(last?.processId ?? '', 'replica-a', 30_000);
    expect(acting?.version).toBe((last?.version ?? 0) + 1);
  });
});
