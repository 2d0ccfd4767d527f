/**
 * An in-memory {@link MessageSource} for the embedded demo and for tests: the same at-least-once contract as a
 * Pub/Sub subscription with a dead-letter policy, without a network. It mirrors the parts of Pub/Sub the intake
 * relies on: asynchronous delivery, a bound on unacked messages (flow control with allowExcessMessages false,
 * DESIGN.md §5), redelivery after a nack with `deliveryAttempt` incremented, and parking a message in
 * {@link InProcessMessageSource.deadLetters} once it was nacked on its last allowed attempt (Pub/Sub forwards it
 * to the dead-letter topic after `maxDeliveryAttempts`). Ack deadlines are not modelled: a held message stays held
 * until it is acked or nacked, as with the client's lease extension.
 */
import type { Logger } from '../observability/logger.ts';
import type { IncomingMessage, MessageHandler, MessageSource } from './source.ts';

/** Default delay before a nacked message is delivered again. */
export const DEFAULT_REDELIVERY_DELAY_MS = 200;
/** Default bound on unacked messages handed to the handler (same as `pubsub.maxInFlight`'s default). */
export const DEFAULT_IN_PROCESS_MAX_IN_FLIGHT = 100;

export interface InProcessMessageSourceOptions {
  /** Delay before a nacked message is delivered again (stands in for the retry policy's backoff). Default 200 ms. */
  redeliveryDelayMs?: number;
  /**
   * Mirrors a dead-letter policy: a message nacked on its `maxDeliveryAttempts`-th delivery goes to
   * {@link InProcessMessageSource.deadLetters} instead of being redelivered. Default: unlimited redelivery.
   */
  maxDeliveryAttempts?: number;
  /** Most unacked messages held by the handler at once. Default 100. */
  maxInFlight?: number;
  /** Where a throwing handler is reported (the message is then nacked). Default: not logged. */
  log?: Logger;
}

/** A message parked after its last allowed delivery attempt. */
export interface DeadLetter {
  readonly id: string;
  readonly data: Buffer;
  readonly attributes: Readonly<Record<string, string>>;
  readonly publishTime: Date;
  /** Deliveries made before it was parked. */
  readonly deliveryAttempts: number;
}

interface Entry {
  readonly id: string;
  readonly data: Buffer;
  readonly attributes: Readonly<Record<string, string>>;
  readonly publishTime: Date;
  /** Deliveries so far (the next delivery reports this + 1). */
  attempts: number;
}

type DeliveryState = 'held' | 'acked' | 'nacked';

export class InProcessMessageSource implements MessageSource {
  /** Messages parked after their last allowed delivery attempt (see `maxDeliveryAttempts`). */
  readonly deadLetters: DeadLetter[] = [];

  readonly #redeliveryDelayMs: number;
  readonly #maxDeliveryAttempts: number | undefined;
  readonly #maxInFlight: number;
  readonly #log: Logger | undefined;

  /** Ready to deliver, oldest first. */
  readonly #ready: Entry[] = [];
  /** Delivered and neither acked nor nacked, with a function that settles the delivery as nacked. */
  readonly #held = new Map<Entry, () => void>();
  /** Nacked and waiting out the redelivery delay. */
  readonly #delayed = new Map<Entry, NodeJS.Timeout>();
  readonly #errorListeners: ((error: Error) => void)[] = [];
  #drainWaiters: (() => void)[] = [];
  #handler: MessageHandler | undefined;
  #running = false;
  #pumpScheduled = false;
  #nextId = 1;
  #acked = 0;
  #nacked = 0;

