/**
 * `certprov local-ca init` says plainly that a self-signed root issuing leaves directly is for trials and labs (on
 * stderr), while stdout stays the JSON result scripts read.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LAB_ONLY_WARNING, localCaCommand } from '../../../src/cli/local-ca.ts';

const dirs: string[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('local-ca init', () => {
  it('warns on stderr that it is for trials and labs; stdout is the JSON result', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'certprov-local-ca-init-'));
    dirs.push(dir);
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
    vi.spyOn(console, 'error').mockImplementation((line: string) => void err.push(line));
    expect(await localCaCommand.run(['init', '--dir', path.join(dir, 'ca')])).toBe(0);
    expect(() => JSON.parse(out.join('\n')) as unknown).not.toThrow();
    expect(err).toEqual([LAB_ONLY_WARNING]);
    expect(LAB_ONLY_WARNING).toMatch(
      /self-signed root that issues device certificates directly — for trials and labs only/,
    );
    expect(localCaCommand.help).toMatch(/For trials and labs only/);
  });
});
