/**
 * setupPubSub against Google's Pub/Sub emulator: creates the wiring, is idempotent, corrects drift, and the
 * dead-letter wiring it makes actually parks messages.
 */
import { PubSub, type Message } from '@google-cloud/pubsub';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { setupPubSub, type SetupPubSubOptions } from '../../src/cli/pubsub-resources.ts';
import { emulatorClientOptions, TEST_PROJECT, uniqueName, waitFor } from '../support/pubsub.ts';

const clients: PubSub[] = [];
const created: { topics: string[]; subscriptions: string[] } = { topics: [], subscriptions: [] };

afterEach(async () => {
  const pubsub = new PubSub(emulatorClientOptions());
  await Promise.allSettled(created.subscriptions.splice(0).map((s) => pubsub.subscription(s).delete()));
  await Promise.allSettled(created.topics.splice(0).map((t) => pubsub.topic(t).delete()));
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await pubsub.close();
});

function client(): PubSub {
  const c = new PubSub(emulatorClientOptions());
  clients.push(c);
  return c;
}

function options(label: string, overrides: Partial<SetupPubSubOptions> = {}): SetupPubSubOptions {
  const base = uniqueName(label);
  const o: SetupPubSubOptions = {
    projectId: TEST_PROJECT,
    topic: `${base}-topic`,
    subscription: `${base}-sub`,
    deadLetterTopic: `${base}-dl`,
    log: silentLogger(),
    clientOptions: emulatorClientOptions(),
    ...overrides,
  };
  const full = (kind: string, id: string) => `projects/${TEST_PROJECT}/${kind}/${id}`;
  created.topics.push(full('topics', o.topic), full('topics', o.deadLetterTopic));
  created.subscriptions.push(full('subscriptions', o.subscription), full('subscriptions', `${o.deadLetterTopic}-sub`));
  return o;
}

