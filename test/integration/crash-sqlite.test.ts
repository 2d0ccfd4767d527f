/**
 * Crash test on the single-replica default store (DESIGN.md §8): ONE `certprov run` OS process on a sqlite file,
 * SIGKILLed at random moments and started again on the same file (a pod restarted by its Deployment), each
 * notification published twice. Nothing may be lost, no process may get a second signData, and the CA may not issue
 * twice for one process — the same promises as with Firestore (crash.test.ts), from a file that survives the kill.
 *
 * The seed is printed; CERTPROV_CRASH_SEED=N repeats a run's kill schedule.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import { crashScenario } from '../support/fault-scenarios.ts';
import { testKeyPool } from '../support/keys.ts';
import { ReplicaCluster, formatFigures } from '../support/replica-cluster.ts';

const PROCESSES = 300;
const KILLS = 12;

let cluster: ReplicaCluster | undefined;
beforeAll(async () => {
  cluster = await ReplicaCluster.create({
    label: 'crash-sqlite',
    pubsubEmulatorHost: inject('pubsubEmulatorHost'),
    firestoreHost: inject('firestoreEmulatorHost'),
    keyPool: await testKeyPool(),
    replicas: 1,
    store: 'sqlite',
  });
  await cluster.startReplicas();
}, 120_000);
afterAll(async () => {
  await cluster?.close();
  await killAllAdapters();
});

describe('the one sqlite replica killed at random moments', () => {
  it(`loses nothing and doubles nothing: ${PROCESSES} processes, ${KILLS} SIGKILLs with restarts`, async () => {
    const c = cluster as ReplicaCluster;
    const seed = Number(process.env.CERTPROV_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const result = await crashScenario(c, { processes: PROCESSES, kills: KILLS, seed });
    const { figures } = result;
    console.log(formatFigures('crash (sqlite)', figures, result.wallMs, { ...result.extra, seed }));
    if (figures.failed > 0) console.log(`failure messages: ${[...new Set(figures.failureMessages)].join(' / ')}`);

    expect(result.extra.kills).toBe(KILLS);
    expect(result.timedOut).toBe(false);
    expect(figures.lost).toBe(0);
    expect(figures.doubleSignData).toBe(0);
    expect(figures.duplicateIssuances).toBe(0);
    expect(figures.foreignCertificates).toBe(0);
    expect(figures.failed).toBe(0);
    expect(figures.issued).toBe(PROCESSES);
    // Every restart reopened the same file and carried on from it.
    const lines = (await c.countLogMessages(['process store: sqlite'])) as Record<string, number>;
    expect(lines['process store: sqlite']).toBe(KILLS + 1);
  }, 360_000);
});
