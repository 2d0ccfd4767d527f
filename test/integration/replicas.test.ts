/**
 * Three adapter OS processes (`certprov run`) on one Pub/Sub subscription and one Firestore collection (emulators),
 * the sandbox tenant in this process, one local CA directory shared by the three. 1,000 processes, every
 * notification published twice (back to back, so duplicates are often handled at the same moment by two replicas):
 * each process ends issued exactly once, no process gets a second signData, and the CA journal holds exactly one
 * issuance per process — the certificate on the process.
 */
import { performance } from 'node:perf_hooks';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import { rawFirestore } from '../support/firestore.ts';
import { testKeyPool } from '../support/keys.ts';
import { verifyCertificate } from '../support/openssl.ts';
import { ReplicaCluster, formatFigures } from '../support/replica-cluster.ts';

const PROCESSES = 1_000;

let cluster: ReplicaCluster | undefined;
beforeAll(async () => {
  cluster = await ReplicaCluster.create({
    label: 'replicas',
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

describe('three replicas, one subscription, one Firestore', () => {
  it(`issues ${PROCESSES} processes published twice each exactly once: no second signData, no second CA issuance`, async () => {
    const c = cluster as ReplicaCluster;
    const started = performance.now();
    const ids = await c.createAndPublish(PROCESSES, 2);
    await c.waitFinished(240_000);
    const wallMs = performance.now() - started;
    const figures = await c.figures();
    console.log(
      formatFigures('replicas', figures, wallMs, { 'processes/s': (PROCESSES / (wallMs / 1000)).toFixed(1) }),
    );

    expect(figures).toMatchObject({
      processes: PROCESSES,
      deliveries: 2 * PROCESSES,
      issued: PROCESSES,
      failed: 0,
      lost: 0,
      doubleSignData: 0,
      duplicateIssuances: 0,
      foreignCertificates: 0,
    });
    // Exactly one signData per process, across all three replicas.
    expect(figures.signDataCalls).toBe(PROCESSES);

    // Every replica took part (the work was really shared), and every record in Firestore is done and issued.
    const perReplica = await Promise.all(
      c.replicas.map(async (r) => (await r.logLines()).filter((l) => l.message === 'process done: issued').length),
    );
    expect(perReplica.every((n) => n > 0)).toBe(true);
    expect(perReplica.reduce((a, b) => a + b, 0)).toBe(PROCESSES);
    const db = rawFirestore();
    try {
      const records = db.collection(c.collection);
      expect((await records.where('outcome', '==', 'issued').count().get()).data().count).toBe(PROCESSES);
      expect((await records.where('active', '==', true).count().get()).data().count).toBe(0);
    } finally {
      await db.terminate();
    }

    // The certificates on the processes chain to the shared CA (openssl is the judge); a sample keeps it quick.
    const caPem = await readFile(path.join(c.caDir, 'ca.cert.pem'), 'utf8');
    for (const id of [ids[0], ids[PROCESSES / 2], ids[PROCESSES - 1]] as string[]) {
      const leaf = c.tenant.process(id).issuedCertificate as string;
      expect((await verifyCertificate(leaf, caPem)).ok).toBe(true);
    }
  }, 300_000);
});
