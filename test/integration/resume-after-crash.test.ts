/**
 * Nothing is repeated blindly after a crash (DESIGN.md §1 "Claim once; resume from the resource"). One `certprov run`
 * replica on Firestore; the sandbox applies a call and holds its answer, the replica is SIGKILLed inside that window
 * (Google accepted the call, the record does not say so yet), and a new replica takes the process over once the
 * lease expires. It must finish from what the process resource shows: no second claim, no second signData, no
 * second upload.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAllAdapters } from '../support/adapter-process.ts';
import { testKeyPool } from '../support/keys.ts';
import { waitFor } from '../support/pubsub.ts';
import { ReplicaCluster } from '../support/replica-cluster.ts';

// A cluster (and so a subscription) per case: Google's Pub/Sub emulator keeps routing messages to the stream of a
// replica killed by an earlier case and hands them out again only after the ack deadline, perhaps more than once —
// on a shared subscription the second case spent up to minutes waiting out an earlier kill.
let cluster: ReplicaCluster | undefined;
beforeEach(async () => {
  cluster = await ReplicaCluster.create({
    label: 'resume',
    pubsubEmulatorHost: inject('pubsubEmulatorHost'),
    firestoreHost: inject('firestoreEmulatorHost'),
    keyPool: await testKeyPool(),
    replicas: 1,
    // Short leases: the new replica takes over a few seconds after the kill.
    scheduler: { lease: '6s' },
  });
  await cluster.startReplicas();
}, 120_000);
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  await killAllAdapters();
});

async function recordOf(c: ReplicaCluster, id: string): Promise<Record<string, unknown> | undefined> {
  return (await c.firestore().collection(c.collection).doc(id).get()).data();
}

describe('a replica killed after Google accepted a call', () => {
  it('after signData was accepted: the resumed process is not claimed again and the device is not asked again', async () => {
    const c = cluster as ReplicaCluster;
    c.tenant.faults = { holdResponse: { method: 'signData', count: 1, ms: 60_000 } };
    const [id] = await c.createAndPublish(1, 1);
    if (id === undefined) throw new Error('no process');
    await waitFor(() => c.tenant.counters(id).signDataCalls === 1, 30_000, 'signData accepted');
    const claimed = await recordOf(c, id);
    expect(claimed?.claimedAt, 'the claim is recorded before signData').toEqual(expect.any(Number));
    await c.restart(0);
    await c.waitFinished(60_000, [id]);
    expect(c.tenant.process(id).issuedCertificate).toBeDefined();
    expect(c.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1, doubleSignData: 0, uploads: 1 });
    c.tenant.faults = {};
  }, 120_000);

  it('after uploadCertificate was accepted: no second upload, the record ends issued', async () => {
    const c = cluster as ReplicaCluster;
    c.tenant.faults = { holdResponse: { method: 'uploadCertificate', count: 1, ms: 60_000 } };
    const [id] = await c.createAndPublish(1, 1);
    if (id === undefined) throw new Error('no process');
    await waitFor(() => c.tenant.process(id).issuedCertificate !== undefined, 30_000, 'upload accepted');
    expect((await recordOf(c, id))?.step).toBe('upload');
    await c.restart(0);
    await expect.poll(async () => (await recordOf(c, id))?.outcome, { timeout: 60_000, interval: 250 }).toBe('issued');
    expect(c.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1, uploads: 1, setFailures: 0 });
    expect((await c.journal()).get(id)).toHaveLength(1);
    c.tenant.faults = {};
  }, 120_000);
});
