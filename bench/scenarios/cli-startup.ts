/**
 * `npm run bench -- cli-startup`: how long the command line takes to answer `--help` (DESIGN: commands and CA
 * backend SDKs load on use). Each figure is the median of several OS-process runs. Two floors are measured alongside,
 * so the ratios stay comparable when the machine is busy: a bare `node` start-up, and a one-line TypeScript file
 * (what running from src/ costs before any of our code: Node's type stripping). The image runs compiled dist/,
 * whose floor is the bare start-up: when `npm run build` has made dist/, its `--help` is measured too.
 *
 * Time to ready: `certprov run` as an OS process (local CA, sqlite store, the Pub/Sub emulator started here) from
 * spawn to its "adapter started" line (subscribed, scheduler running: /readyz answers 200 from then on), median of
 * several starts. CA backends and the Cloud Storage client load on use, so this is what a deployment with a local CA
 * pays; the SDKs of backends it does not use are not loaded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PubSub } from '@google-cloud/pubsub';
import { AdapterProcess, killAllAdapters, writeAdapterConfig } from '../../test/support/adapter-process.ts';
import { startPubSubEmulator } from '../../test/support/emulators.ts';
import { BENCH_PROJECT, benchRawConfig, benchWorkDir } from '../support/adapter-under-test.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');
/** What the container image runs (`npm run build`). */
const DIST_MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

function medianSeconds(args: readonly string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const started = performance.now();
    const child = spawnSync(process.execPath, args, { stdio: 'ignore' });
    if (child.status !== 0) throw new Error(`node ${args.join(' ')} exited ${String(child.status)}`);
    times.push((performance.now() - started) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

/** Median seconds from spawning `certprov run` (local CA, sqlite store) to its "adapter started" line. */
async function runToReadySeconds(runs: number): Promise<number> {
  const emulator = await startPubSubEmulator();
  const work = await benchWorkDir();
  const pubsub = new PubSub({
    projectId: BENCH_PROJECT,
    apiEndpoint: emulator.host,
    emulatorMode: true,
    universeDomain: 'googleapis.com',
  });
  try {
    const [topic] = await pubsub.createTopic('cli-startup');
    const [subscription] = await topic.createSubscription('cli-startup-sub');
    const configFile = await writeAdapterConfig(
      path.join(work.dir, 'run.json'),
      benchRawConfig('http://127.0.0.1:9', work, 'sqlite', {
        pubsub: { subscription: subscription.name },
        log: { level: 'info' },
      }),
    );
    const times: number[] = [];
    for (let i = 0; i < runs; i += 1) {
      const started = performance.now();
      const replica = AdapterProcess.spawn({
        name: `run-${i}`,
        configFile,
        logFile: path.join(work.dir, `run-${i}.log`),
        env: { PUBSUB_EMULATOR_HOST: emulator.host },
      });
      await replica.waitStarted();
      times.push((performance.now() - started) / 1000);
      await replica.stop();
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)] ?? Number.NaN;
  } finally {
    await killAllAdapters();
    await pubsub.close().catch(() => undefined);
    await emulator.stop();
    await work.close();
  }
}

const scenario: BenchScenario = {
  name: 'cli-startup',
  description: 'certprov --help, a command help and run to ready, against a bare node start-up (medians)',
  async run({ quick }) {
    const runs = quick ? 3 : 9;
    const bare = medianSeconds(['-e', '0'], runs);
    const dir = mkdtempSync(path.join(tmpdir(), 'certprov-bench-'));
    const oneLine = path.join(dir, 'one-line.ts');
    writeFileSync(oneLine, 'const answer: number = 42;\nexport default answer;\n');
    let typescriptFloor: number;
    try {
      typescriptFloor = medianSeconds([oneLine], runs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const help = medianSeconds([MAIN, '--help'], runs);
    const runHelp = medianSeconds([MAIN, 'run', '--help'], runs);
    const checkHelp = medianSeconds([MAIN, 'check-config', '--help'], runs);
    const figures: BenchFigure[] = [
      { name: 'node -e 0 (bare start-up)', value: bare, unit: 's' },
      { name: 'certprov --help', value: help, unit: 's', target: '≤ 0.3 s on an idle machine' },
      { name: 'one-line .ts file (type-stripping floor)', value: typescriptFloor, unit: 's' },
      { name: 'certprov --help / one-line .ts file', value: help / typescriptFloor, unit: '×', target: '≈ 1' },
      { name: 'certprov --help above the .ts floor', value: help - typescriptFloor, unit: 's', target: '≤ 0.3 s' },
      { name: 'certprov run --help', value: runHelp, unit: 's' },
      { name: 'certprov check-config --help', value: checkHelp, unit: 's' },
    ];
    if (existsSync(DIST_MAIN)) {
      const distHelp = medianSeconds([DIST_MAIN, '--help'], runs);
      figures.push(
        { name: 'dist/main.js --help (the image)', value: distHelp, unit: 's', target: '≤ 0.3 s on an idle machine' },
        { name: 'dist/main.js --help / bare start-up', value: distHelp / bare, unit: '×', target: '≈ 1' },
      );
    }
    figures.push({
      name: 'certprov run to ready (local CA, sqlite store)',
      value: await runToReadySeconds(quick ? 3 : 5),
      unit: 's',
    });
    return figures;
  },
};

export default scenario;
