/**
 * Crash test: three adapter OS processes on one subscription and one Firestore; 500 processes, each notification
 * published twice; a random replica is SIGKILLed at a random moment 20 times and a new process started in its
 * place (a pod restarted by its Deployment). Nothing may be lost (every process ends issued, or failed with a real
 * reason), no process may get a second signData, and the CA may not issue twice for one process.
 *
 * The seed is printed; CERTPROV_CRASH_SEED=N repeats a run's kill schedule.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import { crashScenario } from '../support/fault-scenarios.ts';
import { testKeyPool } from '../support/keys.ts';
import { ReplicaCluster, formatFigures } from '../support/replica-cluster.ts';

const PROCESSES = 500;
const KILLS = 20;

let cluster: ReplicaCluster | undefined;
beforeAll(async () => {
  cluster = await ReplicaCluster.create({
    label: 'crash',
    pubsubEmulatorHost: inject('pubsubEmulatorHost'),
    firestoreHost: inject('firestoreEmulatorHost'),
    keyPool: await testKeyPool(),
    replicas: 3,
  });
  await cluster.startReplicas();
}, 120_000);
afterAll(async () => {
  await cluster?.close();
  await killAllAdapters();
});

describe('replicas killed at random moments', () => {
  it(`loses nothing and doubles nothing: ${PROCESSES} processes, ${KILLS} SIGKILLs with restarts`, async () => {
    const c = cluster as ReplicaCluster;
    const seed = Number(process.env.CERTPROV_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const result = await crashScenario(c, { processes: PROCESSES, kills: KILLS, seed });
    const { figures } = result;
    console.log(formatFigures('crash', figures, result.wallMs, { ...result.extra, seed }));
    if (figures.failed > 0) console.log(`failure messages: ${[...new Set(figures.failureMessages)].join(' / ')}`);

    expect(result.extra.kills).toBe(KILLS);
    expect(result.timedOut).toBe(false);
    expect(figures.lost).toBe(0);
    expect(figures.doubleSignData).toBe(0);
    expect(figures.duplicateIssuances).toBe(0);
    expect(figures.foreignCertificates).toBe(0);
    // A crash is no reason to fail a process: nothing here gives the adapter a real reason to.
    expect(figures.failed).toBe(0);
    expect(figures.issued).toBe(PROCESSES);
  }, 360_000);
});
