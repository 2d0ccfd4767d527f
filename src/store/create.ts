import type { Config } from '../config/load.ts';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { MemoryProcessStore } from './memory.ts';
import type { ProcessStore } from './types.ts';

/** Builds the store named by `config.store`. */
export function createStore(config: Config, _log: Logger): Promise<ProcessStore> {
  if (config.store.type === 'memory') {
    return Promise.resolve(new MemoryProcessStore({ finishedRetentionMs: config.scheduler.finishedRetentionMs }));
  }
  return Promise.reject(new ConfigError(['store.type: firestore is not available in this build yet'], config.source));
}