describe('setupPubSub (Pub/Sub emulator)', () => {
  it('creates topic, dead-letter topic, both subscriptions and the policies, then reports no changes on a second run', async () => {
    const o = options('setup', { exactlyOnce: true });
    const first = await setupPubSub(o);
    expect(first.changed).toBe(true);
    expect(first.problems).toEqual([]);
    expect(first.resources.filter((r) => r.kind !== 'iam binding').map((r) => [r.kind, r.action])).toEqual([
      ['topic', 'created'],
      ['dead-letter topic', 'created'],
      ['dead-letter subscription', 'created'],
      ['subscription', 'created'],
    ]);
    // No project number: the service agent's bindings are left to the operator, and the note says so.
    expect(first.notes.join('\n')).toMatch(/service-PROJECT_NUMBER@gcp-sa-pubsub\.iam\.gserviceaccount\.com/);

    const pubsub = client();
    const [meta] = await pubsub.subscription(o.subscription).getMetadata();
    expect(meta.topic).toBe(`projects/${TEST_PROJECT}/topics/${o.topic}`);
    expect(meta.ackDeadlineSeconds).toBe(60);
    expect(meta.deadLetterPolicy).toMatchObject({
      deadLetterTopic: `projects/${TEST_PROJECT}/topics/${o.deadLetterTopic}`,
      maxDeliveryAttempts: 10,
    });
    expect(Number(meta.retryPolicy?.minimumBackoff?.seconds)).toBe(10);
    expect(Number(meta.retryPolicy?.maximumBackoff?.seconds)).toBe(600);
    expect(meta.enableExactlyOnceDelivery).toBe(true);
    const [dlMeta] = await pubsub.subscription(`${o.deadLetterTopic}-sub`).getMetadata();
    expect(dlMeta.topic).toBe(`projects/${TEST_PROJECT}/topics/${o.deadLetterTopic}`);
    expect(Number(dlMeta.messageRetentionDuration?.seconds)).toBe(7 * 24 * 3600);

    const second = await setupPubSub(o);
    expect(second.changed).toBe(false);
    expect(second.problems).toEqual([]);
    expect(second.resources.every((r) => r.action === 'unchanged')).toBe(true);
  });

  it('updates a subscription whose settings drifted, and reports what it changed', async () => {
    const o = options('drift');
    await setupPubSub(o);
    const changed = await setupPubSub({ ...o, maxDeliveryAttempts: 7, ackDeadlineSeconds: 30, minBackoffSeconds: 5 });
    const sub = changed.resources.find((r) => r.kind === 'subscription');
    expect(sub?.action).toBe('updated');
    expect(sub?.differences).toEqual(
      expect.arrayContaining([
        'ackDeadlineSeconds: 60 → 30',
        'deadLetterPolicy.maxDeliveryAttempts: 10 → 7',
        'retryPolicy.minimumBackoff: 10s → 5s',
      ]),
    );
    const [meta] = await client().subscription(o.subscription).getMetadata();
    expect(meta.ackDeadlineSeconds).toBe(30);
    expect(meta.deadLetterPolicy?.maxDeliveryAttempts).toBe(7);
    expect(Number(meta.retryPolicy?.minimumBackoff?.seconds)).toBe(5);
    expect(Number(meta.retryPolicy?.maximumBackoff?.seconds)).toBe(600);

    const again = await setupPubSub({ ...o, maxDeliveryAttempts: 7, ackDeadlineSeconds: 30, minBackoffSeconds: 5 });
    expect(again.changed).toBe(false);
  });

  it('adds a dead-letter policy to an existing plain subscription', async () => {
    const o = options('add-dl');
    const pubsub = client();
    const [topic] = await pubsub.createTopic(o.topic);
    await topic.createSubscription(o.subscription);
    const summary = await setupPubSub(o);
    expect(summary.resources.find((r) => r.kind === 'topic')?.action).toBe('unchanged');
    const sub = summary.resources.find((r) => r.kind === 'subscription');
    expect(sub?.action).toBe('updated');
    expect(sub?.differences).toContain(
      `deadLetterPolicy.deadLetterTopic: unset → projects/${TEST_PROJECT}/topics/${o.deadLetterTopic}`,
    );
    const [meta] = await pubsub.subscription(o.subscription).getMetadata();
    expect(meta.deadLetterPolicy?.deadLetterTopic).toBe(`projects/${TEST_PROJECT}/topics/${o.deadLetterTopic}`);
  });

  it('reports a subscription attached to another topic as a conflict and leaves it alone', async () => {
    const o = options('conflict');
    const pubsub = client();
    const other = uniqueName('other');
    created.topics.push(`projects/${TEST_PROJECT}/topics/${other}`);
    const [otherTopic] = await pubsub.createTopic(other);
    await otherTopic.createSubscription(o.subscription);
    const summary = await setupPubSub(o);
    expect(summary.resources.find((r) => r.kind === 'subscription')?.action).toBe('conflict');
    expect(summary.problems.join('\n')).toMatch(/cannot change topic/);
    const [meta] = await pubsub.subscription(o.subscription).getMetadata();
    expect(meta.topic).toBe(`projects/${TEST_PROJECT}/topics/${other}`);
  });

  it('changes nothing in a dry run', async () => {
    const o = options('dry');
    const summary = await setupPubSub({ ...o, dryRun: true });
    expect(summary.changed).toBe(true);
    expect(summary.resources.map((r) => r.action)).toEqual([
      'would create',
      'would create',
      'would create',
      'would create',
    ]);
    const [exists] = await client().topic(o.topic).exists();
    expect(exists).toBe(false);
  });

  it('reports the IAM bindings as skipped on the emulator, which does not implement IAM', async () => {
    const o = options('iam', { projectNumber: '123456789012' });
    const summary = await setupPubSub(o);
    const iam = summary.resources.filter((r) => r.kind === 'iam binding');
    expect(iam).toHaveLength(2);
    expect(iam.every((r) => r.action === 'skipped')).toBe(true);
    expect(iam.map((r) => r.name).join('\n')).toContain('service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com');
    expect(summary.problems).toEqual([]);
  });

  it('creates dead-letter wiring that parks a message nacked maxDeliveryAttempts times', async () => {
    // Shortest retry policy the setup accepts (0 s … 1 s) and Pub/Sub's minimum of 5 attempts, to keep this fast.
    const o = options('wiring', { maxDeliveryAttempts: 5, minBackoffSeconds: 0, maxBackoffSeconds: 1 });
    await setupPubSub(o);
    expect((await setupPubSub(o)).changed).toBe(false); // a zero backoff compares equal too
    const pubsub = client();
    const subscription = pubsub.subscription(o.subscription);
    const parkedSub = pubsub.subscription(`${o.deadLetterTopic}-sub`);
    const attempts: number[] = [];
    const parked: Message[] = [];
    subscription.on('message', (m: Message) => {
      attempts.push(m.deliveryAttempt);
      m.nack();
    });
    parkedSub.on('message', (m: Message) => {
      parked.push(m);
      m.ack();
    });
    await pubsub.topic(o.topic).publishMessage({ data: Buffer.from('undecodable') });
    await waitFor(() => parked.length === 1, 40_000, 'the parked message');
    await Promise.all([subscription.close(), parkedSub.close()]);
    expect(attempts).toEqual([1, 2, 3, 4, 5]);
    expect(parked[0]?.data.toString()).toBe('undecodable');
  });
});
