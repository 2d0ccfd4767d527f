import type { Config } from '../config/load.ts';
import type { Logger } from '../observability/logger.ts';
import { MemoryProcessStore } from './memory.ts';
import type { ProcessStore } from './types.ts';

export interface CreateStoreOptions {
  /**
   * Make this process the file's only user (sqlite; `run`). Read-only tools (probes) leave it off so they can look at
   * the file of a running adapter. Default true.
   */
  readonly soleUse?: boolean;
}

/**
 * Builds the store named by `config.store`. The SQLite and Firestore stores are imported on demand: the Firestore
 * client (gRPC, protobuf descriptors) costs start-up time and memory that a single replica never needs.
 */
export async function createStore(
  config: Config,
  log: Logger,
  options: CreateStoreOptions = {},
): Promise<ProcessStore> {
  const store = config.store;
  if (store.type === 'memory') {
    return new MemoryProcessStore({ finishedRetentionMs: config.scheduler.finishedRetentionMs });
  }
  if (store.type === 'sqlite') {
    const { SqliteProcessStore } = await import('./sqlite.ts');
    log.info({ path: store.path, synchronous: store.synchronous }, 'process store: sqlite (one replica)');
    const sqlite = new SqliteProcessStore({
      path: store.path,
      synchronous: store.synchronous,
      finishedRetentionMs: config.scheduler.finishedRetentionMs,
    });
    if (options.soleUse ?? true) {
      try {
        await sqlite.claimSoleUse({
          onLost: (holder) =>
            log.error(
              { path: store.path, holder },
              'another certprov process took over the sqlite store: two replicas share one file; stop one of them',
            ),
        });
      } catch (error) {
        await sqlite.close();
        throw error;
      }
    }
    return sqlite;
  }
  const { FirestoreProcessStore } = await import('./firestore.ts');
  const { projectId, databaseId, collection } = store;
  log.info(
    {
      projectId: projectId ?? '(from environment)',
      databaseId,
      collection,
      emulator: process.env.FIRESTORE_EMULATOR_HOST,
    },
    'process store: Firestore',
  );
  return new FirestoreProcessStore({
    ...(projectId === undefined ? {} : { projectId }),
    databaseId,
    collection,
    finishedRetentionMs: config.scheduler.finishedRetentionMs,
  });
}
