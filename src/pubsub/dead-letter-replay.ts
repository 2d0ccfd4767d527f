/**
 * Moves parked messages from the dead-letter subscription back to the provisioning topic, so that a decoder fix or
 * a configuration fix can be followed by a replay instead of waiting for devices to retry (about a day, DESIGN.md
 * §1). Each message is republished with its data and attributes (minus the `CloudPubSubDeadLetter*` attributes
 * Pub/Sub added when it parked it) and acknowledged on the dead-letter subscription only after the publish
 * succeeded: a message is never lost, at worst published twice (an ack that fails after the publish) — and the
 * adapter de-duplicates deliveries of one process.
 *
 * Synchronous pull (not a streaming listener): a command-line tool takes a bounded number of messages and stops.
 */
import { PubSub, v1, type ClientConfig } from '@google-cloud/pubsub';
import { describeError } from '../errors.ts';
import { decodeNotification } from './decode.ts';
import { GRPC_STATUS, grpcCode } from './grpc-status.ts';

/** Messages taken per pull (Pub/Sub returns at most this many, often fewer). */
const PULL_BATCH = 100;
/**
 * Default: how long one pull may wait for messages before the subscription counts as drained (`--pull-timeout`).
 * A pull that comes back empty ends the replay, so the default leaves a slow answer time to come; tests and
 * scripts that know the subscription's state can shorten it.
 */
export const DEFAULT_PULL_TIMEOUT_MS = 10_000;
/** Attributes Pub/Sub adds when it dead-letters a message; they describe the parking, not the notification. */
const DEAD_LETTER_ATTRIBUTE_PREFIX = 'CloudPubSubDeadLetter';

export interface ReplayOptions {
  /** The dead-letter subscription: `projects/P/subscriptions/S`. */
  readonly deadLetterSubscription: string;
  /** The provisioning topic the adapter's subscription reads: `projects/P/topics/T`. */
  readonly topic: string;
  /** Most messages to replay (or, with dryRun, to show). */
  readonly limit: number;
  /** Pull and describe, republish nothing, leave every message parked. */
  readonly dryRun: boolean;
  /** Customer assumed for notifications naming none (only for the description of what would be replayed). */
  readonly customer: string;
  /** One line per message (stdout of the command). */
  readonly report: (line: string) => void;
  /** How long one pull may wait for messages before the subscription counts as drained. Default 10 s. */
  readonly pullTimeoutMs?: number;
  /** Extra client options (tests); default PUBSUB_EMULATOR_HOST or Application Default Credentials. */
  readonly clientOptions?: ClientConfig;
}

export interface ReplaySummary {
  /** Republished and acknowledged (dry run: would be). */
  readonly replayed: number;
  /** Republish failed: left parked (nacked), the replay stopped. */
  readonly failed: number;
  /** The first failure, for the error line. */
  readonly error?: string;
}

interface Pulled {
  readonly ackId: string;
  readonly messageId: string;
  readonly data: Buffer;
  readonly attributes: Record<string, string>;
  readonly publishTime: string;
}

/** Resource names must be full: the command resolves ids against --project first. */
const FULL_SUBSCRIPTION = /^projects\/[^/]+\/subscriptions\/[^/]+$/;
const FULL_TOPIC = /^projects\/[^/]+\/topics\/[^/]+$/;

