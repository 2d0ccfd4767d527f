/**
 * Holding a backlog (issue 15 item 4): 10,000 processes whose devices sleep, on one replica, per store (memory,
 * sqlite, firestore on Google's emulator with a fresh collection), the sandbox in another OS process. The devices are asked (signData sent to all) and then sleep until the
 * scenario wakes them, so the backlog is whole however long asking takes; then the adapter holds them for a while,
 * the devices wake, and every process runs to its certificate. Reported per store:
 * - resident memory and heap per waiting process: the growth, after a full GC, from holding half the backlog to
 *   holding all of it (what one more waiting process costs; the fixed growth of the heap's spaces while asking is
 *   not per process), and the growth from before the backlog for reference;
 * - the event-loop delay p99 while holding;
 * - store writes (of which rate-budget tokens) and reads per issued certificate, and Chrome requests per issued
 *   certificate, over the whole life of the backlog's processes;
 * - Chrome requests per sleeping device per hour, from the documented signature-check schedule.
 *
 * The memory store holds each message until its process is done, so it can only hold as many processes as
 * pubsub.maxInFlight: it runs with maxInFlight 10,000 here (the default 100 would hold 100 and leave the rest in
 * Pub/Sub). The pending-CA-order backlog is measured by the digicert scenario (N = 100 and 1,000 orders).
 *
 * Environment (to measure one store, or to profile): CERTPROV_BENCH_BACKLOG_STORES=firestore (a comma list of
 * memory, sqlite, firestore) runs only those stores; CERTPROV_BENCH_BACKLOG_PROCESSES=N overrides every store's size;
 * CERTPROV_BENCH_HEAP_SNAPSHOT=DIR writes a V8 heap snapshot at half and at the whole backlog
 * (`backlog-<store>-half.heapsnapshot`, `backlog-<store>-full.heapsnapshot`) to compare in Chrome DevTools — the
 * snapshots take seconds and memory, so measure in a run without it.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import path from 'node:path';
import { getHeapSpaceStatistics, setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { signaturePollDelay } from '../../src/backoff.ts';
import type { Config } from '../../src/config/load.ts';
import { startFirestoreEmulator, type RunningEmulator } from '../../test/support/emulators.ts';
import { countGrpcCalls, type GrpcCounts } from '../support/grpc-counter.ts';
import { SandboxProcess } from '../support/sandbox-process.ts';
import {
  BENCH_PROJECT,
  benchConfig,
  benchWorkDir,
  startAdapter,
  type BenchStore,
  type RunningAdapter,
} from '../support/adapter-under-test.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';

/** Longest time given to asking the whole backlog, and to finishing it once the devices wake. */
const ASK_LIMIT_MS = 300_000;
const FINISH_LIMIT_MS = 600_000;
/**
 * Writes of the happy path (floor scenario: 5 Chrome requests), what each further signature check adds (the
 * compare-and-set that claims it, its budget token), and the lease the check that finds the signature then takes.
 */
const HAPPY_PATH_WRITES = 15;
const WRITES_PER_CHECK = 2;
const LEASE_AFTER_FURTHER_CHECKS = 1;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * After a full GC: resident memory, heap in use and reserved, memory V8 tracks outside the heap (Buffers), and the
 * young generation's reserved size (part of resident), so resident growth can be told apart. A turn
 * of the event loop between the collections lets FinalizationRegistry callbacks run (fetch keeps each request's
 * abort listener until its finalizer ran), so what was freed is not counted.
 */
async function memory(): Promise<{ rss: number; heap: number; heapTotal: number; external: number; young: number }> {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  gc();
  const m = process.memoryUsage();
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  return { rss: m.rss, heap: m.heapUsed, heapTotal: m.heapTotal, external: m.external, young };
}

/** Signature checks a device that never signs gets in [from, to) ms after signData, on `config`'s schedule. */
function checksBetween(config: Config, fromMs: number, toMs: number): number {
  const policy = { initialMs: config.scheduler.signaturePollInitialMs, maxMs: config.scheduler.signaturePollMaxMs };
  let checks = 0;
  for (let at = policy.initialMs; at < toMs; at += signaturePollDelay(policy, at)) if (at >= fromMs) checks += 1;
  return checks;
}

/**
 * Waiting processes per store. Firestore has its own, smaller size: the emulator's queries (the scheduler's due scans)
 * scan the whole collection, so its cost per query grows with the backlog, and at 10,000 it cannot ask and finish
 * the backlog within ASK_LIMIT_MS and FINISH_LIMIT_MS: --quick runs asked 500 devices at 26–37 a second, so 10,000
 * would take the whole 5 min to ask or more (and the fleet scenario measured the emulator as the cap: 1.25 certificates/s
 * at 20,000 processes). The size measured is printed per store.
 */
function backlogSize(store: BenchStore, quick: boolean, smoke: boolean): number {
  const fromEnv = Number(process.env.CERTPROV_BENCH_BACKLOG_PROCESSES ?? Number.NaN);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  if (smoke) return 100; // memory and sqlite only
  if (store === 'firestore') return quick ? 500 : 2_000;
  return quick ? 1_000 : 10_000;
}

