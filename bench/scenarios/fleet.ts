/**
 * A fleet rollout scaled down (issue 15 item 5): N processes (20,000; `--quick` 1,000; `--smoke` 30; the environment
 * variable CERTPROV_BENCH_FLEET_PROCESSES overrides) provisioned by three `certprov run` OS processes — what a
 * Deployment of three pods runs — on one Pub/Sub subscription and one Firestore collection (Google's emulators,
 * started here), the Chrome API sandbox in another OS process, one local CA. The documented defaults, at log level
 * info, except `chrome.rateLimit` (set beyond reach as in `floor`: the default budget is a quota guard that alone
 * holds a replica set to 8 certificates/s; the cap it sets is reported from the requests per certificate).
 *
 * Every notification is published at once (a rollout's burst). The run stops waiting after 15 minutes
 * (CERTPROV_BENCH_FLEET_MAX_MINUTES): the figures are then those of the processes finished by then, and `issued`
 * says how many. Where the time goes, from one run:
 * - certificates/s overall and per replica, CPU per certificate per replica (its OS process's CPU time over the
 *   certificates it issued), and the CPU per certificate of every other process on the machine (the emulators, the
 *   sandbox) — on a machine with fewer cores than processes the rate is a floor for what separate pods do;
 * - Chrome API requests per certificate (counted by the sandbox);
 * - Firestore and Pub/Sub calls per certificate, counted at the wire inside each replica (bench/support/grpc-counter.ts):
 *   document writes (Commit writes), documents read (BatchGetDocuments found + RunQuery results), queries;
 * - end-to-end latency p50/p99 (publish → uploadCertificate) and the latency of the work itself (first Chrome request
 *   for the process → uploadCertificate);
 * - each workflow step's share of the time spent in steps (`certprov_step_duration_seconds`, scraped from every
 *   replica's /metrics) and its executions per certificate;
 * - the store's queries by what they ask (findDue's two, nextDueAt, countActive's counts, …): calls per second per
 *   replica and the mean time each took to answer, and their share of the replicas' time waiting on Firestore;
 * - after the run, the emulator's time per call of each kind against the collection's size (a tenth, a quarter and
 *   all of the run's processes: bench/support/firestore-query-cost.ts), so that the per-certificate costs can be
 *   carried to a larger fleet on a store that does not scan (Firestore serves these queries from its indexes).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PubSub } from '@google-cloud/pubsub';
import { DEFAULTS } from '../../src/config/schema.ts';
import { encodeProcessCreatedEvent } from '../../src/sandbox/index.ts';
import { AdapterProcess, killAllAdapters, writeAdapterConfig } from '../../test/support/adapter-process.ts';
import { startFirestoreEmulator, startPubSubEmulator, type RunningEmulator } from '../../test/support/emulators.ts';
import { scrape, type Scrape } from '../../test/integration/operations-scrape.ts';
import { BENCH_PROJECT, benchRawConfig, benchWorkDir } from '../support/adapter-under-test.ts';
import { measureQueryCost } from '../support/firestore-query-cost.ts';
import type { GrpcCounts, MethodCount } from '../support/grpc-counter.ts';
import { SandboxProcess } from '../support/sandbox-process.ts';
import { percentile, type BenchFigure, type BenchScenario } from '../scenario.ts';

const REPLICAS = 3;
const SIGN_DELAY_MS = 5;
const WARM_UP = 60;
const GRPC_COUNTER = path.join(import.meta.dirname, '../support/grpc-counter.ts');
const FIRESTORE = '/google.firestore.v1.Firestore/';
const PUBSUB = '/google.pubsub.v1.';

/** Epoch milliseconds, comparable with the sandbox's timeline (another process on the same machine). */
const nowMs = (): number => performance.timeOrigin + performance.now();

/** CPU time (user + system, ms) of `pid` and every process below it, from /proc (Linux). */
function treeCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const ticksPerMs = 100 / 1000; // USER_HZ is 100 on Linux
  let total = 0;
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticksPerMs;
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const child of children === '' ? [] : children.split(' ')) visit(Number(child));
    } catch {
      // the process ended meanwhile
    }
  };
  visit(pid);
  return total;
}

