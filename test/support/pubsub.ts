/**
 * Per-test Pub/Sub resources on the emulator started by the global setup (`inject('pubsubEmulatorHost')`): each
 * call makes a uniquely named topic and subscription (optionally with a dead-letter topic, its subscription and a
 * dead-letter policy) in project `certprov-test`, so test files never see each other's messages.
 *
 * The client is pointed at the emulator through its constructor options rather than `PUBSUB_EMULATOR_HOST`, so a
 * test never changes process-wide state.
 */
import { randomBytes } from 'node:crypto';
import { PubSub, type ClientConfig, type Subscription, type Topic } from '@google-cloud/pubsub';
import { inject } from 'vitest';

export const TEST_PROJECT = 'certprov-test';

/**
 * Client options for the test emulator. `universeDomain` is set so google-gax does not probe for a GCE metadata
 * server on every client (it only asks for the universe domain, and prints a MetadataLookupWarning when none is
 * found); `emulatorMode` makes the client use an insecure channel whatever the endpoint looks like.
 */
export function emulatorClientOptions(host: string = inject('pubsubEmulatorHost')): ClientConfig {
  return { projectId: TEST_PROJECT, apiEndpoint: host, emulatorMode: true, universeDomain: 'googleapis.com' };
}

export interface FreshSubscriptionOptions {
  /** Adds a dead-letter topic, a subscription on it, and a dead-letter policy with this many attempts (5–100). */
  deadLetterMaxDeliveryAttempts?: number;
  /** Ack deadline of the subscription, seconds. Default 10 (Pub/Sub's minimum; lost acks come back fast). */
  ackDeadlineSeconds?: number;
  /** Retry policy backoff range, seconds. Default none (redeliver at once). */
  retryBackoffSeconds?: { min: number; max: number };
  exactlyOnce?: boolean;
}

export interface FreshSubscription {
  readonly pubsub: PubSub;
  readonly topic: Topic;
  readonly subscription: Subscription;
  /** `projects/certprov-test/subscriptions/…` */
  readonly subscriptionName: string;
  /** Client options for the emulator (pass to a PubSubMessageSource as `clientOptions`). */
  readonly clientOptions: ClientConfig;
  readonly deadLetter?: { readonly topic: Topic; readonly subscription: Subscription };
  /** Publishes and returns the message id. */
  publish(data: Buffer | string, attributes?: Record<string, string>): Promise<string>;
  /** Deletes what was created and closes the client. */
  cleanup(): Promise<void>;
}

/** Unique, valid Pub/Sub resource id for `label`. */
export function uniqueName(label: string): string {
  const safe = label.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40);
  return `t-${safe}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export async function freshSubscription(
  label: string,
  options: FreshSubscriptionOptions = {},
): Promise<FreshSubscription> {
  const clientOptions = emulatorClientOptions();
  const pubsub = new PubSub(clientOptions);
  const base = uniqueName(label);
  const [topic] = await pubsub.createTopic(base);
  let deadLetter: FreshSubscription['deadLetter'];
  if (options.deadLetterMaxDeliveryAttempts !== undefined) {
    const [dlTopic] = await pubsub.createTopic(`${base}-dl`);
    const [dlSubscription] = await dlTopic.createSubscription(`${base}-dl-sub`);
    deadLetter = { topic: dlTopic, subscription: dlSubscription };
  }
  const [subscription] = await topic.createSubscription(`${base}-sub`, {
    ackDeadlineSeconds: options.ackDeadlineSeconds ?? 10,
    ...(deadLetter === undefined
      ? {}
      : {
          deadLetterPolicy: {
            deadLetterTopic: deadLetter.topic.name,
            maxDeliveryAttempts: options.deadLetterMaxDeliveryAttempts,
          },
        }),
    ...(options.retryBackoffSeconds === undefined
      ? {}
      : {
          retryPolicy: {
            minimumBackoff: { seconds: options.retryBackoffSeconds.min },
            maximumBackoff: { seconds: options.retryBackoffSeconds.max },
          },
        }),
    ...(options.exactlyOnce === undefined ? {} : { enableExactlyOnceDelivery: options.exactlyOnce }),
  });
  return {
    pubsub,
    topic,
    subscription,
    subscriptionName: subscription.name,
    clientOptions,
    ...(deadLetter === undefined ? {} : { deadLetter }),
    publish: (data, attributes) =>
      topic.publishMessage({
        data: typeof data === 'string' ? Buffer.from(data) : data,
        ...(attributes ? { attributes } : {}),
      }),
    cleanup: async () => {
      const deletions: Promise<unknown>[] = [subscription.delete(), topic.delete()];
      if (deadLetter !== undefined) deletions.push(deadLetter.subscription.delete(), deadLetter.topic.delete());
      await Promise.allSettled(deletions);
      await Promise.allSettled([subscription.close(), deadLetter?.subscription.close()]);
      await pubsub.close();
    },
  };
}

/** The `pubsub` option of an adapter rig (test/support/adapter-rig.ts) that reads `fresh`'s subscription. */
export function rigPubsub(fresh: FreshSubscription): {
  topicPublish: (data: Buffer, attributes: Record<string, string>) => Promise<string>;
  subscription: string;
  clientOptions: ClientConfig;
} {
  return {
    topicPublish: (data, attributes) => fresh.publish(data, attributes),
    subscription: fresh.subscriptionName,
    clientOptions: fresh.clientOptions,
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 25 ms until it holds or `timeoutMs` passes (then rejects with `what`). */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}
