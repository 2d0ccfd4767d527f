/**
 * Ids that are not one path segment (`.`, `..`) are malformed notifications, in every encoding: nacked, counted,
 * parked by the dead-letter policy of the real Pub/Sub emulator — never turned into processes (a `..` in a URL
 * would name another resource; DESIGN.md §1).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AdapterRig } from '../support/adapter-rig.ts';
import { freshSubscription, rigPubsub, type FreshSubscription } from '../support/pubsub.ts';

let subscription: FreshSubscription;
let rig: AdapterRig;

beforeAll(async () => {
  subscription = await freshSubscription('malformed-ids', {
    deadLetterMaxDeliveryAttempts: 5,
    retryBackoffSeconds: { min: 0, max: 1 },
  });
  rig = await AdapterRig.start({ pubsub: rigPubsub(subscription) });
});

afterAll(async () => {
  await rig?.stop();
  await subscription?.cleanup();
});

/** Protobuf field 1 (and 2) as length-delimited strings; values here are shorter than 128 bytes. */
function protobuf(processId: string, customer?: string): Buffer {
  const field = (n: number, v: string) => Buffer.concat([Buffer.from([(n << 3) | 2, v.length]), Buffer.from(v)]);
  return Buffer.concat([field(1, processId), ...(customer === undefined ? [] : [field(2, customer)])]);
}

it('"." and ".." ids are dead-lettered in JSON, protobuf, wrapped and as resource names; no process is made', async () => {
  const payloads = [
    Buffer.from(JSON.stringify({ certificateProvisioningProcessId: '.', customerId: 'C01' })),
    Buffer.from(JSON.stringify({ certificate_provisioning_process_id: '..' })),
    Buffer.from(JSON.stringify({ name: 'customers/C01/certificateProvisioningProcesses/..' })),
    Buffer.from(JSON.stringify({ eventData: { processId: '..' } })),
    protobuf('.', 'C01'),
    protobuf('..'),
    Buffer.concat([Buffer.from([0x0a, protobuf('..').length]), protobuf('..')]), // wrapped protobuf
  ];
  const deadLetter = subscription.deadLetter;
  if (deadLetter === undefined) throw new Error('no dead-letter subscription');
  const parked: Buffer[] = [];
  deadLetter.subscription.on('message', (message: { data: Buffer; ack(): void }) => {
    message.ack();
    parked.push(message.data);
  });
  try {
    for (const data of payloads) await rig.publishRaw(data);
    await expect.poll(() => parked.length, { timeout: 45_000, interval: 200 }).toBe(payloads.length);
  } finally {
    await deadLetter.subscription.close();
  }
  expect(new Set(parked.map((d) => d.toString('hex')))).toEqual(new Set(payloads.map((d) => d.toString('hex'))));
  expect(await rig.counter('certprov_messages_malformed_total')).toBeGreaterThanOrEqual(payloads.length * 5 - 2);
  expect(await rig.counter('certprov_messages_acked_total')).toBe(0);
  expect(await rig.adapter.store.get('.')).toBeUndefined();
  expect(await rig.adapter.store.get('..')).toBeUndefined();
  expect(Object.values(rig.tenant.requests).reduce((a, b) => a + b, 0)).toBe(0);
  const warnings = rig.logs
    .entries()
    .filter((e) => e.message === 'undecodable provisioning notification; nacked for the dead-letter policy');
  expect(warnings.map((w) => w.problem)).toEqual(expect.arrayContaining([expect.stringMatching(/not a path segment/)]));
});