interface ReplicaSnapshot {
  readonly metrics: Scrape;
  readonly cpuMs: number;
  readonly grpc: GrpcCounts;
}

async function snapshot(replica: AdapterProcess, countsFile: string): Promise<ReplicaSnapshot> {
  if (replica.httpPort === undefined) throw new Error(`${replica.name} did not say its ops port`);
  return {
    metrics: await scrape(replica.httpPort),
    cpuMs: treeCpuMs(replica.child.pid),
    grpc: JSON.parse(await readFile(countsFile, 'utf8').catch(() => '{}')) as GrpcCounts,
  };
}

/** Calls and documents of the gRPC methods whose path starts with `prefix` (and ends with `method`, if given). */
function grpcSince(
  before: readonly ReplicaSnapshot[],
  after: readonly ReplicaSnapshot[],
  prefix: string,
  method = '',
): MethodCount {
  const sum = (snapshots: readonly ReplicaSnapshot[]) =>
    snapshots
      .flatMap((s) => Object.entries(s.grpc))
      .filter(([p]) => p.startsWith(prefix) && p.endsWith(method))
      .reduce(
        (t, [, c]) => ({ calls: t.calls + c.calls, documents: t.documents + c.documents, ms: t.ms + (c.ms ?? 0) }),
        { calls: 0, documents: 0, ms: 0 },
      );
  const a = sum(after);
  const b = sum(before);
  return { calls: a.calls - b.calls, documents: a.documents - b.documents, ms: a.ms - b.ms };
}

function requestsSince(before: Record<string, number>, after: Record<string, number>): number {
  return Object.entries(after).reduce((sum, [method, n]) => sum + n - (before[method] ?? 0), 0);
}