export async function replayDeadLetters(options: ReplayOptions): Promise<ReplaySummary> {
  if (!FULL_SUBSCRIPTION.test(options.deadLetterSubscription)) {
    throw new Error(`not a subscription name: ${options.deadLetterSubscription}`);
  }
  if (!FULL_TOPIC.test(options.topic)) throw new Error(`not a topic name: ${options.topic}`);
  const pubsub = new PubSub(options.clientOptions ?? {});
  // The PubSub client resolves PUBSUB_EMULATOR_HOST and credentials; the generated client takes that config.
  const { port, ...clientConfig } = await pubsub.getClientConfig();
  const subscriber = new v1.SubscriberClient({
    ...clientConfig,
    ...(port === undefined ? {} : { port: Number(port) }),
  });
  const topic = pubsub.topic(options.topic, { batching: { maxMessages: 1 } });
  const subscription = options.deadLetterSubscription;
  const held: string[] = [];
  let replayed = 0;
  try {
    // Fail early and clearly when a name is wrong (NOT_FOUND) rather than after pulling.
    const [topicExists] = await topic.exists();
    if (!topicExists) throw new Error(`topic ${options.topic} does not exist`);

    while (replayed + held.length < options.limit) {
      const batch = await pull(
        subscriber,
        subscription,
        Math.min(PULL_BATCH, options.limit - replayed - held.length),
        options.pullTimeoutMs ?? DEFAULT_PULL_TIMEOUT_MS,
      );
      if (batch.length === 0) break;
      if (options.dryRun) {
        // Held until the end: released at once, they would be pulled again by the next batch.
        for (const message of batch) {
          held.push(message.ackId);
          options.report(`would replay ${describe(message, options.customer)}`);
        }
        continue;
      }
      const results = await Promise.allSettled(
        batch.map((message) =>
          topic.publishMessage({ data: message.data, attributes: notificationAttributes(message) }),
        ),
      );
      const published = batch.filter((_, i) => results[i]?.status === 'fulfilled');
      const refused = batch.filter((_, i) => results[i]?.status === 'rejected');
      if (published.length > 0) {
        await subscriber.acknowledge({ subscription, ackIds: published.map((m) => m.ackId) });
        replayed += published.length;
        for (const message of published) options.report(`replayed ${describe(message, options.customer)}`);
      }
      if (refused.length > 0) {
        // Still parked: hand them back to the dead-letter subscription and stop; the operator fixes and reruns.
        await release(
          subscriber,
          subscription,
          refused.map((m) => m.ackId),
        );
        const first = results.find((r) => r.status === 'rejected');
        return { replayed, failed: refused.length, error: describeError(first?.reason) };
      }
    }
    return { replayed: options.dryRun ? held.length : replayed, failed: 0 };
  } finally {
    if (held.length > 0) await release(subscriber, subscription, held).catch(() => undefined);
    await subscriber.close().catch(() => undefined);
    await pubsub.close().catch(() => undefined);
  }
}

async function pull(
  subscriber: v1.SubscriberClient,
  subscription: string,
  maxMessages: number,
  timeoutMs: number,
): Promise<Pulled[]> {
  let response;
  try {
    [response] = await subscriber.pull({ subscription, maxMessages }, { timeout: timeoutMs });
  } catch (error) {
    // An empty subscription may make a pull wait out its deadline instead of answering with nothing.
    if (grpcCode(error) === GRPC_STATUS.DEADLINE_EXCEEDED) return [];
    throw error;
  }
  return (response.receivedMessages ?? []).flatMap((received) => {
    const message = received.message;
    if (received.ackId === null || received.ackId === undefined || message === null || message === undefined) {
      return [];
    }
    return [
      {
        ackId: received.ackId,
        messageId: message.messageId ?? '?',
        data: Buffer.from(message.data ?? new Uint8Array()),
        attributes: { ...(message.attributes ?? {}) },
        publishTime: timestampText(message.publishTime),
      },
    ];
  });
}

/** Nack: an ack deadline of 0 makes the messages deliverable again on the dead-letter subscription. */
async function release(subscriber: v1.SubscriberClient, subscription: string, ackIds: string[]): Promise<void> {
  await subscriber.modifyAckDeadline({ subscription, ackIds, ackDeadlineSeconds: 0 });
}

function notificationAttributes(message: Pulled): Record<string, string> {
  return Object.fromEntries(
    Object.entries(message.attributes).filter(([key]) => !key.startsWith(DEAD_LETTER_ATTRIBUTE_PREFIX)),
  );
}

/** `<message id> (N bytes, published T, process P | undecodable: why)` — ids only, no payload. */
function describe(message: Pulled, customer: string): string {
  const decoded = decodeNotification(message.data, notificationAttributes(message), customer);
  const what = decoded.ok ? `process ${decoded.ref.processId}` : `still undecodable: ${decoded.problem}`;
  return `${message.messageId} (${message.data.length} bytes, published ${message.publishTime}, ${what})`;
}

function timestampText(timestamp: { seconds?: unknown; nanos?: unknown } | null | undefined): string {
  const seconds = Number(timestamp?.seconds ?? NaN);
  return Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : 'unknown';
}