/** Starts the Firestore emulator and points the in-process Firestore client at it; stop() undoes both. */
async function firestoreEmulator(): Promise<{ stop(): Promise<void> }> {
  const emulator: RunningEmulator = await startFirestoreEmulator(undefined, BENCH_PROJECT);
  const previous = process.env.FIRESTORE_EMULATOR_HOST;
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  return {
    async stop() {
      if (previous === undefined) delete process.env.FIRESTORE_EMULATOR_HOST;
      else process.env.FIRESTORE_EMULATOR_HOST = previous;
      await emulator.stop();
    },
  };
}

/** The stores CERTPROV_BENCH_BACKLOG_STORES names, or undefined for all. */
const only = process.env.CERTPROV_BENCH_BACKLOG_STORES?.split(',').map((s) => s.trim());

/** With CERTPROV_BENCH_HEAP_SNAPSHOT=DIR, a heap snapshot named `backlog-<store>-<label>` in DIR. */
function heapSnapshot(store: BenchStore, label: string): void {
  const dir = process.env.CERTPROV_BENCH_HEAP_SNAPSHOT;
  if (dir !== undefined && dir !== '') writeHeapSnapshot(path.join(dir, `backlog-${store}-${label}.heapsnapshot`));
}

/** Firestore documents looked up, found by queries, and written, at the wire (all zero for the other stores). */
function firestoreDocuments(counts: Readonly<GrpcCounts>): { lookups: number; queried: number; written: number } {
  const documents = (method: string) => counts[`/google.firestore.v1.Firestore/${method}`]?.documents ?? 0;
  return { lookups: documents('BatchGetDocuments'), queried: documents('RunQuery'), written: documents('Commit') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const totalRequests = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

const scenario: BenchScenario = {
  name: 'backlog',
  description:
    '10,000 devices asleep on one replica, per store (Firestore: 2,000): memory, event-loop delay, store calls',
  async run({ quick, smoke }) {
    const holdMs = smoke ? 1_000 : quick ? 10_000 : 20_000;
    const sandbox = await SandboxProcess.start();
    const work = await benchWorkDir();
    const configOf = (store: BenchStore) =>
      benchConfig(sandbox.endpoint, work, store, {
        pubsub: { maxInFlight: 10_000 },
        chrome: { rateLimit: { requestsPerMinute: 10_000_000 } },
      });
    const defaults = configOf('memory');
    const figures: BenchFigure[] = [
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
      {
        name: 'Chrome requests per sleeping device, 8 hours',
        value: checksBetween(defaults, 0, 8 * 3_600_000),
        unit: '',
        target: '≤ 50',
      },
    ];
    try {
      // --smoke leaves Firestore out: the emulator's start and 100 processes on it took about 50 s of a 65 s smoke run (17 s without them)
      // (7.8 devices asked per second), and --smoke must run in seconds.
      const stores = (smoke ? ['memory', 'sqlite'] : ['memory', 'sqlite', 'firestore']).filter(
        (store) => only === undefined || only.includes(store),
      ) as BenchStore[];
      for (const store of stores) {
        const count = backlogSize(store, quick, smoke);
        // A fresh collection per run (benchRawConfig names it), on an emulator started for this store only.
        const emulator = store === 'firestore' ? await firestoreEmulator() : undefined;
        let running: RunningAdapter | undefined;
        // Firestore's calls counted at the wire too: the store's own reads (a compare-and-set without a remembered
        // snapshot reads first) are not calls of the ProcessStore interface, which the store figures count.
        const wire = store === 'firestore' ? countGrpcCalls() : {};
        try {
          const adapter = (running = await startAdapter(configOf(store)));
          // Warm-up: the adapter's code paths compiled and its pools grown before the baseline is taken.
          const warm = await sandbox.create(50, 5);
          const warmBefore = await sandbox.stats();
          for (const id of warm) adapter.notify(id);
          await sandbox.waitFinished(warm, 60_000, warmBefore.issued + warmBefore.failed + warm.length);
          const base = await memory();
          const opsBefore = adapter.storeOps();
          const wireBefore = firestoreDocuments(wire);
          const requestsBefore = totalRequests(await sandbox.requests());
          const askedBefore = (await sandbox.stats()).signDataCalls;
          const ids = await sandbox.create(count, 'never');
          const started = performance.now();
          /** Notifies `part` and waits until its devices were asked (or the asking time is up); returns all asked. */
          const ask = async (part: readonly string[], total: number): Promise<number> => {
            for (const id of part) adapter.notify(id);
            for (;;) {
              const asked = (await sandbox.stats()).signDataCalls - askedBefore;
              if (asked >= total || performance.now() - started > ASK_LIMIT_MS) return asked;
              await sleep(100);
            }
          };
          const half = Math.floor(count / 2);
          const askedHalf = await ask(ids.slice(0, half), half);
          const atHalf = await memory();
          heapSnapshot(store, 'half');
          const asked = await ask(ids.slice(half), count);
          const askedInMs = performance.now() - started;
          const atFull = await memory();
          heapSnapshot(store, 'full');

          const delay = monitorEventLoopDelay({ resolution: 10 });
          const holdRequestsBefore = totalRequests(await sandbox.requests());
          const holdOpsBefore = adapter.storeOps();
          delay.enable();
          await sleep(holdMs);
          delay.disable();
          const holdRequests = totalRequests(await sandbox.requests()) - holdRequestsBefore;
          const holdOps = adapter.storeOps();

          // The devices wake; every process runs to its certificate.
          const beforeWaking = await sandbox.stats();
          await sandbox.online(ids, 5);
          const finishStarted = performance.now();
          let issued = 0;
          for (;;) {
            const stats = await sandbox.stats();
            issued = stats.issued - beforeWaking.issued;
            const failed = stats.failed - beforeWaking.failed;
            if (issued + failed >= count || performance.now() - finishStarted > FINISH_LIMIT_MS) break;
            await sleep(200);
          }
          const finishedInMs = performance.now() - finishStarted;
          const opsAfter = adapter.storeOps();
          const wireAfter = firestoreDocuments(wire);
          const requests = totalRequests(await sandbox.requests()) - requestsBefore;

          const perCertificate = (n: number) => n / Math.max(1, issued);
          const requestsPerCertificate = perCertificate(requests);
          const perWaitingPerMinute = (n: number) => n / asked / (holdMs / 60_000);
          const perAddedProcess = (bytes: number) => bytes / Math.max(1, asked - askedHalf) / 1024;
          figures.push(
            { name: `${store}: waiting processes (the size measured)`, value: count, unit: '' },
            { name: `${store}: devices asked`, value: asked, unit: '', target: `= ${count}` },
            { name: `${store}: devices asked per second`, value: asked / (askedInMs / 1000), unit: '' },
            {
              name: `${store}: resident memory per waiting process`,
              value: perAddedProcess(atFull.rss - atHalf.rss),
              unit: 'KiB',
              target: store === 'memory' ? '≤ 10' : '≤ 2',
            },
            {
              name: `${store}: of which the young generation's growth`,
              value: perAddedProcess(atFull.young - atHalf.young),
              unit: 'KiB',
            },
            {
              name: `${store}: of which the heap's reserved size's growth (used or not)`,
              value: perAddedProcess(atFull.heapTotal - atHalf.heapTotal),
              unit: 'KiB',
            },
            {
              name: `${store}: of which memory V8 tracks outside the heap (Buffers)`,
              value: perAddedProcess(atFull.external - atHalf.external),
              unit: 'KiB',
            },
            {
              name: `${store}: heap per waiting process`,
              value: perAddedProcess(atFull.heap - atHalf.heap),
              unit: 'KiB',
            },
            {
              name: `${store}: resident growth from before the backlog, per process`,
              value: (atFull.rss - base.rss) / asked / 1024,
              unit: 'KiB',
            },
            {
              name: `${store}: event-loop delay p99 while holding`,
              value: delay.percentile(99) / 1e6,
              unit: 'ms',
              target: '≤ 20',
            },
            {
              name: `${store}: Chrome requests per waiting process per minute held`,
              value: perWaitingPerMinute(holdRequests),
              unit: '',
            },
            {
              name: `${store}: store writes per waiting process per minute held`,
              value: perWaitingPerMinute(holdOps.writes - holdOpsBefore.writes),
              unit: '',
            },
            { name: `${store}: certificates issued after waking`, value: issued, unit: '', target: `= ${count}` },
            { name: `${store}: time to finish the backlog after waking`, value: finishedInMs / 1000, unit: 's' },
            { name: `${store}: Chrome requests per issued certificate`, value: requestsPerCertificate, unit: '' },
            {
              name: `${store}: store writes per issued certificate`,
              value: perCertificate(opsAfter.writes - opsBefore.writes),
              unit: '',
              // The happy path's writes, two for each further signature check (its claim, its token), and the lease
              // the check that finds the signature takes.
              target: `≤ ${(
                HAPPY_PATH_WRITES +
                (requestsPerCertificate > 5
                  ? WRITES_PER_CHECK * (requestsPerCertificate - 5) + LEASE_AFTER_FURTHER_CHECKS
                  : 0)
              ).toFixed(1)}`,
            },
            {
              name: `${store}: of which rate-budget tokens`,
              value: perCertificate(opsAfter.tokens - opsBefore.tokens),
              unit: '',
              target: '= Chrome requests',
            },
            {
              name: `${store}: store reads per issued certificate`,
              value: perCertificate(opsAfter.reads - opsBefore.reads),
              unit: '',
            },
          );
          if (store === 'firestore') {
            figures.push(
              {
                name: `${store}: documents looked up per issued certificate (at the wire)`,
                value: perCertificate(wireAfter.lookups - wireBefore.lookups),
                unit: '',
              },
              {
                name: `${store}: documents answered to queries per issued certificate (at the wire)`,
                value: perCertificate(wireAfter.queried - wireBefore.queried),
                unit: '',
              },
              {
                name: `${store}: documents written per issued certificate (at the wire)`,
                value: perCertificate(wireAfter.written - wireBefore.written),
                unit: '',
              },
            );
          }
        } finally {
          await running?.stop();
          await emulator?.stop();
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
