/**
 * Faults under three adapter OS processes: Chrome API errors and latency (the sandbox's fault injection), Firestore
 * stalls, reset connections and a restart (a TCP proxy in front of an emulator of this file's own, so restarting it
 * disturbs no other test), and the lease-expiry race — a replica frozen with SIGSTOP past its lease while another
 * takes over, then resumed: it must not call signData or have a certificate issued again.
 *
 * Every phase ends with every process issued exactly once: 0 lost, 0 double signData, 0 duplicate CA issuances.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import {
  chromeFaultScenario,
  firestoreFaultScenario,
  leaseRaceScenario,
  type ScenarioResult,
} from '../support/fault-scenarios.ts';
import { RestartableFirestoreEmulator } from '../support/firestore-emulator-restart.ts';
import { testKeyPool } from '../support/keys.ts';
import { ReplicaCluster, formatFigures } from '../support/replica-cluster.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

let emulator: RestartableFirestoreEmulator | undefined;
let firestoreProxy: TcpProxy | undefined;
let chromeProxy: TcpProxy | undefined;
let cluster: ReplicaCluster | undefined;

beforeAll(async () => {
  emulator = await RestartableFirestoreEmulator.start();
  firestoreProxy = await startTcpProxy(emulator.host);
  cluster = await ReplicaCluster.create({
    label: 'faults',
    pubsubEmulatorHost: inject('pubsubEmulatorHost'),
    firestoreHost: firestoreProxy.host,
    keyPool: await testKeyPool(),
    replicas: 3,
  });
  // Replica 0 reaches the Chrome API through a proxy of its own (the lease-expiry race stalls only its answers).
  chromeProxy = await startTcpProxy(new URL(cluster.tenant.endpoint).host);
  await cluster.startReplicas(3, [`http://${chromeProxy.host}`]);
}, 180_000);

afterAll(async () => {
  await cluster?.close();
  await killAllAdapters();
  await Promise.all([firestoreProxy?.close(), chromeProxy?.close()]);
  await emulator?.stop();
});

function report(result: ScenarioResult): void {
  console.log(formatFigures(result.name, result.figures, result.wallMs, result.extra));
  if (result.figures.failed > 0)
    console.log(`failure messages: ${[...new Set(result.figures.failureMessages)].join(' / ')}`);
}

function expectExactlyOnce(result: ScenarioResult, processes: number): void {
  expect(result.timedOut).toBe(false);
  expect(result.figures).toMatchObject({
    processes,
    issued: processes,
    failed: 0,
    lost: 0,
    doubleSignData: 0,
    duplicateIssuances: 0,
    foreignCertificates: 0,
  });
  expect(result.figures.signDataCalls).toBe(processes);
}

describe('faults with three replicas', () => {
  it('rides out Chrome API 503/429 bursts, random errors and latency spikes', async () => {
    const result = await chromeFaultScenario(cluster as ReplicaCluster, { processes: 300 });
    report(result);
    expectExactlyOnce(result, 300);
  }, 240_000);

  it('rides out a Firestore stall, reset connections and a Firestore restart', async () => {
    const result = await firestoreFaultScenario(cluster as ReplicaCluster, {
      processes: 300,
      proxy: firestoreProxy as TcpProxy,
      emulator: emulator as RestartableFirestoreEmulator,
    });
    report(result);
    expectExactlyOnce(result, 300);
    // The restart kept the data: the records written before it are still there.
    expect(await (cluster as ReplicaCluster).recordCount()).toBeGreaterThanOrEqual(600);
  }, 240_000);

  it('a replica paused past its lease neither signs nor orders again after it resumes', async () => {
    const c = cluster as ReplicaCluster;
    const result = await leaseRaceScenario(c, {
      processes: 150,
      victim: 0,
      chromeProxy: chromeProxy as TcpProxy,
    });
    report(result);
    // The race really happened: the frozen replica held leases, the others finished everything while it was
    // frozen, and after SIGCONT it noticed each lost lease instead of acting on it.
    expect(result.extra.heldByVictim).toBeGreaterThan(0);
    expect(result.extra.finishedWhilePaused).toBe(1);
    expect(result.extra.leaseLostAfterResume).toBeGreaterThanOrEqual(1);
    expectExactlyOnce(result, 150);
  }, 240_000);

  it('asks the device again when signData was answered 503 without taking effect, once it cannot be in flight', async () => {
    const c = cluster as ReplicaCluster;
    c.tenant.faults = { burst503: 1, methods: ['signData'] };
    const started = Date.now();
    const [id] = await c.createAndPublish(1, 1);
    await c.waitFinished(60_000, [id as string]);
    expect(c.tenant.process(id as string).issuedCertificate).toBeDefined();
    // One signData took effect (the refused one never reached the device); the second came after the grace period
    // of twice chrome.requestTimeout (10 s here).
    expect(c.tenant.counters(id as string)).toMatchObject({ signDataCalls: 1, doubleSignData: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(20_000);
    const lines = (await Promise.all(c.replicas.map((r) => r.logLines()))).flat().filter((l) => l.processId === id);
    expect(
      lines.filter((l) => l.message === 'signData result unclear; not resending, following the process resource'),
    ).toHaveLength(1);
    expect(
      lines.filter(
        (l) => l.message === 'the unclear signData request never reached the process; asking the device again',
      ),
    ).toHaveLength(1);
  }, 120_000);
});
