import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { checkpointFailureReporter } from '../../../src/store/create.ts';
import {
  WalCheckpointer,
  type CheckpointFailure,
  type CheckpointResult,
} from '../../../src/store/sqlite-checkpointer.ts';
import { SqliteProcessStore } from '../../../src/store/sqlite.ts';
import { LogCapture } from '../../support/adapter-rig.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function walFile(): { file: string; db: DatabaseSync } {
  const dir = mkdtempSync(path.join(tmpdir(), 'certprov-ckpt-'));
  dirs.push(dir);
  const file = path.join(dir, 'store.db');
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x); INSERT INTO t VALUES (1)');
  return { file, db };
}

describe('WalCheckpointer.close', () => {
  it('answers every caller once the round in flight ends, and starts no round after', async () => {
    const { file, db } = walFile();
    const counters = { checkpoints: 0, checkpointsHere: 0 };
    const failures: string[] = [];
    const checkpointer = new WalCheckpointer(
      file,
      {
        checkpointHere: () => db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as unknown as CheckpointResult,
        onFailure: (error) => failures.push(error),
        counters,
      },
      { intervalMs: 0 },
    );
    checkpointer.committed(); // a round is now in flight on the worker
    const first = checkpointer.close();
    const second = checkpointer.close();
    expect(second).toBe(first);
    checkpointer.committed(); // closing: no new round
    let settled = 0;
    await Promise.race([
      Promise.all([first, second]).then(() => (settled = 2)),
      new Promise((resolve) => setTimeout(resolve, 10_000)),
    ]);
    expect(settled).toBe(2);
    expect(counters.checkpoints).toBe(1);
    expect(failures).toEqual([]);
    db.close();
  });
});

/** Waits (real time, bounded) until `done` holds. */
async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('failed checkpoints are told, not swallowed', () => {
  it("a round finished on the store's connection that throws is reported with the WAL's size", async () => {
    const { file, db } = walFile();
    const counters = { checkpoints: 0, checkpointsHere: 0 };
    const observed: CheckpointFailure[] = [];
    const checkpointer = new WalCheckpointer(
      file,
      {
        checkpointHere: () => {
          throw new Error('disk I/O error');
        },
        onFailure: () => undefined,
        observe: (failure) => observed.push(failure),
        counters,
      },
      { intervalMs: 0, maxWalPages: 0 }, // every round is finished on the store's connection
    );
    checkpointer.committed();
    await checkpointer.close(); // waits for the round in flight
    expect(counters).toEqual({ checkpoints: 1, checkpointsHere: 0 });
    expect(observed.map(({ where, error }) => ({ where, error }))).toEqual([
      { where: 'connection', error: 'disk I/O error' },
    ]);
    expect(observed[0]?.walPages).toBeGreaterThan(0);
    db.close();
  });

  it('the store reports a worker that cannot checkpoint its file (here: the path now holds no database)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'certprov-ckpt-'));
    dirs.push(dir);
    const file = path.join(dir, 'store.db');
    const observed: CheckpointFailure[] = [];
    const store = new SqliteProcessStore({
      path: file,
      synchronous: 'normal', // the WAL fsync would reopen the moved -wal by its name
      checkpoint: { intervalMs: 0 },
      onCheckpointFailure: (failure) => observed.push(failure),
    });
    // The store keeps its open files; the worker, which opens the path at its first round, finds something else.
    for (const suffix of ['', '-wal', '-shm']) renameSync(`${file}${suffix}`, `${file}${suffix}.moved`);
    writeFileSync(file, 'not a database, '.repeat(16));
    await store.create({ processId: 'p1', customer: 'C1', correlationId: 'c1', dueAt: 0 });
    await until(() => observed.length > 0);
    await store.close();
    expect(observed.map((f) => f.where)).toEqual(['worker']);
    expect(observed[0]?.error).toMatch(/not a database/);
  });
});

describe('checkpointFailureReporter', () => {
  it('counts every failure and logs one WARNING a minute, the next saying how many were held back', async () => {
    let now = 1_000_000;
    const logs = new LogCapture();
    const metrics = new Metrics({ defaultMetrics: false });
    const report = checkpointFailureReporter(
      '/var/lib/certprov/certprov.db',
      createLogger({ level: 'debug', destination: logs }),
      metrics,
      () => now,
    );
    const count = async () =>
      Object.fromEntries(
        (await metrics.storeCheckpointFailures.get()).values.map((v) => [String(v.labels.where), v.value]),
      );
    expect(await count()).toEqual({ worker: 0, connection: 0 }); // exported from the start, for alerts
    for (let i = 0; i < 240; i += 1) {
      report({ where: 'connection', error: 'disk I/O error', walPages: 16_000 + i });
      now += 250; // a failing round repeats every 250 ms: one minute
    }
    report({ where: 'connection', error: 'disk I/O error', walPages: 17_000 });
    expect(await count()).toEqual({ worker: 0, connection: 241 });
    const warnings = logs.entries().filter((e) => e.severity === 'WARNING');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({
      path: '/var/lib/certprov/certprov.db',
      where: 'connection',
      error: 'disk I/O error',
      walPages: 16_000,
      suppressed: 0,
    });
    expect(warnings[0]?.message).toMatch(/WAL grows past its bound/);
    expect(warnings[1]).toMatchObject({ walPages: 17_000, suppressed: 239 });
    expect(logs.lines).toHaveLength(2);
  });
});
