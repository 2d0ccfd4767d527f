import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { WalCheckpointer, type CheckpointResult } from '../../../src/store/sqlite-checkpointer.ts';

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
