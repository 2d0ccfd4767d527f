/**
 * The adapter against the cost floor, in one run (issue 15): the same processes (devices sign within 5 ms), the
 * sandbox in another OS process, first the floor (bench/support/floor.ts: only the unavoidable work), then the
 * adapter on the memory and the sqlite store. Reports adapter/floor throughput (target ≥ 0.8), adapter/floor CPU
 * per certificate (target ≤ 1.5) and the latency the adapter adds (p50, p99), per-process latency being measured by
 * the sandbox from the first request for a process to its uploadCertificate.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SandboxProcess } from '../support/sandbox-process.ts';
import { runFloor } from '../support/floor.ts';
import {
  benchConfig,
  benchLogger,
  benchWorkDir,
  standaloneCa,
  startAdapter,
  type BenchStore,
  type StoreOps,
} from '../support/adapter-under-test.ts';
import { percentile, type BenchFigure, type BenchScenario } from '../scenario.ts';
import { DEFAULTS } from '../../src/config/schema.ts';

const SIGN_DELAY_MS = 5;
/** The first signature check (the tenant helper's 100–250 ms range); the floor waits as long before its first check. */
const FIRST_POLL_MS = 200;
const CONCURRENCY = 32;
/**
 * chrome.rateLimit is a quota guard, not a cost: at its default (2,400 requests/min per replica set) it alone caps a
 * replica set at 8 processes/s, below what the floor does here. The sandbox has no quota and the floor keeps no
 * budget, so the adapter runs with a budget beyond reach (it still takes a token per request) and the cap the
 * default sets is reported apart, from the requests per certificate measured.
 */
const UNBOUNDED_RATE = 10_000_000;

/**
 * `CERTPROV_BENCH_CPU_PROFILE=DIR npm run bench -- floor` writes a V8 CPU profile of each adapter's measured run
 * (`floor-memory.cpuprofile`, `floor-sqlite.cpuprofile`; open in Chrome DevTools): the adapter runs in this process,
 * so `node --cpu-prof` would mix the floor and both stores into one profile. The figures of a profiled run carry the
 * profiler's overhead: profile and measure in separate runs.
 */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  const dir = process.env.CERTPROV_BENCH_CPU_PROFILE;
  if (dir === undefined || dir === '') return work();
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const result = await work();
    const { profile } = await session.post('Profiler.stop');
    await writeFile(path.join(dir, `floor-${name}.cpuprofile`), JSON.stringify(profile));
    return result;
  } finally {
    session.disconnect();
  }
}

function opsSince(before: StoreOps, after: StoreOps): StoreOps {
  return {
    reads: after.reads - before.reads,
    writes: after.writes - before.writes,
    tokens: after.tokens - before.tokens,
    commits: after.commits - before.commits,
    fsyncs: after.fsyncs - before.fsyncs,
    checkpoints: after.checkpoints - before.checkpoints,
    checkpointsHere: after.checkpointsHere - before.checkpointsHere,
  };
}

/** Chrome API requests served since `before`, all methods together. */
function requestsSince(before: Record<string, number>, after: Record<string, number>): number {
  return Object.entries(after).reduce((sum, [method, n]) => sum + n - (before[method] ?? 0), 0);
}

interface Run {
  readonly seconds: number;
  readonly cpuMsPerCert: number;
  readonly latencies: number[];
  readonly requestsPerCert: number;
  readonly storeOps?: StoreOps;
}

async function measure(
  sandbox: SandboxProcess,
  count: number,
  work: () => Promise<void>,
): Promise<Omit<Run, 'latencies' | 'requestsPerCert'>> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { seconds, cpuMsPerCert: (used.user + used.system) / 1000 / count };
}

async function latencies(sandbox: SandboxProcess, ids: readonly string[]): Promise<number[]> {
  const timeline = await sandbox.timeline(ids);
  return timeline
    .filter((t): t is [number, number] => t[0] !== null && t[1] !== null)
    .map(([a, b]) => b - a)
    .sort((a, b) => a - b);
}

