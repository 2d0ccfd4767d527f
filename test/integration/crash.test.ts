/**
 * Crash test, on each durable store. Firestore: three adapter OS processes on one subscription and one collection.
 * SQLite (the single-replica default, DESIGN.md §8): ONE adapter OS process on one file. Each notification is
 * published twice; a random replica is SIGKILLed at a random moment again and again and a new process started in its
 * place (a pod restarted by its Deployment; with sqlite it reopens the same file). Nothing may be lost (every process
 * ends issued, or failed with a real reason), no process may get a second signData, and the CA may not issue twice
 * for one process.
 *
 * The seed is printed; CERTPROV_CRASH_SEED=N repeats a run's kill schedule.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import { crashScenario } from '../support/fault-scenarios.ts';
import { testKeyPool } from '../support/keys.ts';
import { ReplicaCluster, formatFigures } from '../support/replica-cluster.ts';

const CASES = [
  { store: 'firestore', replicas: 3, processes: 500, kills: 10 },
  { store: 'sqlite', replicas: 1, processes: 300, kills: 8 },
] as const;

describe.each(CASES)(
  '$store: $replicas replica(s) killed at random moments',
  ({ store, replicas, processes, kills }) => {
    let cluster: ReplicaCluster | undefined;
    beforeAll(async () => {
      cluster = await ReplicaCluster.create({
        label: `crash-${store}`,
        pubsubEmulatorHost: inject('pubsubEmulatorHost'),
        firestoreHost: inject('firestoreEmulatorHost'),
        keyPool: await testKeyPool(),
        replicas,
        store,
        // Devices sign 700 ms after signData: checks at 100 ms (under the lease), 200 and 400 ms (lease-free: a
        // compare-and-set claims each, src/provisioning/signature-check.ts) and 800 ms (finds it, takes the lease), so
        // kills also land between a claim and its check.
        sandbox: { signDelayMs: 700 },
      });
      await cluster.startReplicas();
    }, 120_000);
    afterAll(async () => {
      await cluster?.close();
      await killAllAdapters();
    });

    it(`loses nothing and doubles nothing: ${processes} processes, ${kills} SIGKILLs with restarts`, async () => {
      const c = cluster as ReplicaCluster;
      const seed = Number(process.env.CERTPROV_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
      const result = await crashScenario(c, { processes, kills, seed });
      const { figures } = result;
      console.log(formatFigures(`crash (${store})`, figures, result.wallMs, { ...result.extra, seed }));
      if (figures.failed > 0) console.log(`failure messages: ${[...new Set(figures.failureMessages)].join(' / ')}`);

      expect(result.extra.kills).toBe(kills);
      expect(result.timedOut).toBe(false);
      expect(figures.lost).toBe(0);
      expect(figures.doubleSignData).toBe(0);
      expect(figures.duplicateIssuances).toBe(0);
      expect(figures.foreignCertificates).toBe(0);
      // A crash is no reason to fail a process: nothing here gives the adapter a real reason to.
      expect(figures.failed).toBe(0);
      expect(figures.issued).toBe(processes);
      if (store === 'sqlite') {
        // Every restart reopened the same file and carried on from it.
        const lines = await c.countLogMessages(['process store: sqlite']);
        expect(lines['process store: sqlite']).toBe(kills + 1);
      }
    }, 360_000);
  },
);
