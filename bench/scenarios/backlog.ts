/**
 * Holding a backlog (issue 15 item 4): 10,000 processes whose devices take 60 s to sign, on one replica, per store
 * (memory, sqlite), the sandbox in another OS process. Once every device has been asked (signData sent to all), the
 * adapter holds them for a while and the scenario reports what that costs: resident memory and heap per waiting
 * process (after a full GC, against the same adapter before any process arrived), the event-loop delay p99 while
 * holding, store calls and Chrome API requests per waiting process per minute of holding, and — from the signature
 * check schedule of the documented defaults — Chrome requests per sleeping device in its first hour and per hour
 * after that.
 *
 * The memory store holds each message until its process is done, so it can only hold as many processes as
 * pubsub.maxInFlight: it runs with maxInFlight 10,000 here (the default 100 would hold 100 and leave the rest in
 * Pub/Sub). If the replica has not asked every device after half the sleep, the figures are per device asked and
 * the count says how many. The pending-CA-order backlog is measured by the digicert scenario (N = 100 and 1,000
 * orders).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { signaturePollDelay } from '../../src/backoff.ts';
import type { Config } from '../../src/config/load.ts';
import { SandboxProcess } from '../support/sandbox-process.ts';
import { benchConfig, benchWorkDir, startAdapter, type BenchStore } from '../support/adapter-under-test.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';

/**
 * How long the devices take to sign. The issue asks for 60 s, but asking 10,000 devices takes this replica longer
 * than that here (three Chrome requests and two store writes each), so the first would sign before the last was
 * asked: the devices sleep 10 min, and the backlog is whole while it is measured.
 */
const SIGN_DELAY_MS = 600_000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): { rss: number; heap: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

/** Signature checks a device that never signs gets in [from, to) ms after signData, on `config`'s schedule. */
function checksBetween(config: Config, fromMs: number, toMs: number): number {
  const policy = { initialMs: config.scheduler.signaturePollInitialMs, maxMs: config.scheduler.signaturePollMaxMs };
  let checks = 0;
  for (let at = policy.initialMs; at < toMs; at += signaturePollDelay(policy, at)) if (at >= fromMs) checks += 1;
  return checks;
}

const scenario: BenchScenario = {
  name: 'backlog',
  description: '10,000 devices asleep on one replica, per store: memory, event-loop delay, store calls',
  async run({ quick, smoke }) {
    const count = smoke ? 200 : quick ? 1_000 : 10_000;
    const holdMs = smoke ? 3_000 : quick ? 10_000 : 20_000;
    const sandbox = await SandboxProcess.start();
    const work = await benchWorkDir();
    const configOf = (store: BenchStore) =>
      benchConfig(sandbox.endpoint, work, store, {
        pubsub: { maxInFlight: 10_000 },
        chrome: { rateLimit: { requestsPerMinute: 10_000_000 } },
      });
    const defaults = configOf('memory');
    const figures: BenchFigure[] = [
      { name: 'waiting processes', value: count, unit: '' },
      { name: 'holding time measured', value: holdMs / 1000, unit: 's' },
      {
        name: 'Chrome requests per sleeping device, first hour',
        value: checksBetween(defaults, 0, 3_600_000),
        unit: '',
      },
      {
        name: 'Chrome requests per sleeping device per hour, after the first',
        value: checksBetween(defaults, 3_600_000, 7_200_000),
        unit: '',
      },
    ];
    try {
      let issued = 0;
      for (const store of ['memory', 'sqlite'] as BenchStore[]) {
        const adapter = await startAdapter(configOf(store));
        try {
          // Warm-up: the adapter's code paths compiled and its pools grown before the baseline is taken.
          const warm = await sandbox.create(50, 5);
          for (const id of warm) adapter.notify(id);
          issued += warm.length;
          await sandbox.waitFinished(warm, 60_000, issued);
          const base = memory();
          const askedBefore = (await sandbox.stats()).signDataCalls;
          const ids = await sandbox.create(count, SIGN_DELAY_MS);
          const started = performance.now();
          for (const id of ids) adapter.notify(id);
          // Every device asked (or as many as the replica asked in half the sleep): the backlog is in place.
          let asked = 0;
          for (;;) {
            asked = (await sandbox.stats()).signDataCalls - askedBefore;
            if (asked >= count || performance.now() - started > SIGN_DELAY_MS / 2) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          const askedInMs = performance.now() - started;
          const delay = monitorEventLoopDelay({ resolution: 10 });
          const requestsBefore = await sandbox.requests();
          const opsBefore = adapter.storeOps();
          delay.enable();
          await new Promise((r) => setTimeout(r, holdMs));
          delay.disable();
          const requestsAfter = await sandbox.requests();
          const opsAfter = adapter.storeOps();
          const held = memory();
          const stats = await sandbox.stats();
          if (stats.issued > issued) throw new Error('a device signed before the holding period was over');
          const minutes = holdMs / 60_000;
          const perWaiting = (n: number) => n / asked / minutes;
          figures.push(
            { name: `${store}: devices asked`, value: asked, unit: '', target: `= ${count}` },
            { name: `${store}: devices asked per second`, value: asked / (askedInMs / 1000), unit: '' },
            {
              name: `${store}: resident memory per waiting process`,
              value: (held.rss - base.rss) / asked / 1024,
              unit: 'KiB',
              target: store === 'memory' ? '≤ 10' : '≤ 2',
            },
            { name: `${store}: heap per waiting process`, value: (held.heap - base.heap) / asked / 1024, unit: 'KiB' },
            {
              name: `${store}: event-loop delay p99 while holding`,
              value: delay.percentile(99) / 1e6,
              unit: 'ms',
              target: '≤ 20',
            },
            {
              name: `${store}: Chrome requests per waiting process per minute held`,
              value: perWaiting(
                Object.entries(requestsAfter).reduce((sum, [m, n]) => sum + n - (requestsBefore[m] ?? 0), 0),
              ),
              unit: '',
            },
            {
              name: `${store}: store writes per waiting process per minute held`,
              value: perWaiting(opsAfter.writes - opsBefore.writes),
              unit: '',
            },
            {
              name: `${store}: store reads per waiting process per minute held`,
              value: perWaiting(opsAfter.reads - opsBefore.reads),
              unit: '',
            },
          );
        } finally {
          // The devices sign later; their processes are left to the next adapter, or to none.
          await adapter.stop();
        }
      }
      return figures;
    } finally {
      await work.close();
      await sandbox.close();
    }
  },
};
export default scenario;