const scenario: BenchScenario = {
  name: 'floor',
  description: 'adapter vs the cost floor on the same processes (sandbox in another process)',
  async run({ quick, smoke }) {
    const count = smoke ? 40 : quick ? 500 : 5_000;
    const sandbox = await SandboxProcess.start();
    const work = await benchWorkDir();
    const overrides = {
      scheduler: { signaturePollInitial: `${FIRST_POLL_MS}ms`, maxConcurrent: CONCURRENCY },
      chrome: { rateLimit: { requestsPerMinute: UNBOUNDED_RATE } },
    };
    try {
      let finished = 0;
      // The floor.
      const floorConfig = benchConfig(sandbox.endpoint, work, 'memory', overrides);
      const ca = await standaloneCa(floorConfig);
      const floorOptions = {
        endpoint: sandbox.endpoint,
        customer: floorConfig.chrome.customer,
        ca,
        profiles: floorConfig.profiles,
        concurrency: CONCURRENCY * 4,
        pollMs: FIRST_POLL_MS,
        log: benchLogger(floorConfig),
      };
      await runFloor(floorOptions, await sandbox.create(Math.min(20, count), SIGN_DELAY_MS)); // warm-up
      finished += Math.min(20, count);
      const floorIds = await sandbox.create(count, SIGN_DELAY_MS);
      const floorRequests = await sandbox.requests();
      const floor = {
        ...(await measure(sandbox, count, () => runFloor(floorOptions, floorIds))),
        latencies: await latencies(sandbox, floorIds),
        requestsPerCert: requestsSince(floorRequests, await sandbox.requests()) / count,
      };
      finished += count;

      const runs: Record<string, Run> = {};
      for (const store of ['memory', 'sqlite'] as BenchStore[]) {
        const adapter = await startAdapter(benchConfig(sandbox.endpoint, work, store, overrides));
        try {
          // Warm-up, as for the floor: the adapter's own code paths compiled before the clock starts.
          const warm = await sandbox.create(Math.min(20, count), SIGN_DELAY_MS);
          for (const id of warm) adapter.notify(id);
          finished += warm.length;
          await sandbox.waitFinished(warm, 60_000, finished);
          const ids = await sandbox.create(count, SIGN_DELAY_MS);
          const expected = finished + count;
          const before = await sandbox.requests();
          const opsBefore = adapter.storeOps();
          const m = await profiled(store, () =>
            measure(sandbox, count, async () => {
              for (const id of ids) adapter.notify(id);
              await sandbox.waitFinished(ids, 600_000, expected);
            }),
          );
          finished = expected;
          runs[store] = {
            ...m,
            latencies: await latencies(sandbox, ids),
            requestsPerCert: requestsSince(before, await sandbox.requests()) / count,
            storeOps: opsSince(opsBefore, adapter.storeOps()),
          };
        } finally {
          await adapter.stop();
        }
      }
      const figures: BenchFigure[] = [
        { name: 'processes per run', value: count, unit: '' },
        { name: 'floor: throughput', value: count / floor.seconds, unit: 'certificates/s' },
        { name: 'floor: CPU per certificate', value: floor.cpuMsPerCert, unit: 'ms' },
        { name: 'floor: latency p50', value: percentile(floor.latencies, 50), unit: 'ms' },
        { name: 'floor: Chrome API requests per certificate', value: floor.requestsPerCert, unit: '' },
      ];
      for (const [store, run] of Object.entries(runs)) {
        figures.push(
          {
            name: `${store}: throughput / floor`,
            value: count / run.seconds / (count / floor.seconds),
            unit: '',
            target: '≥ 0.8',
          },
          {
            name: `${store}: CPU per certificate / floor`,
            value: run.cpuMsPerCert / floor.cpuMsPerCert,
            unit: '',
            target: '≤ 1.5',
          },
          { name: `${store}: CPU per certificate`, value: run.cpuMsPerCert, unit: 'ms' },
          {
            name: `${store}: added latency p50`,
            value: percentile(run.latencies, 50) - percentile(floor.latencies, 50),
            unit: 'ms',
          },
          {
            name: `${store}: added latency p99`,
            value: percentile(run.latencies, 99) - percentile(floor.latencies, 99),
            unit: 'ms',
          },
          {
            name: `${store}: Chrome API requests per certificate`,
            value: run.requestsPerCert,
            unit: '',
            target: '≤ 5',
          },
          {
            name: `${store}: store writes per certificate (of which Chrome API budget tokens)`,
            value: (run.storeOps?.writes ?? 0) / count,
            unit: `(${((run.storeOps?.tokens ?? 0) / count).toFixed(1)})`,
          },
          {
            name: `${store}: store reads per certificate (due scans included)`,
            value: (run.storeOps?.reads ?? 0) / count,
            unit: '',
          },
          ...(store === 'sqlite'
            ? [
                {
                  name: `${store}: commits per certificate (of which fsynced)`,
                  value: (run.storeOps?.commits ?? 0) / count,
                  unit: `(${((run.storeOps?.fsyncs ?? 0) / count).toFixed(2)})`,
                },
                {
                  name: `${store}: WAL checkpoints per 1,000 certificates (finished on the store's connection)`,
                  value: ((run.storeOps?.checkpoints ?? 0) * 1000) / count,
                  unit: `(${(((run.storeOps?.checkpointsHere ?? 0) * 1000) / count).toFixed(1)})`,
                },
              ]
            : []),
          {
            name: `${store}: certificates/s the default chrome.rateLimit allows`,
            value: DEFAULTS.chrome.rateLimit.requestsPerMinute / 60 / run.requestsPerCert,
            unit: 'per replica set',
          },
        );
      }
      return figures;
    } finally {
      await work.close();
      await sandbox.close();
    }
  },
};
export default scenario;
