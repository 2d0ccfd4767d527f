/** Library warnings never reach the JSON log stream as plain text: they go through one sink, noise at debug. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  isNoiseWarning,
  routeProcessWarnings,
  type ProcessWarning,
} from '../../../src/observability/process-warnings.ts';

describe('process warnings', () => {
  it("are handed to the sink, with gcp-metadata's MetadataLookupWarning marked as noise", () => {
    const seen: [ProcessWarning, boolean][] = [];
    routeProcessWarnings((warning, noise) => seen.push([warning, noise]));
    process.emitWarning(
      'received unexpected error = All promises were rejected code = UNKNOWN',
      'MetadataLookupWarning',
    );
    process.emitWarning('something a client library wants said', { type: 'DeprecationWarning', code: 'DEP_X' });
    expect(seen).toEqual([
      [
        {
          name: 'MetadataLookupWarning',
          message: 'received unexpected error = All promises were rejected code = UNKNOWN',
        },
        true,
      ],
      [{ name: 'DeprecationWarning', message: 'something a client library wants said', code: 'DEP_X' }, false],
    ]);
    expect(isNoiseWarning({ name: 'DeprecationWarning', message: '' })).toBe(false);
  });

  it('are not printed by Node as plain text once routed (a real process)', () => {
    const script = [
      "const { routeProcessWarnings } = await import('./src/observability/process-warnings.ts');",
      "routeProcessWarnings((w, noise) => console.log(JSON.stringify({ severity: noise ? 'DEBUG' : 'WARNING', warning: w.name, message: w.message })));",
      "process.emitWarning('probe failed', 'MetadataLookupWarning');",
    ].join('\n');
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout.trim())).toEqual({
      severity: 'DEBUG',
      warning: 'MetadataLookupWarning',
      message: 'probe failed',
    });
  });
});
