/**
 * The store contract against SQLite: two store objects — two connections, as the adapter and a CLI reading the
 * file would have — over one fresh database file per test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteProcessStore } from '../../src/store/sqlite.ts';
import { describeStoreContract } from './store-contract.ts';

describeStoreContract('sqlite', {
  open: async (clock, retentionMs) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'certprov-sqlite-contract-'));
    const options = { path: path.join(dir, 'certprov.db'), now: clock, finishedRetentionMs: retentionMs };
    const store = new SqliteProcessStore(options);
    const peer = new SqliteProcessStore(options);
    return {
      store,
      peer,
      close: async () => {
        await Promise.all([store.close(), peer.close()]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
