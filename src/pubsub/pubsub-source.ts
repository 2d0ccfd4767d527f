/**
 * {@link MessageSource} over a Google Cloud Pub/Sub subscription (`@google-cloud/pubsub` 5.x, streaming pull).
 *
 * - Flow control is a real bound: `maxMessages: maxInFlight` with `allowExcessMessages: false`, otherwise the
 *   client hands out whole batches beyond the limit (DESIGN.md §5).
 * - The client extends each held message's ack deadline up to `maxExtensionMs`; with the memory store the intake
 *   holds a message until its process finished (DESIGN.md §5).
 * - `PUBSUB_EMULATOR_HOST` is honoured by the client itself (pubsub.js `determineBaseUrl_`).
 * - The client's `close()` nacks held messages (behavior NACK) and then waits for its acks/nacks to be flushed, by
 *   default for up to maxExtensionTime: against a Pub/Sub that stops answering (a frozen TCP proxy in
 *   test/integration/pubsub-source.test.ts) it hung for the full 60 s. `close()` here nacks what the handler holds,
 *   passes closeTimeoutMs as the client's close timeout, and races the whole shutdown against the same deadline.
 * - A subscriber whose stream ended on a non-retryable error (NOT_FOUND, PERMISSION_DENIED) stays closed in the
 *   client; this source reports the error to `onError` listeners and reopens with backoff, so a subscription that
 *   is created or a permission that is granted later takes effect without a restart.
 */
