/**
 * `certprov demo` writes only where it may: it never deletes files it did not write, checks the output directory
 * before any work, falls back to a temporary directory (and says where) when the working directory is read-only,
 * names leaves so that no file starts with `-`, and at its time cap keeps and reports what finished.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MANIFEST, leafFileName, prepareDemoOutput } from '../../../src/cli/demo-output.ts';
import { UsageError } from '../../../src/cli/command.ts';
import { certprov } from '../../support/certprov-cli.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-demo-out-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the demo output directory', () => {
  it('refuses a non-empty directory it did not write, touching nothing', async () => {
    const dir = path.join(work, 'someone-elses');
    await mkdir(dir);
    await writeFile(path.join(dir, 'server.pem'), 'precious');
    await expect(prepareDemoOutput(dir, true)).rejects.toThrow(UsageError);
    expect(await readdir(dir)).toEqual(['server.pem']);
  });

  it('replaces only the files an earlier demo wrote', async () => {
    const dir = path.join(work, 'earlier-demo');
    const first = await prepareDemoOutput(dir, true);
    await first.write('ca.pem', 'old ca');
    await first.write(leafFileName('old-process'), 'old leaf');
    await writeFile(path.join(dir, 'mine.pem'), 'added by hand since');
    const second = await prepareDemoOutput(dir, true);
    await second.write('ca.pem', 'new ca');
    expect((await readdir(dir)).sort()).toEqual([DEMO_MANIFEST, 'ca.pem', 'mine.pem']);
    expect(await readFile(path.join(dir, 'mine.pem'), 'utf8')).toBe('added by hand since');
    expect(await readFile(path.join(dir, DEMO_MANIFEST), 'utf8')).toBe('ca.pem\n');
  });

  it('leaf names never start with "-" (process ids may)', () => {
    expect(leafFileName('-xYz_09')).toBe('process--xYz_09.pem');
    expect(leafFileName('../etc')).not.toContain('/');
  });

  it('in a read-only working directory, the default falls back to a temporary directory and says where', async () => {
    // /sys refuses new entries even to root: a read-only working directory like the container image's.
    const run = await certprov(['demo', '--count', '2'], { cwd: '/sys' });
    expect(run.code, run.stderr).toBe(0);
    const note = /note: \/sys\/demo-output is not writable .*: writing to (\S+) instead/.exec(run.stdout);
    expect(note, run.stdout).not.toBeNull();
    const fallback = note?.[1] ?? '';
    try {
      const files = await readdir(fallback);
      expect(files.filter((f) => f.startsWith('process-'))).toHaveLength(2);
      expect(files).toContain('ca.pem');
    } finally {
      await rm(fallback, { recursive: true, force: true });
    }
  });

  it('an explicit --out that cannot be written fails before any work (exit 2)', async () => {
    const run = await certprov(['demo', '--count', '2', '--out', '/sys/certprov-demo']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('cannot write to /sys/certprov-demo: give a writable directory with --out');
    expect(run.stdout).not.toContain('processes, sandbox tenant');
  });

  it('at the time cap it keeps what finished and reports the rest as unfinished', async () => {
    const out = path.join(work, 'capped');
    const run = await certprov(['demo', '--count', '400', '--max-wait', '1', '--out', out]);
    expect(run.code).toBe(1);
    const unfinished = /unfinished\s+(\d+) \(stopped waiting after 1 s; what finished is kept\)/.exec(run.stdout);
    expect(unfinished, run.stdout).not.toBeNull();
    const issued = Number(/^ {2}issued\s+(\d+)$/m.exec(run.stdout)?.[1]);
    expect(Number(unfinished?.[1])).toBeGreaterThan(0);
    const leaves = (await readdir(out)).filter((f) => f.startsWith('process-'));
    expect(leaves).toHaveLength(issued);
  });
});
