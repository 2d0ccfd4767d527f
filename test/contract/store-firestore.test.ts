/**
 * The store contract against Firestore (the emulator from the global setup): two store instances — two clients, as
 * two replicas would have — over one fresh collection per test.
 */
import { describeStoreContract } from './store-contract.ts';
import { firestoreTestStore, uniqueCollection } from '../support/firestore.ts';

describeStoreContract('firestore', {
  open: (clock, retentionMs) => {
    const collection = uniqueCollection('contract');
    const options = { collection, now: clock, finishedRetentionMs: retentionMs };
    const store = firestoreTestStore(options);
    const peer = firestoreTestStore(options);
    return Promise.resolve({ store, peer, close: async () => void (await Promise.all([store.close(), peer.close()])) });
  },
});
