/**
 * WAL checkpoints of the SQLite store (src/store/sqlite.ts) off the event loop.
 *
 * SQLite's own automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages: on the connection
 * that commits — the adapter's, on the event loop — it copies every page of the WAL into the database file and
 * fsyncs both, while the 32 processes in flight wait. The store turns it off on its connection
 * (`PRAGMA wal_autocheckpoint = 0`) and runs `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own in a worker
 * thread instead: a passive checkpoint takes no lock a writer needs, so commits go on while it copies.
 *
 * Cadence: at most one round at a time, started by the first commit at least `intervalMs` after the previous round
 * ended or the store opened (no commit, no round: an idle store does nothing, a reading one starts no worker). SQLite restarts the WAL from its beginning at the first
 * write after a round that copied all of it; a round copies what the WAL held when it began, so under a steady
 * stream of commits the WAL may keep growing past rounds that never quite catch up. A round that reports the WAL at
 * `maxWalPages` or more is therefore finished on the store's own connection, between two transactions: it copies
 * only the little the worker left, and the next write restarts the WAL — the WAL stays bounded.
 *
 * A failure is never silent: the store is told of each ({@link CheckpointFailure}; src/store/create.ts counts it in
 * `certprov_store_checkpoint_failures_total` and logs a WARNING at most once a minute).
 *
 * Durability is SQLite's: a checkpoint syncs the WAL before it copies and the database file before it marks the
 * pages copied, so a crash in the middle loses nothing; the WAL is only reused once its pages are in the database.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export interface CheckpointOptions {
  /** A round starts no sooner than this after the previous one ended. Default 250 ms. */
  readonly intervalMs?: number;
  /** A round that finds the WAL at this many pages or more is finished on the store's connection. Default 16,000. */
  readonly maxWalPages?: number;
}

export const CHECKPOINT_DEFAULTS = { intervalMs: 250, maxWalPages: 16_000 } as const;

/** What `PRAGMA wal_checkpoint` answers: pages in the WAL, and how many of them are now in the database. */
export interface CheckpointResult {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

/** A checkpoint that failed, for a log line and a metric (the store's `onCheckpointFailure`). */
export interface CheckpointFailure {
  /**
   * `worker`: the worker could not open the file or a round threw — the store falls back to SQLite's own checkpoints
   * for good (bounded WAL, slower commits). `connection`: finishing a round on the store's connection threw — the WAL
   * is not restarted and grows past `maxWalPages` until a later round succeeds.
   */
  readonly where: 'worker' | 'connection';
  /** SQLite's message (names the file at most; no record data). */
  readonly error: string;
  /** Pages in the WAL when the round ended (`connection`). */
  readonly walPages?: number;
}

type WorkerReply = ({ readonly ok: true } & CheckpointResult) | { readonly ok: false; readonly error: string };

/**
 * The worker, as source (a worker from a file would need the file's path after `tsc` rewrote it to `.js`): one
 * connection on the file, one passive checkpoint per message, the result posted back.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
let db;
try {
  db = new DatabaseSync(workerData.file);
} catch (error) {
  parentPort.postMessage({ ok: false, error: String((error && error.message) || error) });
}
parentPort.on('message', (message) => {
  if (message === 'close' || db === undefined) {
    if (db !== undefined) db.close();
    parentPort.close();
    return;
  }
  try {
    const row = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
    parentPort.postMessage({ ok: true, busy: row.busy, log: row.log, checkpointed: row.checkpointed });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: String((error && error.message) || error) });
  }
});
`;

export interface CheckpointerHooks {
  /** Runs a passive checkpoint on the store's own connection (between two transactions) and returns its result. */
  readonly checkpointHere: () => CheckpointResult;
  /** The worker failed (it could not open the file, a checkpoint threw): the store checkpoints as SQLite would. */
  readonly onFailure: (error: string) => void;
  /** Told of every failed checkpoint, after the store's own handling (see {@link CheckpointFailure}). */
  readonly observe?: (failure: CheckpointFailure) => void;
  /** Rounds done by the worker, and rounds finished on the store's connection, are counted here. */
  readonly counters: { checkpoints: number; checkpointsHere: number };
}

export class WalCheckpointer {
  private readonly intervalMs: number;
  private readonly maxWalPages: number;
  private worker: Worker | undefined;
  private running = false;
  private failed = false;
  /** When the last round ended; opening counts as one, so a store that only reads never starts the worker. */
  private lastEnded = performance.now();
  private idle: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  private readonly file: string;
  private readonly hooks: CheckpointerHooks;

  constructor(file: string, hooks: CheckpointerHooks, options: CheckpointOptions = {}) {
    this.file = file;
    this.hooks = hooks;
    this.intervalMs = options.intervalMs ?? CHECKPOINT_DEFAULTS.intervalMs;
    this.maxWalPages = options.maxWalPages ?? CHECKPOINT_DEFAULTS.maxWalPages;
  }

  /** Called after each commit: starts a round when none runs and the last one ended `intervalMs` ago or more. */
  committed(): void {
    if (this.running || this.failed || this.closing !== undefined) return;
    if (performance.now() - this.lastEnded < this.intervalMs) return;
    this.running = true;
    try {
      this.workerNow().postMessage('checkpoint');
    } catch (error) {
      this.fail(error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * Waits for the round in flight, then stops the worker (the store's connection then closes last). Every call
   * answers with the same promise, and no round starts once closing began.
   */
  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    if (this.running) await new Promise<void>((resolve) => (this.idle = resolve));
    const worker = this.worker;
    if (worker === undefined) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    await exited;
  }

  private workerNow(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.file } });
    worker.unref();
    worker.on('message', (reply: WorkerReply) => this.roundEnded(reply));
    worker.on('error', (error: Error) => this.fail(error.message));
    worker.on('exit', () => {
      this.worker = undefined;
      if (this.running) this.fail('the checkpoint worker exited');
    });
    this.worker = worker;
    return worker;
  }

  private roundEnded(reply: WorkerReply): void {
    if (!reply.ok) {
      this.fail(reply.error);
      return;
    }
    this.hooks.counters.checkpoints += 1;
    if (reply.log >= this.maxWalPages) {
      try {
        this.hooks.checkpointHere();
        this.hooks.counters.checkpointsHere += 1;
      } catch (error) {
        // The next round tries again; a file that cannot be written fails the store's writes themselves. Until a
        // round succeeds the WAL grows past its bound: said, not swallowed.
        this.hooks.observe?.({
          where: 'connection',
          error: error instanceof Error ? error.message : String(error),
          walPages: reply.log,
        });
      }
    }
    this.finishRound();
  }

  private fail(error: string): void {
    if (this.failed) return;
    this.failed = true;
    this.hooks.onFailure(error);
    this.hooks.observe?.({ where: 'worker', error });
    this.finishRound();
  }

  private finishRound(): void {
    this.running = false;
    this.lastEnded = performance.now();
    this.idle?.();
    this.idle = undefined;
  }
}
