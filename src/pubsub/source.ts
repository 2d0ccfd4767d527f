/**
 * Where provisioning notifications come from: a Pub/Sub subscription in `run`, an in-process queue in `demo`.
 * Both deliver at least once; the intake decides ack or nack (src/pubsub/intake.ts).
 */

export interface IncomingMessage {
  /** Pub/Sub message id (log and dedupe key for malformed messages). */
  readonly id: string;
  readonly data: Buffer;
  readonly attributes: Readonly<Record<string, string>>;
  /** Delivery attempt when the subscription has a dead-letter policy, else undefined. */
  readonly deliveryAttempt: number | undefined;
  readonly publishTime: Date;
  /**
   * Acknowledge. Resolves once the acknowledgement is confirmed when the subscription has exactly-once delivery
   * (`ackWithResponse`); otherwise as soon as it was sent. Rejects when an exactly-once ack failed.
   */
  ack(): Promise<void>;
  /** Hand the message back for redelivery (after the subscription's retry policy backoff). */
  nack(): void;
}

export type MessageHandler = (message: IncomingMessage) => void;

export interface MessageSource {
  /** Begins delivering messages to `handler`; resolves once the source is subscribed. */
  start(handler: MessageHandler): Promise<void>;
  /** Stops pulling; messages not yet acked are nacked. Bounded in time even if the client hangs. */
  close(): Promise<void>;
  /** Raised on a subscription-level error (permission denied, subscription missing). */
  onError(listener: (error: Error) => void): void;
}
