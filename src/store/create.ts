import type { Config } from '../config/load.ts';
import type { Logger } from '../observability/logger.ts';
import { MemoryProcessStore } from './memory.ts';
import type { ProcessStore } from './types.ts';

/**
 * Builds the store named by `config.store`. The Firestore store is imported on demand: its client (gRPC, protobuf
 * descriptors) costs start-up time and memory that the demo and single-replica trials with the memory store never
 * need.
 */
export async function createStore(config: Config, log: Logger): Promise<ProcessStore> {
  if (config.store.type === 'memory') {
    return new MemoryProcessStore({ finishedRetentionMs: config.scheduler.finishedRetentionMs });
  }
  const { FirestoreProcessStore } = await import('./firestore.ts');
  const { projectId, databaseId, collection } = config.store;
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
