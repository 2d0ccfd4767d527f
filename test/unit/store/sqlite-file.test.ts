/**
 * `check-config`'s look at the sqlite store's file (src/store/sqlite-file.ts): it refuses what the store would refuse
 * at open, accepts what the store would open or create — a fresh file, one the store wrote, an empty file, a missing
 * directory under a writable one — and creates nothing while looking.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqliteFileProblem } from '../../../src/store/sqlite-file.ts';
import { SqliteProcessStore } from '../../../src/store/sqlite.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'certprov-sqlite-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What the store itself says when it opens `file`: undefined if it opens. */
async function storeOpens(file: string): Promise<string | undefined> {
  try {
    const store = new SqliteProcessStore({ path: file });
    await store.close();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('sqliteFileProblem', () => {
  it('accepts a missing file under missing directories of a writable one, and creates neither', async () => {
    const file = path.join(dir, 'a', 'b', 'certprov.db');
    expect(await sqliteFileProblem(file)).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
    expect(await storeOpens(file)).toBeUndefined();
  });

  it('accepts a file the store wrote, and an empty file (SQLite takes it for a new database)', async () => {
    const file = path.join(dir, 'certprov.db');
    expect(await storeOpens(file)).toBeUndefined();
    expect(await sqliteFileProblem(file)).toBeUndefined();
    const empty = path.join(dir, 'empty.db');
    writeFileSync(empty, '');
    expect(await sqliteFileProblem(empty)).toBeUndefined();
    expect(await storeOpens(empty)).toBeUndefined();
  });

  it('refuses a path below a regular file, as the store does', async () => {
    writeFileSync(path.join(dir, 'file'), 'x');
    const file = path.join(dir, 'file', 'sub', 'certprov.db');
    expect(await sqliteFileProblem(file)).toMatch(
      /cannot create .*certprov\.db: .*\/file is not a directory \(ENOTDIR\)/,
    );
    expect(await storeOpens(file)).toMatch(/ENOTDIR/);
  });

  it('refuses a file that is not a SQLite database, and a directory where the file should be', async () => {
    const file = path.join(dir, 'certprov.db');
    writeFileSync(file, 'store:\n  type: sqlite\n'.repeat(20));
    expect(await sqliteFileProblem(file)).toMatch(/certprov\.db is not a SQLite database/);
    expect(await storeOpens(file)).toMatch(/not a database/);
    expect(await sqliteFileProblem(dir)).toMatch(/is not a regular file/);
  });

  it('refuses a file of a layout version this adapter does not know, and names the versions it reads', async () => {
    const file = path.join(dir, 'newer.db');
    const db = new DatabaseSync(file);
    db.exec('CREATE TABLE t (x)');
    db.exec('PRAGMA user_version = 7');
    db.close();
    expect(await sqliteFileProblem(file)).toMatch(/has layout version 7; this adapter reads 1 and 2/);
    expect(await storeOpens(file)).toMatch(/layout version 7/);
  });

  // The kernel answers ENOENT for a directory made under /proc; `access` alone says writable to root.
  it.runIf(existsSync('/proc/self'))('refuses a path under /proc at once, without hanging', async () => {
    expect(await sqliteFileProblem('/proc/certprov-no-such/certprov.db')).toMatch(
      /cannot create .*: \/proc is on the proc file system/,
    );
  });
});
