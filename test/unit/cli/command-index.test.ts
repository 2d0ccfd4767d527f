/**
 * `certprov --help` loads no command module and no SDK (the commands are loaded on use), and the index it prints
 * says what each command says about itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/main.ts';

const MAIN = path.resolve(import.meta.dirname, '../../../src/main.ts');

/** Runs `certprov ARGS` recording every module it loads (a module.registerHooks resolve hook). */
function loadedModules(args: readonly string[]): { status: number | null; modules: string[]; stdout: string } {
  const hook = [
    "import { registerHooks } from 'node:module';",
    'const seen = [];',
    'registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });',
    "import { writeFileSync } from 'node:fs';",
    "process.on('exit', () => writeFileSync(process.env.CERTPROV_LOADED_FILE, JSON.stringify(seen)));",
  ].join('\n');
  const dir = mkdtempSync(path.join(tmpdir(), 'certprov-loaded-'));
  try {
    const file = path.join(dir, 'loaded.json');
    const child = spawnSync(
      process.execPath,
      ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, MAIN, ...args],
      { encoding: 'utf8', env: { ...process.env, CERTPROV_LOADED_FILE: file } },
    );
    return { status: child.status, modules: JSON.parse(readFileSync(file, 'utf8')) as string[], stdout: child.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HEAVY =
  /node_modules\/(@google-cloud|@azure|google-auth-library|google-gax|@grpc|prom-client|pino|zod|yaml|@peculiar)\//;

describe('the command index', () => {
  it('certprov --help loads no command module and no SDK', () => {
    const run = loadedModules(['--help']);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('certprov run --config FILE');
    expect(run.modules.length).toBeGreaterThan(0);
    expect(run.modules.filter((m) => HEAVY.test(m))).toEqual([]);
    expect(run.modules.filter((m) => /\/src\/cli\/(?!command\.ts|failure\.ts)/.test(m))).toEqual([]);
  });

  it('certprov run --help loads no Google or Azure SDK', () => {
    const run = loadedModules(['run', '--help']);
    expect(run.status).toBe(0);
    expect(run.modules.filter((m) => /node_modules\/(@google-cloud|@azure|google-gax|@grpc)\//.test(m))).toEqual([]);
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))('%s: the index says what the command says', async (_, entry) => {
    const command = await entry.load();
    expect({ name: entry.name, usage: entry.usage, summary: entry.summary }).toEqual({
      name: command.name,
      usage: command.usage,
      summary: command.summary,
    });
  });
});
