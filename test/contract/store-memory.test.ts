/** The store contract against the memory store (one replica: its "peer" is the same object). */
import { MemoryProcessStore } from '../../src/store/memory.ts';
import { describeStoreContract } from './store-contract.ts';

describeStoreContract('memory', {
  open: (clock, retentionMs) => {
    const store = new MemoryProcessStore({ now: clock, finishedRetentionMs: retentionMs });
    return Promise.resolve({ store, peer: store, close: () => store.close() });
  },
});
