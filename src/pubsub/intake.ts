/**
 * The ack/nack policy (DESIGN.md §5). A message is acknowledged only once its process's state is durable:
 * with a durable store (sqlite, Firestore) as soon as the record is written — the scheduler then drives every wait —;
 * with the memory store only when the process has finished, so a crash loses nothing but time (the redelivery
 * resumes from the Chrome process resource).
 *
 * A message that cannot be decoded is nacked so the subscription's dead-letter policy parks it, logged once with
 * its message id and a base64 preview of its first bytes (rate-limited), and counted — never acked away, never a
 * crash loop.
 */
import { performance } from 'node:perf_hooks';
import type { ProcessRef } from '../chrome/types.ts';
import type { Config } from '../config/load.ts';
import { DeploymentFaultError, describeError } from '../errors.ts';
import type { Health } from '../observability/health.ts';
import { LogBudget } from '../observability/log-budget.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ProvisioningEngine } from '../provisioning/engine.ts';
import type { ProcessStore } from '../store/types.ts';
import { decodeNotification } from './decode.ts';
import type { IncomingMessage, MessageSource } from './source.ts';

export interface IntakeDependencies {
  readonly config: Config;
  readonly engine: ProvisioningEngine;
  readonly source: MessageSource;
  readonly store: ProcessStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly health: Health;
}

/** How many malformed message ids are remembered so a redelivered one is not logged again at warn level. */
const MALFORMED_MEMORY = 10_000;
/** Bytes of an undecodable payload shown (base64) in its warn line: enough for an id or two and the framing. */
export const MALFORMED_PREVIEW_BYTES = 64;
/** Attribute keys listed in that line (their values are not logged). */
const MALFORMED_PREVIEW_ATTRIBUTE_KEYS = 10;
/** Warn lines for undecodable messages: at most 10 a minute; the rest go to debug and are counted in the next. */
export const MALFORMED_LOG_BUDGET = { perWindow: 10, windowMs: 60_000 } as const;

/** A message held until its process finishes (memory store): aborted on shutdown or at its deadline. */
interface Holding {
  readonly abort: AbortController;
  /** performance.now() after which the client no longer extends the message's ack deadline. */
  readonly deadline: number;
}

