import { PubSub, type Topic } from '@google-cloud/pubsub';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  SandboxTenant,
  encodeProcessCreatedEvent,
  pubsubTopicSink,
  type KeyPool,
  type NotificationSink,
} from '../../src/sandbox/index.ts';
import { testKeyPool } from '../support/keys.ts';

// A Topic must be usable as the sink's target without casts (checked by tsc).
const topicSink: (topic: Topic) => NotificationSink = pubsubTopicSink;

/** A tiny protobuf reader: varint tags, length-delimited string fields only (all the message has). */
function decodeProtobuf(data: Buffer): Record<number, string> {
  const fields: Record<number, string> = {};
  let offset = 0;
  const varint = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = data[offset++];
      if (byte === undefined) throw new Error('truncated varint');
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (offset < data.length) {
    const tag = varint();
    if ((tag & 7) !== 2) throw new Error(`unexpected wire type ${tag & 7}`);
    const length = varint();
    fields[tag >>> 3] = data.subarray(offset, offset + length).toString('utf8');
    offset += length;
  }
  return fields;
}

const event = { processId: 'p-123_abc', customerId: 'C01xyz' };

describe('encodeProcessCreatedEvent', () => {
  it('encodes JSON with camelCase keys by default', () => {
    expect(JSON.parse(encodeProcessCreatedEvent(event).toString())).toEqual({
      certificateProvisioningProcessId: 'p-123_abc',
      customerId: 'C01xyz',
    });
  });

  it('encodes JSON with snake_case keys', () => {
    expect(JSON.parse(encodeProcessCreatedEvent(event, { encoding: 'json-snake' }).toString())).toEqual({
      certificate_provisioning_process_id: 'p-123_abc',
      customer_id: 'C01xyz',
    });
  });

  it('encodes the protobuf wire format: field 1 process id, field 2 customer id', () => {
    const data = encodeProcessCreatedEvent(event, { encoding: 'protobuf' });
    expect(data[0]).toBe(0x0a); // field 1, wire type 2
    expect(decodeProtobuf(data)).toEqual({ 1: 'p-123_abc', 2: 'C01xyz' });
  });

  it('writes multi-byte varint lengths for long values', () => {
    const long = { processId: 'x'.repeat(300), customerId: 'C' };
    const data = encodeProcessCreatedEvent(long, { encoding: 'protobuf' });
    expect([...data.subarray(0, 3)]).toEqual([0x0a, 0xac, 0x02]); // 300 = 0b10_0101100
    expect(decodeProtobuf(data)).toEqual({ 1: 'x'.repeat(300), 2: 'C' });
  });

  it.each(['json-camel', 'json-snake', 'protobuf'] as const)(
    'puts full resource names in place of ids (%s)',
    (encoding) => {
      const data = encodeProcessCreatedEvent(event, { encoding, resourceNames: true });
      const values =
        encoding === 'protobuf'
          ? Object.values(decodeProtobuf(data))
          : Object.values(JSON.parse(data.toString()) as object);
      expect(values).toEqual(['customers/C01xyz/certificateProvisioningProcesses/p-123_abc', 'customers/C01xyz']);
    },
  );

  it.each(['json-camel', 'json-snake', 'protobuf'] as const)('can leave the customer out (%s)', (encoding) => {
    const data = encodeProcessCreatedEvent(event, { encoding, omitCustomerId: true });
    const values =
      encoding === 'protobuf'
        ? Object.values(decodeProtobuf(data))
        : Object.values(JSON.parse(data.toString()) as object);
    expect(values).toEqual(['p-123_abc']);
  });
});

describe('tenant.notify', () => {
  let pool: KeyPool;
  let tenant: SandboxTenant;
  beforeAll(async () => {
    pool = await testKeyPool();
    tenant = await SandboxTenant.start();
  });
  afterAll(() => tenant.close());

  it('sends the process id and customer with the attributes to the sink', async () => {
    const id = tenant.createProcess({ key: pool.next('ec-p256'), customer: 'C0sandbox' });
    const sent: { data: Buffer; attributes: Record<string, string> }[] = [];
    await tenant.notify(id, { encoding: 'protobuf', attributes: { origin: 'test' } }, (data, attributes) => {
      sent.push({ data, attributes });
      return Promise.resolve();
    });
    expect(sent).toHaveLength(1);
    expect(decodeProtobuf(sent[0]?.data ?? Buffer.alloc(0))).toEqual({ 1: id, 2: 'C0sandbox' });
    expect(sent[0]?.attributes).toEqual({ origin: 'test' });
  });

  it('publishes through the Pub/Sub emulator with pubsubTopicSink', async () => {
    const pubsub = new PubSub({ projectId: 'certprov-test', apiEndpoint: inject('pubsubEmulatorHost') });
    const suffix = Math.random().toString(36).slice(2);
    const [topic] = await pubsub.createTopic(`sandbox-notify-${suffix}`);
    const [subscription] = await topic.createSubscription(`sandbox-notify-${suffix}`);
    try {
      const id = tenant.createProcess({ key: pool.next('rsa-2048') });
      const received = new Promise<{ data: Buffer; attributes: Record<string, string> }>((resolve, reject) => {
        subscription.once('error', reject);
        subscription.once('message', (message: { data: Buffer; attributes: Record<string, string>; ack(): void }) => {
          message.ack();
          resolve({ data: message.data, attributes: message.attributes });
        });
      });
      await tenant.notify(id, { encoding: 'json-snake', attributes: { kind: 'created' } }, topicSink(topic));
      const message = await received;
      expect(JSON.parse(message.data.toString())).toEqual({
        certificate_provisioning_process_id: id,
        customer_id: 'my_customer',
      });
      expect(message.attributes).toEqual({ kind: 'created' });
    } finally {
      await subscription.close();
      await subscription.delete();
      await topic.delete();
      await pubsub.close();
    }
  });
});