  constructor(options: InProcessMessageSourceOptions = {}) {
    this.#redeliveryDelayMs = options.redeliveryDelayMs ?? DEFAULT_REDELIVERY_DELAY_MS;
    this.#maxDeliveryAttempts = options.maxDeliveryAttempts;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_IN_PROCESS_MAX_IN_FLIGHT;
    this.#log = options.log;
    if (!(this.#maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    if (this.#maxDeliveryAttempts !== undefined && !(this.#maxDeliveryAttempts >= 1)) {
      throw new RangeError('maxDeliveryAttempts must be at least 1');
    }
  }

  /** Messages acknowledged (each message at most once). */
  get acked(): number {
    return this.#acked;
  }

  /** Nacks, counting every nack of every delivery (including those made by {@link close}). */
  get nacked(): number {
    return this.#nacked;
  }

  /** Messages not yet acknowledged and not dead-lettered: ready, held, or waiting to be redelivered. */
  get pending(): number {
    return this.#ready.length + this.#held.size + this.#delayed.size;
  }

  /** Messages currently held by the handler (delivered, not yet acked or nacked). */
  get inFlight(): number {
    return this.#held.size;
  }

  /** Queues a message for delivery; returns its message id. */
  publish(data: Buffer | string, attributes: Readonly<Record<string, string>> = {}): string {
    const id = String(this.#nextId);
    this.#nextId += 1;
    this.#ready.push({
      id,
      data: typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data),
      attributes: Object.freeze({ ...attributes }),
      publishTime: new Date(),
      attempts: 0,
    });
    this.#schedulePump();
    return id;
  }

  /** Resolves once no message is unacknowledged (dead-lettered ones do not count). */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  start(handler: MessageHandler): Promise<void> {
    if (this.#running) return Promise.reject(new Error('InProcessMessageSource is already started'));
    this.#handler = handler;
    this.#running = true;
    this.#schedulePump();
    return Promise.resolve();
  }

  /**
   * Stops delivering. Held messages are nacked and, like those waiting out their redelivery delay, stay queued:
   * a later {@link start} delivers them again (as a new subscriber would receive them from Pub/Sub).
   */
  close(): Promise<void> {
    this.#running = false;
    for (const settleAsNacked of [...this.#held.values()]) settleAsNacked();
    // Nothing is delivered until the next start: skip the redelivery delays, and leave no timer running.
    for (const [entry, timer] of this.#delayed) {
      clearTimeout(timer);
      this.#delayed.delete(entry);
      this.#ready.push(entry);
    }
    return Promise.resolve();
  }

  onError(listener: (error: Error) => void): void {
    this.#errorListeners.push(listener);
  }

  /** Raises a subscription-level error to the {@link onError} listeners (tests of the intake's reaction). */
  emitError(error: Error): void {
    for (const listener of this.#errorListeners) listener(error);
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // Delivery is asynchronous, as from Pub/Sub: a handler never runs inside publish(), ack() or nack().
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#running && this.#handler !== undefined && this.#held.size < this.#maxInFlight) {
      const entry = this.#ready.shift();
      if (entry === undefined) break;
      this.#deliver(entry, this.#handler);
    }
  }

  #deliver(entry: Entry, handler: MessageHandler): void {
    entry.attempts += 1;
    let state: DeliveryState = 'held';
    const nack = (): void => {
      if (state !== 'held') return;
      state = 'nacked';
      this.#nacked += 1;
      this.#held.delete(entry);
      if (this.#maxDeliveryAttempts !== undefined && entry.attempts >= this.#maxDeliveryAttempts) {
        this.deadLetters.push({
          id: entry.id,
          data: entry.data,
          attributes: entry.attributes,
          publishTime: entry.publishTime,
          deliveryAttempts: entry.attempts,
        });
      } else {
        const timer = setTimeout(() => {
          this.#delayed.delete(entry);
          this.#ready.push(entry);
          this.#schedulePump();
        }, this.#redeliveryDelayMs);
        this.#delayed.set(entry, timer);
      }
      this.#afterSettle();
    };
    const message: IncomingMessage = {
      id: entry.id,
      data: entry.data,
      attributes: entry.attributes,
      deliveryAttempt: entry.attempts,
      publishTime: entry.publishTime,
      ack: () => {
        if (state === 'acked') return Promise.resolve();
        if (state === 'nacked') {
          return Promise.reject(new Error(`message ${entry.id} was already handed back for redelivery; ack ignored`));
        }
        state = 'acked';
        this.#acked += 1;
        this.#held.delete(entry);
        this.#afterSettle();
        return Promise.resolve();
      },
      nack,
    };
    this.#held.set(entry, nack);
    try {
      handler(message);
    } catch (error) {
      // A throwing handler is a bug on our side; hand the message back rather than losing it.
      this.#log?.error({ err: error, messageId: entry.id }, 'message handler threw; message nacked');
      nack();
    }
  }

  #afterSettle(): void {
    this.#schedulePump();
    if (this.pending === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
