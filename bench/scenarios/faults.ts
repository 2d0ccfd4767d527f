/**
 * `npm run bench -- --faults`: the multi-replica fault scenarios of the integration tests, as a repeatable
 * measurement. Three `certprov run` OS processes on the Pub/Sub and Firestore emulators (started here), the sandbox
 * tenant in this process, one shared local CA:
 *
 * - crash: every notification published twice, a random replica SIGKILLed at random moments and restarted;
 * - chrome-faults: 503/429 bursts, random errors and latency spikes from the sandbox;
 * - firestore-faults: a stall, reset connections and a restart of Firestore (through a TCP proxy);
 * - lease-race: a replica frozen (SIGSTOP) past its lease while others take over, then resumed.
 *
 * For each: processes, duplicate deliveries, lost, double signData, duplicate CA issuances, wall time. The targets
 * are the guarantees (0 lost, 0 doubles); wall times depend on the machine and are for comparison within a run.
 */
import { performance } from 'node:perf_hooks';
import { KeyPool } from '../../src/sandbox/key-pool.ts';
import { killAllAdapters } from '../../test/support/adapter-process.ts';
import { startPubSubEmulator, type RunningEmulator } from '../../test/support/emulators.ts';
import {
  chromeFaultScenario,
  crashScenario,
  firestoreFaultScenario,
  leaseRaceScenario,
  type ScenarioResult,
} from '../../test/support/fault-scenarios.ts';
import { RestartableFirestoreEmulator } from '../../test/support/firestore-emulator-restart.ts';
import { ReplicaCluster, formatFigures } from '../../test/support/replica-cluster.ts';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcp-proxy.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';

const SIZES = {
  full: { crash: 500, kills: 20, chrome: 300, firestore: 300, race: 150 },
  quick: { crash: 100, kills: 5, chrome: 60, firestore: 60, race: 60 },
} as const;

function figures(result: ScenarioResult): BenchFigure[] {
  const f = result.figures;
  const name = result.name;
  return [
    { name: `${name}: processes`, value: f.processes, unit: 'processes' },
    { name: `${name}: duplicate deliveries`, value: f.deliveries - f.processes, unit: 'messages' },
    { name: `${name}: issued`, value: f.issued, unit: 'processes', target: `= ${f.processes}` },
    { name: `${name}: lost`, value: f.lost, unit: 'processes', target: '= 0' },
    { name: `${name}: double signData`, value: f.doubleSignData, unit: 'processes', target: '= 0' },
    { name: `${name}: duplicate CA issuances`, value: f.duplicateIssuances, unit: 'issuances', target: '= 0' },
    { name: `${name}: wall time`, value: result.wallMs / 1000, unit: 's' },
    ...Object.entries(result.extra).map(([key, value]) => ({ name: `${name}: ${key}`, value, unit: '' })),
  ];
}

const scenario: BenchScenario = {
  name: 'faults',
  description: 'three adapter processes: SIGKILLs, Chrome and Firestore faults, the lease-expiry race (emulators)',
  faultsOnly: true,
  async run(options) {
    const sizes = options.quick ? SIZES.quick : SIZES.full;
    const started = performance.now();
    let pubsub: RunningEmulator | undefined;
    let firestore: RestartableFirestoreEmulator | undefined;
    const proxies: TcpProxy[] = [];
    const clusters: ReplicaCluster[] = [];
    const results: ScenarioResult[] = [];
    try {
      const [keyPool, ps, fs] = await Promise.all([
        KeyPool.generate({ 'rsa-2048': 3, 'ec-p256': 3 }),
        startPubSubEmulator(),
        RestartableFirestoreEmulator.start(),
      ]);
      pubsub = ps;
      firestore = fs;

      const crashCluster = await ReplicaCluster.create({
        label: 'bench-crash',
        pubsubEmulatorHost: pubsub.host,
        firestoreHost: firestore.host,
        keyPool,
        replicas: 3,
      });
      clusters.push(crashCluster);
      await crashCluster.startReplicas();
      results.push(await crashScenario(crashCluster, { processes: sizes.crash, kills: sizes.kills, seed: 20_260_101 }));
      await crashCluster.close();

      const firestoreProxy = await startTcpProxy(firestore.host);
      proxies.push(firestoreProxy);
      const faultCluster = await ReplicaCluster.create({
        label: 'bench-faults',
        pubsubEmulatorHost: pubsub.host,
        firestoreHost: firestoreProxy.host,
        keyPool,
        replicas: 3,
      });
      clusters.push(faultCluster);
      const chromeProxy = await startTcpProxy(new URL(faultCluster.tenant.endpoint).host);
      proxies.push(chromeProxy);
      await faultCluster.startReplicas(3, [`http://${chromeProxy.host}`]);
      results.push(await chromeFaultScenario(faultCluster, { processes: sizes.chrome }));
      results.push(
        await firestoreFaultScenario(faultCluster, {
          processes: sizes.firestore,
          proxy: firestoreProxy,
          emulator: firestore,
        }),
      );
      results.push(await leaseRaceScenario(faultCluster, { processes: sizes.race, victim: 0, chromeProxy }));
    } finally {
      for (const cluster of clusters) await cluster.close().catch(() => undefined);
      await killAllAdapters();
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all([pubsub?.stop(), firestore?.stop()]);
    }
    for (const result of results)
      console.log(`  ${formatFigures(result.name, result.figures, result.wallMs, result.extra)}`);
    const all = results.flatMap(figures);
    const total = (pick: (r: ScenarioResult) => number) => results.reduce((sum, r) => sum + pick(r), 0);
    all.push(
      { name: 'total: lost', value: total((r) => r.figures.lost), unit: 'processes', target: '= 0' },
      {
        name: 'total: double signData',
        value: total((r) => r.figures.doubleSignData),
        unit: 'processes',
        target: '= 0',
      },
      {
        name: 'total: duplicate CA issuances',
        value: total((r) => r.figures.duplicateIssuances),
        unit: 'issuances',
        target: '= 0',
      },
      { name: 'total: wall time (setup included)', value: (performance.now() - started) / 1000, unit: 's' },
    );
    return all;
  },
};

export default scenario;