import {
  PubSub,
  Duration,
  SubscriptionCloseBehaviors,
  type ClientConfig,
  type Message,
  type Subscription,
} from '@google-cloud/pubsub';
import { DeploymentFaultError, RetryableError, describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { GRPC_STATUS as GRPC, grpcCode } from './grpc-status.ts';
import type { IncomingMessage, MessageHandler, MessageSource } from './source.ts';

const DEFAULTS = {
  metadataTimeoutMs: 15_000,
  reopenInitialDelayMs: 1_000,
  reopenMaxDelayMs: 60_000,
} as const satisfies Record<string, number>;

const SUBSCRIPTION_NAME = /^projects\/([^/]+)\/subscriptions\/([^/]+)$/;

export interface PubSubMessageSourceOptions {
  /** Full subscription name, `projects/PROJECT/subscriptions/NAME` (config `pubsub.subscription`). */
  subscription: string;
  /** Most messages held at once; flow control with allowExcessMessages false (config default 100). */
  maxInFlight: number;
  /** Longest time the client keeps extending a held message's ack deadline (config default 60 min). */
  maxExtensionMs: number;
  /** Hard bound on {@link PubSubMessageSource.close} (config default 10 s). */
  closeTimeoutMs: number;
  log: Logger;
  /**
   * Counts `messagesNacked{reason="shutdown"}` for messages this source hands back itself when it closes; they never
   * reached the intake. Everything else (received, acked, other nacks, malformed) is counted once, by the intake.
   */
  metrics?: Metrics;
  /**
   * Extra `PubSub` client options (tests pass `apiEndpoint`/`emulatorMode`). Default none: the client reads
   * `PUBSUB_EMULATOR_HOST` and Application Default Credentials (Workload Identity on GKE).
   */
  clientOptions?: ClientConfig;
  /** Bound on the start-up metadata check. Default 15 s. */
  metadataTimeoutMs?: number;
  /** First delay before reopening a subscriber that stopped on an error; doubles up to the max. Default 1 s. */
  reopenInitialDelayMs?: number;
  /** Longest delay between reopen attempts. Default 60 s. */
  reopenMaxDelayMs?: number;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

interface Held {
  readonly message: Message;
  state: 'held' | 'acked' | 'nacked';
  ackResult?: Promise<void>;
}

export class PubSubMessageSource implements MessageSource {
  readonly subscriptionName: string;

  readonly #options: PubSubMessageSourceOptions;
  readonly #log: Logger;
  readonly #projectId: string;
  readonly #held = new Set<Held>();
  readonly #errorListeners: ((error: Error) => void)[] = [];
  #state: State = 'new';
  #pubsub: PubSub | undefined;
  #subscription: Subscription | undefined;
  #handler: MessageHandler | undefined;
  #exactlyOnce: boolean | undefined;
  #reopenTimer: NodeJS.Timeout | undefined;
  #reopenDelayMs: number;
  #closing: Promise<void> | undefined;

  constructor(options: PubSubMessageSourceOptions) {
    const match = SUBSCRIPTION_NAME.exec(options.subscription);
    if (match === null) {
      throw new Error(`pubsub.subscription must be projects/PROJECT/subscriptions/NAME, got "${options.subscription}"`);
    }
    if (!(options.maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    this.#projectId = match[1] ?? '';
    this.subscriptionName = options.subscription;
    this.#options = options;
    this.#log = options.log.child({ component: 'pubsub', subscription: options.subscription });
    this.#reopenDelayMs = options.reopenInitialDelayMs ?? DEFAULTS.reopenInitialDelayMs;
  }

  /**
   * Whether the subscription has exactly-once delivery, from its metadata; undefined when the metadata could not be
   * read (the adapter's identity may lack `pubsub.subscriptions.get`).
   */
  get exactlyOnceDelivery(): boolean | undefined {
    return this.#exactlyOnce;
  }

  /** Messages handed to the handler and not yet acked or nacked. */
  get held(): number {
    return this.#held.size;
  }

  /**
   * Checks the subscription, then opens the streaming pull. Rejects with a {@link DeploymentFaultError} when the
   * subscription does not exist or the credentials are refused, with a {@link RetryableError} when Pub/Sub cannot
   * be reached.
   */
  async start(handler: MessageHandler): Promise<void> {
    if (this.#state !== 'new') throw new Error(`PubSubMessageSource cannot start: it is ${this.#state}`);
    this.#state = 'starting';
    this.#handler = handler;
    const pubsub = new PubSub({ projectId: this.#projectId, ...this.#options.clientOptions });
    this.#pubsub = pubsub;
    const subscription = pubsub.subscription(this.subscriptionName, {
      flowControl: { maxMessages: this.#options.maxInFlight, allowExcessMessages: false },
      maxExtensionTime: Duration.from({ milliseconds: this.#options.maxExtensionMs }),
      // NACK: hand held messages back at once, so another replica gets them during a rolling update. The timeout
      // bounds the client's flush of pending acks/nacks; close() adds its own hard timer on top.
      closeOptions: {
        behavior: SubscriptionCloseBehaviors.NackImmediately,
        timeout: Duration.from({ milliseconds: this.#options.closeTimeoutMs }),
      },
    });
    this.#subscription = subscription;

    try {
      const where = pubsub.isEmulator
        ? ` on the Pub/Sub emulator at ${pubsub.options.servicePath}:${pubsub.options.port}`
        : '';
      await this.#checkSubscription(subscription, where);
    } catch (error) {
      this.#state = 'closed';
      await this.#closeClient(Date.now() + this.#options.closeTimeoutMs);
      throw error;
    }
    if (this.#state !== 'starting') return; // closed while checking

    // Listeners before 'message': an 'error' event without a listener would crash the process.
    subscription.on('error', (error: Error) => this.#onStreamError(error));
    subscription.on('close', () => this.#onStreamClose());
    subscription.on('message', (message: Message) => this.#onMessage(message));
    this.#state = 'running';
    this.#log.info(
      {
        maxInFlight: this.#options.maxInFlight,
        maxExtensionMs: this.#options.maxExtensionMs,
        exactlyOnceDelivery: this.#exactlyOnce,
        emulator: pubsub.isEmulator,
      },
      'pulling from the Pub/Sub subscription',
    );
  }

  /** Stops pulling, nacks held messages, and waits for the client at most `closeTimeoutMs`. Never rejects. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  onError(listener: (error: Error) => void): void {
    this.#errorListeners.push(listener);
  }

  async #checkSubscription(subscription: Subscription, where: string): Promise<void> {
    const timeout = this.#options.metadataTimeoutMs ?? DEFAULTS.metadataTimeoutMs;
    try {
      const [metadata] = await subscription.getMetadata({ timeout });
      this.#exactlyOnce = metadata.enableExactlyOnceDelivery === true;
      const deadLetter = metadata.deadLetterPolicy;
      if (
        deadLetter?.deadLetterTopic === undefined ||
        deadLetter.deadLetterTopic === null ||
        deadLetter.deadLetterTopic === ''
      ) {
        // Undecodable messages are nacked so the dead-letter policy parks them (DESIGN.md §1); without one they
        // come back until the retention period ends.
        this.#log.warn(
          'the subscription has no dead-letter policy: messages that cannot be decoded are redelivered until they expire (run `certprov setup-pubsub`)',
        );
      } else {
        this.#log.info(
          {
            deadLetterTopic: deadLetter.deadLetterTopic,
            maxDeliveryAttempts: deadLetter.maxDeliveryAttempts,
            ackDeadlineSeconds: metadata.ackDeadlineSeconds,
          },
          'subscription checked',
        );
      }
    } catch (error) {
      const code = grpcCode(error);
      if (code === GRPC.PERMISSION_DENIED) {
        // roles/pubsub.subscriber grants consume but not subscriptions.get: pulling may still work. Existence and
        // permissions are then reported by the stream (onError); acks still confirm under exactly-once delivery,
        // because ackWithResponse() follows what the stream reports.
        this.#log.warn(
          { error: describeError(error) },
          'cannot read the subscription metadata (grant roles/pubsub.viewer for the start-up check); continuing',
        );
        return;
      }
      throw this.#classify(error, where);
    }
  }

  #onMessage(message: Message): void {
    if (this.#state !== 'running' || this.#handler === undefined) {
      // Arrived while closing: hand it straight back.
      message.nack();
      return;
    }
    this.#reopenDelayMs = this.#options.reopenInitialDelayMs ?? DEFAULTS.reopenInitialDelayMs;
    const held: Held = { message, state: 'held' };
    this.#held.add(held);
    const incoming: IncomingMessage = {
      id: message.id,
      data: message.data,
      attributes: message.attributes,
      // 0 when the subscription has no dead-letter policy (the server sends no count then).
      deliveryAttempt: message.deliveryAttempt > 0 ? message.deliveryAttempt : undefined,
      publishTime: new Date(message.publishTime.getTime()),
      ack: () => this.#ack(held),
      nack: () => this.#nack(held),
    };
    try {
      this.#handler(incoming);
    } catch (error) {
      // A throwing handler is a bug on our side; hand the message back rather than leave it held until expiry.
      this.#log.error({ error: describeError(error), messageId: message.id }, 'message handler threw; message nacked');
      this.#nack(held);
    }
  }

  #ack(held: Held): Promise<void> {
    if (held.state === 'acked') return held.ackResult ?? Promise.resolve();
    if (held.state === 'nacked') {
      return Promise.reject(
        new RetryableError(
          `message ${held.message.id} was already handed back (nacked or source closed); it will be redelivered`,
        ),
      );
    }
    held.state = 'acked';
    this.#held.delete(held);
    held.ackResult = this.#confirmAck(held.message);
    return held.ackResult;
  }

  /**
   * `ackWithResponse()` waits for the server's confirmation when the subscription has exactly-once delivery and
   * otherwise sends a plain ack and resolves at once (subscriber.js, `Message.ackWithResponse`). Calling it in both
   * cases follows what the stream reports, even when the metadata could not be read at start.
   */
  async #confirmAck(message: Message): Promise<void> {
    let response: string;
    try {
      response = await message.ackWithResponse();
    } catch (error) {
      throw new RetryableError(`Pub/Sub did not confirm the ack of message ${message.id}; it will be redelivered`, {
        cause: error,
      });
    }
    if (response !== 'SUCCESS') {
      throw new RetryableError(
        `Pub/Sub answered ${response} to the ack of message ${message.id}; it will be redelivered`,
      );
    }
  }

  #nack(held: Held): void {
    if (held.state !== 'held') return;
    held.state = 'nacked';
    this.#held.delete(held);
    held.message.nack();
  }

  #onStreamError(error: Error): void {
    const fields = { error: describeError(error), grpcCode: grpcCode(error) };
    if (this.#state !== 'running') {
      // Streams torn down by our own close() may report a cancellation; that is no subscription problem.
      this.#log.debug(fields, 'Pub/Sub stream error while closing');
      return;
    }
    const classified = this.#classify(error, '');
    if (classified instanceof DeploymentFaultError) this.#log.error(fields, classified.message);
    else this.#log.warn(fields, classified.message);
    for (const listener of this.#errorListeners) {
      try {
        listener(classified);
      } catch (listenerError) {
        this.#log.error({ error: describeError(listenerError) }, 'onError listener threw');
      }
    }
  }

  #onStreamClose(): void {
    if (this.#state !== 'running') return;
    // The client closed the subscriber on its own (a non-retryable stream error) and nacked what it held: those
    // deliveries are over, an ack for them would not count.
    for (const held of this.#held) held.state = 'nacked';
    this.#held.clear();
    const delay = this.#reopenDelayMs;
    this.#reopenDelayMs = Math.min(delay * 2, this.#options.reopenMaxDelayMs ?? DEFAULTS.reopenMaxDelayMs);
    this.#log.warn({ reopenInMs: delay }, 'the Pub/Sub subscriber stopped; reopening after a delay');
    clearTimeout(this.#reopenTimer);
    this.#reopenTimer = setTimeout(() => {
      this.#reopenTimer = undefined;
      if (this.#state === 'running' && this.#subscription !== undefined && !this.#subscription.isOpen) {
        this.#subscription.open();
      }
    }, delay);
  }

  async #close(): Promise<void> {
    const deadline = Date.now() + this.#options.closeTimeoutMs;
    const wasRunning = this.#state === 'running';
    this.#state = 'closing';
    clearTimeout(this.#reopenTimer);
    this.#reopenTimer = undefined;
    const handedBack = this.#held.size;
    for (const held of [...this.#held]) this.#nack(held);
    if (handedBack > 0) this.#options.metrics?.messagesNacked.inc({ reason: 'shutdown' }, handedBack);

    const subscription = this.#subscription;
    if (wasRunning && subscription !== undefined) {
      const closed = await withDeadline(subscription.close(), deadline);
      if (closed === 'timeout') {
        this.#log.warn(
          { closeTimeoutMs: this.#options.closeTimeoutMs },
          'the Pub/Sub subscriber did not close in time; continuing shutdown',
        );
      } else if (closed instanceof Error) {
        this.#log.warn({ error: describeError(closed) }, 'closing the Pub/Sub subscriber failed; continuing shutdown');
      }
      subscription.removeAllListeners('message');
    }
    await this.#closeClient(deadline);
    this.#state = 'closed';
    // Nothing was pulled when start() never got as far: no line that suggests otherwise.
    if (wasRunning) this.#log.info({ handedBack }, 'stopped pulling from the Pub/Sub subscription');
  }

  /** Closes the gRPC channels, waiting at most until the deadline. */
  async #closeClient(deadline: number): Promise<void> {
    const pubsub = this.#pubsub;
    if (pubsub === undefined) return;
    this.#pubsub = undefined;
    const closed = await withDeadline(pubsub.close(), deadline);
    if (closed === 'timeout') this.#log.warn('the Pub/Sub client did not close in time');
  }

  /**
   * Maps a gRPC error to the outcome classes of DESIGN.md §5. Deployment faults say what the operator should do in
   * the message itself (it is what `certprov run` prints before exiting) and again in `hint`.
   */
  #classify(error: unknown, where: string): Error {
    const name = this.subscriptionName;
    const fault = (what: string, hint: string) =>
      new DeploymentFaultError(`${what}: ${hint}`, { component: 'pubsub', cause: error, hint });
    switch (grpcCode(error)) {
      case GRPC.NOT_FOUND:
        return fault(
          `Pub/Sub subscription ${name} does not exist${where}`,
          'create it with `certprov setup-pubsub` (or the gcloud commands it prints), ' +
            'or correct pubsub.subscription in the configuration',
        );
      case GRPC.PERMISSION_DENIED:
        return fault(
          `the adapter may not pull from Pub/Sub subscription ${name} (PERMISSION_DENIED)`,
          "grant roles/pubsub.subscriber on the subscription to the adapter's service account",
        );
      case GRPC.UNAUTHENTICATED:
        return fault(
          `Pub/Sub refused the adapter's credentials for ${name} (UNAUTHENTICATED)`,
          'check Workload Identity / GOOGLE_APPLICATION_CREDENTIALS',
        );
      case GRPC.DEADLINE_EXCEEDED:
      case GRPC.UNAVAILABLE:
        return new RetryableError(`Pub/Sub is not reachable for subscription ${name}${where}`, { cause: error });
      default:
        return new RetryableError(`Pub/Sub error on subscription ${name}${where}: ${describeError(error)}`, {
          cause: error,
        });
    }
  }
}

/** Waits for `promise` until the deadline; never rejects. */
async function withDeadline(promise: Promise<unknown>, deadline: number): Promise<'done' | 'timeout' | Error> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([
      promise.then(
        () => 'done' as const,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
