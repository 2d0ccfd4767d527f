/**
 * A real tenant is shared: every adapter subscribed to the provisioning topic is notified of every process, a
 * customer migrating from another connector runs both side by side, and SCEP processes go to a SCEP connector.
 * Two adapters with different CA connection references on one topic (each with its own subscription, as Pub/Sub
 * fans a topic out), plus SCEP processes and processes whose reference nobody configured: each process is claimed
 * by exactly one adapter — its own — no adapter fails a process that is not its own, no device is asked twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterRig } from '../support/adapter-rig.ts';
import { testKeyPool } from '../support/keys.ts';
import { freshSubscription, uniqueName, type FreshSubscription } from '../support/pubsub.ts';
import { SandboxTenant, type KeyPool } from '../../src/sandbox/index.ts';

let pool: KeyPool;
let tenant: SandboxTenant;
let subscription: FreshSubscription;
const rigs: AdapterRig[] = [];

async function adapterOn(subscriptionName: string, instanceId: string, caConnection: string): Promise<AdapterRig> {
  const rig = await AdapterRig.start({
    sharedTenant: tenant,
    pubsub: {
      topicPublish: (data, attributes) => subscription.publish(data, attributes),
      subscription: subscriptionName,
      clientOptions: subscription.clientOptions,
    },
    config: { instanceId },
    // Same profile names on both sides (admins reuse names); only the CA connection reference tells them apart.
    caConnections: { [caConnection]: { type: 'local', directory: 'ca' } },
  });
  rigs.push(rig);
  return rig;
}

beforeAll(async () => {
  pool = await testKeyPool();
  tenant = await SandboxTenant.start();
  subscription = await freshSubscription('neighbours');
  const [second] = await subscription.topic.createSubscription(`${uniqueName('neighbours-b')}-sub`, {
    ackDeadlineSeconds: 10,
  });
  await adapterOn(subscription.subscriptionName, 'adapter-a', 'ca_a');
  await adapterOn(second.name, 'adapter-b', 'ca_b');
});

afterAll(async () => {
  for (const rig of rigs) await rig.stop();
  await tenant?.close();
  await subscription?.cleanup();
});

describe('two adapters on one topic, SCEP processes and an unconfigured reference', () => {
  it("each process is claimed by exactly its own adapter; nobody fails another adapter's process; one signData each", async () => {
    const [a, b] = rigs as [AdapterRig, AdapterRig];
    const create = (caConnection: string, shape: 'nested' | 'flat' | 'scep' = 'nested') =>
      tenant.createProcesses(1, { pool, caConnection, shape })[0] as string;
    const ofA = [0, 1, 2, 3].map((i) => create('ca_a', i % 2 === 0 ? 'nested' : 'flat'));
    const ofB = [0, 1, 2, 3].map((i) => create('ca_b', i % 2 === 0 ? 'nested' : 'flat'));
    // SCEP connections naming a reference that one of the adapters has configured must still be left alone.
    const scep = [create('ca_a', 'scep'), create('ca_b', 'scep'), create('scep_ca', 'scep')];
    const typo = [create('ca_aa')];
    const all = [...ofA, ...ofB, ...scep, ...typo];
    // One notification per process on the topic: both subscriptions receive each.
    for (const id of all) await a.notify(id, { encoding: all.indexOf(id) % 2 === 0 ? 'json-camel' : 'protobuf' });

    await tenant.waitUntilFinished([...ofA, ...ofB], 30_000);
    const skipped = (rig: AdapterRig) => rig.counter('certprov_processes_skipped_total', { reason: 'not_ours' });
    // A: B's 4 + 3 SCEP + 1 typo; B: A's 4 + 3 SCEP + 1 typo.
    await expect.poll(() => skipped(a), { timeout: 15_000 }).toBe(8);
    await expect.poll(() => skipped(b), { timeout: 15_000 }).toBe(8);

    for (const [ids, owner] of [
      [ofA, 'adapter-a'],
      [ofB, 'adapter-b'],
    ] as const) {
      for (const id of ids) {
        expect(tenant.process(id).issuedCertificate, `process ${id}`).toBeDefined();
        expect(tenant.claimedBy(id)).toBe(owner);
        expect(tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1, doubleSignData: 0, setFailures: 0 });
      }
    }
    for (const id of [...scep, ...typo]) {
      expect(tenant.claimedBy(id)).toBeUndefined();
      expect(tenant.process(id).failureMessage).toBeUndefined();
      expect(tenant.counters(id)).toMatchObject({ claims: 0, signDataCalls: 0, setFailures: 0, uploads: 0 });
    }
    // An admin looking for a typo finds the reference in the per-reference counter.
    expect(
      await a.counter('certprov_processes_not_ours_total', { ca_connection: 'ca_aa', reason: 'unknown_ca_connection' }),
    ).toBe(1);
    expect(
      await a.counter('certprov_processes_not_ours_total', { ca_connection: 'ca_b', reason: 'unknown_ca_connection' }),
    ).toBe(4);
    expect(await a.counter('certprov_processes_not_ours_total', { ca_connection: 'ca_a', reason: 'scep' })).toBe(1);
    expect(await a.counter('certprov_claims_total', { outcome: 'won' })).toBe(4);
    expect(await b.counter('certprov_claims_total', { outcome: 'won' })).toBe(4);
    expect(await a.counter('certprov_claims_total', { outcome: 'refused' })).toBe(0);
    expect(await a.counter('certprov_processes_failed_total')).toBe(0);
    expect(await b.counter('certprov_processes_failed_total')).toBe(0);
  });
});