const scenario: BenchScenario = {
  name: 'fleet',
  description: `processes through ${REPLICAS} \`certprov run\` replicas on the Firestore and Pub/Sub emulators`,
  async run({ quick, smoke }) {
    const fromEnv = Number(process.env.CERTPROV_BENCH_FLEET_PROCESSES ?? Number.NaN);
    const count = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : smoke ? 30 : quick ? 1_000 : 20_000;
    const loadBefore = loadavg()[0] ?? Number.NaN;
    const work = await benchWorkDir();
    let pubsubEmulator: RunningEmulator | undefined;
    let firestoreEmulator: RunningEmulator | undefined;
    let sandbox: SandboxProcess | undefined;
    let pubsub: PubSub | undefined;
    try {
      [pubsubEmulator, firestoreEmulator, sandbox] = await Promise.all([
        startPubSubEmulator(),
        startFirestoreEmulator(undefined, BENCH_PROJECT),
        SandboxProcess.start(),
      ]);
      pubsub = new PubSub({
        projectId: BENCH_PROJECT,
        apiEndpoint: pubsubEmulator.host,
        emulatorMode: true,
        universeDomain: 'googleapis.com',
      });
      const [topic] = await pubsub.createTopic('fleet');
      // What `certprov setup-pubsub` creates: a 60 s ack deadline.
      const [subscription] = await topic.createSubscription('fleet-sub', { ackDeadlineSeconds: 60 });
      const configFile = await writeAdapterConfig(
        path.join(work.dir, 'replica.json'),
        benchRawConfig(sandbox.endpoint, work, 'firestore', {
          pubsub: { subscription: subscription.name },
          chrome: { rateLimit: { requestsPerMinute: 10_000_000 } },
          log: { level: DEFAULTS.log.level },
        }),
      );
      const countsFiles = Array.from({ length: REPLICAS }, (_, i) => path.join(work.dir, `grpc-${i}.json`));
      const replicas = countsFiles.map((countsFile, i) =>
        AdapterProcess.spawn({
          name: `replica-${i}`,
          configFile,
          logFile: path.join(work.dir, `replica-${i}.log`),
          nodeArgs: ['--import', GRPC_COUNTER],
          env: {
            PUBSUB_EMULATOR_HOST: pubsubEmulator!.host,
            FIRESTORE_EMULATOR_HOST: firestoreEmulator!.host,
            CERTPROV_GRPC_COUNTS: countsFile,
          },
        }),
      );
      await Promise.all(replicas.map((r) => r.waitStarted()));
      const customerId = DEFAULTS.chrome.customer;
      const publish = (ids: readonly string[]) =>
        Promise.all(
          ids.map((processId) => topic.publishMessage({ data: encodeProcessCreatedEvent({ processId, customerId }) })),
        );

      // Warm-up: every replica's code compiled, the collection and its documents in place, before the clock starts.
      let finished = 0;
      const warm = await sandbox.create(WARM_UP, SIGN_DELAY_MS);
      await publish(warm);
      finished += warm.length;
      await sandbox.waitFinished(warm, 120_000, finished);
      // A replica counts a process issued after its last store write, a moment after the upload the sandbox saw.
      await new Promise((r) => setTimeout(r, 1_000));

      const ids = await sandbox.create(count, SIGN_DELAY_MS);
      const before = await Promise.all(replicas.map((r, i) => snapshot(r, countsFiles[i]!)));
      const requestsBefore = await sandbox.requests();
      const statsBefore = await sandbox.stats();
      const others = {
        firestore: firestoreEmulator.child.pid,
        pubsub: pubsubEmulator.child.pid,
      };
      const othersBefore = { firestore: treeCpuMs(others.firestore), pubsub: treeCpuMs(others.pubsub) };
      const benchCpu = process.cpuUsage();
      const publishedAt = nowMs();
      const started = performance.now();
      await publish(ids);
      // Wait for every process, reporting progress on long runs. At the time limit the figures are those of the
      // processes finished so far (the run says how many): the rate extrapolates.
      const expected = finished + count;
      const limitMs = (Number(process.env.CERTPROV_BENCH_FLEET_MAX_MINUTES) || 15) * 60_000;
      let lastReport = performance.now();
      for (;;) {
        const stats = await sandbox.stats();
        if (stats.issued + stats.failed >= expected || performance.now() - started > limitMs) break;
        if (performance.now() - lastReport > 30_000) {
          lastReport = performance.now();
          const done = stats.issued + stats.failed - finished;
          const seconds = (lastReport - started) / 1000;
          console.error(`  fleet: ${done}/${count} after ${seconds.toFixed(0)} s (${(done / seconds).toFixed(1)}/s)`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const seconds = (performance.now() - started) / 1000;
      const benchUsed = process.cpuUsage(benchCpu);
      const loadAfter = loadavg()[0] ?? Number.NaN;
      const statsAfter = await sandbox.stats();
      const othersAfter = { firestore: treeCpuMs(others.firestore), pubsub: treeCpuMs(others.pubsub) };
      // The gRPC counters are written ten times a second: let the last ones land.
      await new Promise((r) => setTimeout(r, 150));
      const after = await Promise.all(replicas.map((r, i) => snapshot(r, countsFiles[i]!)));
      const requests = requestsSince(requestsBefore, await sandbox.requests());
      const timeline = await sandbox.timeline(ids);
      const endToEnd = timeline
        .flatMap(([, uploaded]) => (uploaded === null ? [] : [uploaded - publishedAt]))
        .sort((a, b) => a - b);
      const workLatency = timeline
        .flatMap(([first, uploaded]) => (first === null || uploaded === null ? [] : [uploaded - first]))
        .sort((a, b) => a - b);

      const issued = statsAfter.issued - statsBefore.issued;
      const failed = statsAfter.failed - statsBefore.failed;
      const perCert = (n: number) => n / issued;
      const figures: BenchFigure[] = [
        { name: 'processes', value: count, unit: '' },
        { name: 'issued', value: issued, unit: '', target: `= ${count}` },
        { name: 'failed', value: failed, unit: '', target: '= 0' },
        { name: 'load average (1 min) before / after', value: loadBefore, unit: `/ ${loadAfter.toFixed(2)}` },
        { name: 'wall time', value: seconds, unit: 's' },
        { name: 'throughput, all replicas', value: issued / seconds, unit: 'certificates/s' },
      ];
      let replicaCpuMs = 0;
      replicas.forEach((replica, i) => {
        const b = before[i]!;
        const a = after[i]!;
        const certificates =
          a.metrics.sum('certprov_processes_issued_total') - b.metrics.sum('certprov_processes_issued_total');
        const cpuMs = a.cpuMs - b.cpuMs;
        replicaCpuMs += cpuMs;
        figures.push(
          { name: `${replica.name}: certificates`, value: certificates, unit: '' },
          { name: `${replica.name}: throughput`, value: certificates / seconds, unit: 'certificates/s' },
          { name: `${replica.name}: CPU per certificate`, value: cpuMs / certificates, unit: 'ms' },
          { name: `${replica.name}: CPU busy`, value: cpuMs / 1000 / seconds, unit: 'cores' },
        );
      });
      const firestoreWrites = grpcSince(before, after, FIRESTORE, '/Commit');
      const gets = grpcSince(before, after, FIRESTORE, '/BatchGetDocuments');
      const queries = grpcSince(before, after, FIRESTORE, '/RunQuery');
      const aggregations = grpcSince(before, after, FIRESTORE, '/RunAggregationQuery');
      const firestoreCalls = grpcSince(before, after, FIRESTORE);
      const pubsubCalls = grpcSince(before, after, PUBSUB);
      figures.push(
        { name: 'adapter CPU per certificate (3 replicas together)', value: perCert(replicaCpuMs), unit: 'ms' },
        {
          name: 'Firestore emulator CPU per certificate',
          value: perCert(othersAfter.firestore - othersBefore.firestore),
          unit: 'ms',
        },
        {
          name: 'Pub/Sub emulator CPU per certificate',
          value: perCert(othersAfter.pubsub - othersBefore.pubsub),
          unit: 'ms',
        },
        {
          name: 'sandbox (Chrome API, devices) CPU per certificate',
          value: perCert(statsAfter.cpuMs - statsBefore.cpuMs),
          unit: 'ms',
        },
        {
          name: 'benchmark (publisher) CPU per certificate',
          value: perCert((benchUsed.user + benchUsed.system) / 1000),
          unit: 'ms',
        },
        { name: 'Chrome API requests per certificate', value: perCert(requests), unit: '', target: '≤ 5' },
        {
          name: 'certificates/s the default chrome.rateLimit allows',
          value: DEFAULTS.chrome.rateLimit.requestsPerMinute / 60 / perCert(requests),
          unit: 'per replica set',
        },
        { name: 'Firestore document writes per certificate', value: perCert(firestoreWrites.documents), unit: '' },
        { name: 'Firestore commits per certificate', value: perCert(firestoreWrites.calls), unit: '' },
        {
          name: 'Firestore documents read per certificate (gets + query results)',
          value: perCert(gets.documents + queries.documents),
          unit: `(${perCert(gets.documents).toFixed(2)} + ${perCert(queries.documents).toFixed(2)})`,
        },
        {
          name: 'Firestore queries per certificate (aggregations)',
          value: perCert(queries.calls),
          unit: `(${perCert(aggregations.calls).toFixed(2)})`,
        },
        { name: 'Firestore calls per certificate, all methods', value: perCert(firestoreCalls.calls), unit: '' },
        { name: 'Pub/Sub calls per certificate, all methods', value: perCert(pubsubCalls.calls), unit: '' },
        { name: 'end-to-end latency p50 (publish → upload)', value: percentile(endToEnd, 50) / 1000, unit: 's' },
        { name: 'end-to-end latency p99 (publish → upload)', value: percentile(endToEnd, 99) / 1000, unit: 's' },
        {
          name: 'work latency p50 (first Chrome request → upload)',
          value: percentile(workLatency, 50) / 1000,
          unit: 's',
        },
        {
          name: 'work latency p99 (first Chrome request → upload)',
          value: percentile(workLatency, 99) / 1000,
          unit: 's',
        },
      );
      // Where the replicas' step time goes: each step's share of all step time, and executions per certificate.
      const steps = new Set(
        after.flatMap((a) => a.metrics.series('certprov_step_duration_seconds_sum').map((l) => l.step ?? '?')),
      );
      const stepTime = new Map<string, { seconds: number; runs: number }>();
      for (const step of steps) {
        const delta = (name: string) =>
          after.reduce((sum, a) => sum + a.metrics.sum(name, { step }), 0) -
          before.reduce((sum, b) => sum + b.metrics.sum(name, { step }), 0);
        stepTime.set(step, {
          seconds: delta('certprov_step_duration_seconds_sum'),
          runs: delta('certprov_step_duration_seconds_count'),
        });
      }
      // How often the replicas found the store congested and pressed less (src/provisioning/store-load.ts).
      const congested =
        after.reduce((sum, a) => sum + a.metrics.sum('certprov_store_congestion_total', { state: 'congested' }), 0) -
        before.reduce((sum, b) => sum + b.metrics.sum('certprov_store_congestion_total', { state: 'congested' }), 0);
      figures.push({
        name: 'store congestion episodes, all replicas',
        value: congested,
        unit: `(concurrency limit at the end: ${after.map((a) => a.metrics.sum('certprov_store_concurrency_limit')).join(' / ')})`,
      });
      // Which queries the replicas asked, how often, and how long each took to answer (grpc-counter's query kinds).
      const kinds = new Set(after.flatMap((a) => Object.keys(a.grpc).filter((k) => k.startsWith('query:'))));
      const firestoreWaitMs = Math.max(1, firestoreCalls.ms);
      for (const kind of [...kinds].sort()) {
        const { calls, ms } = grpcSince(before, after, kind);
        figures.push({
          name: `Firestore ${kind.slice('query:'.length)}: per second per replica`,
          value: calls / seconds / REPLICAS,
          unit: `(${(ms / Math.max(1, calls)).toFixed(0)} ms each; ${((100 * ms) / firestoreWaitMs).toFixed(0)} % of the replicas' Firestore wait)`,
        });
      }
      figures.push({
        name: 'Firestore queries and counts, all kinds: per second per replica',
        value: (queries.calls + aggregations.calls) / seconds / REPLICAS,
        unit: `(${perCert(queries.calls + aggregations.calls).toFixed(2)} per certificate)`,
      });
      // The emulator's time per call against the collection's size, on collections of its own, the replicas stopped.
      await killAllAdapters();
      const sizes = [...new Set([Math.ceil(count / 10), Math.ceil(count / 4), count])];
      for (const cost of await measureQueryCost(firestoreEmulator.host, BENCH_PROJECT, sizes)) {
        figures.push({
          name: `emulator at ${cost.size} records: due continuing / due starts / next due query`,
          value: cost.continuing,
          unit: `/ ${cost.starts.toFixed(0)} / ${cost.nextDueAt.toFixed(0)} ms`,
        });
        figures.push({
          name: `emulator at ${cost.size} records: one count / get / write`,
          value: cost.count,
          unit: `/ ${cost.get.toFixed(1)} / ${cost.write.toFixed(1)} ms`,
        });
      }
      const allStepSeconds = [...stepTime.values()].reduce((sum, s) => sum + s.seconds, 0);
      for (const [step, { seconds: stepSeconds, runs }] of [...stepTime].sort((a, b) => b[1].seconds - a[1].seconds)) {
        figures.push({
          name: `step ${step}: share of step time`,
          value: (100 * stepSeconds) / allStepSeconds,
          unit: `% (${perCert(runs).toFixed(2)} runs/certificate, ${((1000 * stepSeconds) / Math.max(1, runs)).toFixed(1)} ms each)`,
        });
      }
      return figures;
    } finally {
      await killAllAdapters();
      await sandbox?.close();
      await pubsub?.close().catch(() => undefined);
      await Promise.all([pubsubEmulator?.stop(), firestoreEmulator?.stop()]);
      await work.close();
    }
  },
};
export default scenario;
