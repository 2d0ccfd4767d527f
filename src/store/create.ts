import type { Config } from '../config/load.ts';
import { LogBudget } from '../observability/log-budget.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { MemoryProcessStore } from './memory.ts';
import type { CheckpointFailure } from './sqlite-checkpointer.ts';
import type { ProcessStore } from './types.ts';

/** WARNING lines about failed WAL checkpoints: one a minute at most (a failing round repeats every 250 ms). */
const CHECKPOINT_FAILURE_LOG_BUDGET = { perWindow: 1, windowMs: 60_000 } as const;

/**
 * What the sqlite store does with a failed WAL checkpoint: counts every one in
 * `certprov_store_checkpoint_failures_total` (both `where` values exported at 0 from the start, so an alert can rate
 * them) and logs a WARNING — at most one a minute, the next saying how many were held back.
 */
export function checkpointFailureReporter(
  file: string,
  log: Logger,
  metrics: Metrics | undefined,
  now: () => number = Date.now,
): (failure: CheckpointFailure) => void {
  for (const where of ['worker', 'connection'] as const) metrics?.storeCheckpointFailures.inc({ where }, 0);
  const budget = new LogBudget({ ...CHECKPOINT_FAILURE_LOG_BUDGET, now });
  return ({ where, error, walPages }) => {
    metrics?.storeCheckpointFailures.inc({ where });
    const allowed = budget.take();
    if (allowed === undefined) return;
    log.warn(
      { path: file, where, error, ...(walPages === undefined ? {} : { walPages }), suppressed: allowed.suppressed },
      where === 'worker'
        ? "sqlite WAL checkpoint worker failed: SQLite's own checkpoints run inside commits from now on (slower); restart the adapter once the volume is healthy"
        : "sqlite WAL checkpoint on the store's connection failed: the WAL grows past its bound until a later one succeeds; check the volume (free space, I/O errors)",
    );
  };
}

export interface CreateStoreOptions {
  /**
   * Make this process the file's only user (sqlite; `run`). Read-only tools (probes) leave it off so they can look at
   * the file of a running adapter. Default true.
   */
  readonly soleUse?: boolean;
  /** Where the store's own metrics go (sqlite: failed WAL checkpoints). */
  readonly metrics?: Metrics;
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
      onCheckpointFailure: checkpointFailureReporter(store.path, log, options.metrics),
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