export class Intake {
  private readonly deps: IntakeDependencies;
  private readonly shutdown = new AbortController();
  private readonly handling = new Set<Promise<void>>();
  private readonly malformedSeen = new Set<string>();
  private readonly malformedLogBudget = new LogBudget(MALFORMED_LOG_BUDGET);
  /**
   * Messages held until their process finishes, and the same in deadline order. Every deadline is the arrival time
   * plus pubsub.maxExtension, so arrival order is deadline order: a FIFO and one timer for its head serve them all,
   * instead of a timer and a combined AbortSignal per message (which cost several KiB of heap each).
   */
  private readonly holdings = new Set<Holding>();
  private deadlines: Holding[] = [];
  private deadlinesHead = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(deps: IntakeDependencies) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    this.deps.source.onError((error) => {
      this.deps.health.setSubscribed(false);
      // Only an operator's mistake (subscription missing, permission denied) is a deployment fault; a Pub/Sub
      // outage is retried by the source and must not read as one (DESIGN.md §6).
      if (error instanceof DeploymentFaultError) this.deps.health.reportFault('pubsub', error.message);
      this.deps.log.error({ error: describeError(error) }, 'subscription error');
    });
    await this.deps.source.start((message) => this.onMessage(message));
    this.deps.health.setSubscribed(true);
  }

  /** Stops pulling; handlers still waiting for an outcome nack their message (another replica takes over). */
  async stop(): Promise<void> {
    this.deps.health.setSubscribed(false);
    this.shutdown.abort();
    for (const holding of this.holdings) holding.abort.abort();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    await Promise.allSettled([...this.handling]);
    await this.deps.source.close();
  }

  private onMessage(message: IncomingMessage): void {
    const { metrics, health } = this.deps;
    metrics.messagesReceived.inc();
    if (!health.isSubscribed && !this.shutdown.signal.aborted) {
      // The source reopened its stream after an error: a delivery proves the subscription works again, so
      // readiness recovers without a restart.
      health.setSubscribed(true);
      health.clearFault('pubsub');
    }
    const decoded = decodeNotification(message.data, message.attributes, this.deps.config.chrome.customer);
    if (!decoded.ok) {
      metrics.messagesMalformed.inc();
      this.nack(message, 'malformed');
      if (!this.malformedSeen.has(message.id)) {
        if (this.malformedSeen.size >= MALFORMED_MEMORY) this.malformedSeen.clear();
        this.malformedSeen.add(message.id);
        this.logMalformed(message, decoded.problem);
      }
      return;
    }
    const work = this.handle(message, decoded.ref).finally(() => this.handling.delete(work));
    this.handling.add(work);
  }

  /**
   * One warn line per undecodable message, within {@link MALFORMED_LOG_BUDGET}: its first bytes in base64, so an
   * operator can see what Google really sent. The notification carries ids only (process, customer), and the
   * preview is cut short; attribute values are not logged, only their keys.
   */
  private logMalformed(message: IncomingMessage, problem: string): void {
    const fields = {
      messageId: message.id,
      problem,
      deliveryAttempt: message.deliveryAttempt,
      bytes: message.data.length,
      attributeKeys: Object.keys(message.attributes).slice(0, MALFORMED_PREVIEW_ATTRIBUTE_KEYS),
    };
    const allowed = this.malformedLogBudget.take();
    if (allowed === undefined) {
      this.deps.log.debug(fields, 'undecodable provisioning notification; nacked for the dead-letter policy');
      return;
    }
    this.deps.log.warn(
      {
        ...fields,
        previewBase64: message.data.subarray(0, MALFORMED_PREVIEW_BYTES).toString('base64'),
        ...(allowed.suppressed > 0 ? { previewsSuppressed: allowed.suppressed } : {}),
      },
      'undecodable provisioning notification; nacked for the dead-letter policy',
    );
  }

  private async handle(message: IncomingMessage, ref: ProcessRef): Promise<void> {
    const { engine, store, log, config } = this.deps;
    const { processId } = ref;
    let done: boolean;
    try {
      const { record } = await engine.submit(ref);
      done = record.step === 'done';
      this.deps.health.clearFault('store');
    } catch (error) {
      this.deps.health.reportFault('store', describeError(error));
      log.error(
        { messageId: message.id, processId, error: describeError(error) },
        'cannot record the process; nacking',
      );
      this.nack(message, 'store_unavailable');
      return;
    }
    if (!done && !store.durable) {
      // Memory store: the message is the only durable trace of the process until it has finished.
      const holding = this.hold(config.pubsub.maxExtensionMs);
      const outcome = await engine.waitForOutcome(processId, holding.abort.signal);
      this.release(holding);
      if (outcome === undefined) {
        this.nack(message, this.shutdown.signal.aborted ? 'shutdown' : 'timeout');
        return;
      }
    }
    await this.ack(message, processId);
  }

  /** Registers a held message; it is aborted on shutdown or once `maxExtensionMs` have passed. */
  private hold(maxExtensionMs: number): Holding {
    const holding: Holding = { abort: new AbortController(), deadline: performance.now() + maxExtensionMs };
    if (this.shutdown.signal.aborted) {
      holding.abort.abort();
      return holding;
    }
    this.holdings.add(holding);
    this.deadlines.push(holding);
    if (this.deadlineTimer === undefined) this.armDeadlineTimer();
    return holding;
  }

  /** A held message was settled: forgotten, and the deadline FIFO compacted once settled entries dominate it. */
  private release(holding: Holding): void {
    this.holdings.delete(holding);
    if (this.deadlines.length - this.deadlinesHead > 2 * this.holdings.size + 1_024) {
      this.deadlines = this.deadlines.slice(this.deadlinesHead).filter((h) => this.holdings.has(h));
      this.deadlinesHead = 0;
    }
  }

  /** Aborts the held messages whose deadline has passed, then waits for the next deadline (if any). */
  private expireHoldings(): void {
    this.deadlineTimer = undefined;
    const now = performance.now();
    for (;;) {
      const next = this.deadlines[this.deadlinesHead];
      if (next === undefined || next.deadline > now) break;
      this.deadlinesHead += 1;
      if (this.holdings.delete(next)) next.abort.abort();
    }
    if (this.deadlinesHead > 1_024 && this.deadlinesHead * 2 > this.deadlines.length) {
      this.deadlines.splice(0, this.deadlinesHead);
      this.deadlinesHead = 0;
    }
    this.armDeadlineTimer();
  }

  private armDeadlineTimer(): void {
    // Entries whose message was settled before their deadline are skipped, not waited for.
    while (this.deadlinesHead < this.deadlines.length) {
      const head = this.deadlines[this.deadlinesHead] as Holding;
      if (this.holdings.has(head)) break;
      this.deadlinesHead += 1;
    }
    const head = this.deadlines[this.deadlinesHead];
    if (head === undefined || this.shutdown.signal.aborted) {
      this.deadlines.length = 0;
      this.deadlinesHead = 0;
      return;
    }
    this.deadlineTimer = setTimeout(() => this.expireHoldings(), Math.max(0, head.deadline - performance.now()));
    this.deadlineTimer.unref();
  }

  private async ack(message: IncomingMessage, processId: string): Promise<void> {
    try {
      await message.ack();
      this.deps.metrics.messagesAcked.inc();
    } catch (error) {
      // Exactly-once delivery: the ack was not confirmed; the redelivery is de-duplicated by the store.
      this.deps.log.warn(
        { messageId: message.id, processId, error: describeError(error) },
        'acknowledgement not confirmed',
      );
    }
  }

  private nack(message: IncomingMessage, reason: string): void {
    message.nack();
    this.deps.metrics.messagesNacked.inc({ reason });
  }
}
