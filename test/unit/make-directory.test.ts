import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeploymentFaultError } from '../../src/errors.ts';
import { makeDirectorySync } from '../../src/make-directory.ts';
import { SqliteProcessStore } from '../../src/store/sqlite.ts';

const scratch: string[] = [];
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'certprov-mkdir-'));
  scratch.push(dir);
  return dir;
}

describe('makeDirectorySync', () => {
  it('makes every missing level with the mode asked for, and accepts a directory that exists', () => {
    const root = tempDir();
    const leaf = path.join(root, 'a', 'b', 'c');
    makeDirectorySync(leaf, 0o700);
    for (const level of ['a', 'a/b', 'a/b/c']) {
      const stats = statSync(path.join(root, level));
      expect(stats.isDirectory()).toBe(true);
      expect(stats.mode & 0o777).toBe(0o700);
    }
    expect(() => makeDirectorySync(leaf)).not.toThrow();
  });

  it('reports a file in the way', () => {
    const root = tempDir();
    writeFileSync(path.join(root, 'file'), '');
    expect(() => makeDirectorySync(path.join(root, 'file', 'sub'))).toThrow(/ENOTDIR/);
  });

  // Node's recursive mkdir loops forever here (ENOENT from the kernel read as a missing parent).
  it.runIf(existsSync('/proc/self'))('fails at once under /proc instead of looping', () => {
    expect(() => makeDirectorySync('/proc/certprov-no-such/dir')).toThrow(/ENOENT/);
  });

  it.runIf(existsSync('/proc/self'))('the SQLite store fails with the file and a store.path hint', () => {
    const file = '/proc/certprov-no-such/certprov.db';
    let thrown: unknown;
    try {
      new SqliteProcessStore({ path: file });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DeploymentFaultError);
    expect((thrown as DeploymentFaultError).message).toContain(`${file}: ENOENT`);
    expect((thrown as DeploymentFaultError).hint).toMatch(/store\.path/);
  });
});
