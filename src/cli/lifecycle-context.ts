/**
 * What the lifecycle commands (`status`, `certs`, `revoke`) share: the configuration's store, opened read-write
 * with a logger on stderr (stdout carries the command's answer), and a cancellation context.
 */
import type { StepContext } from '../ca/types.ts';
import { loadConfigFile, type Config } from '../config/load.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { createStore } from '../store/create.ts';
import type { ProcessStore } from '../store/types.ts';
import { configPath } from './command.ts';

export interface LifecycleSession {
  readonly config: Config;
  readonly store: ProcessStore;
  readonly log: Logger;
  readonly ctx: StepContext;
  close(): Promise<void>;
}

export async function openLifecycleSession(configFile: string | undefined): Promise<LifecycleSession> {
  const config = await loadConfigFile(configPath(configFile), 'run');
  const log = createLogger({ level: config.log.level, destination: process.stderr });
  // Not the sole user: the commands run beside a running adapter on the same store (sqlite file included).
  const store = await createStore(config, log, { soleUse: false });
  const abort = new AbortController();
  return { config, store, log, ctx: { signal: abort.signal, log }, close: () => store.close() };
}
