/**
 * Bulk polling of pending orders (reference notes: `status-changes` is DigiCert's recommended way to learn that
 * orders were issued). ONE request per interval for all pending orders of an API key, whatever their number:
 *
 * - One replica at a time polls: it holds the named lease `digicert-status-poller:<key id>` in the store and renews
 *   it every tick; another replica takes over when the holder stops renewing (3 intervals).
 * - The window covers everything since this replica's last successful poll plus an overlap (so a change that
 *   happened just before its order's lookup key was stored is seen again), capped at 7 days; a replica that never
 *   polled starts with `statusPollInitialWindow`. A failed poll keeps the old start, so the next window covers the
 *   gap. DigiCert refusing the window (`time_frame_too_long`) halves the cap.
 * - Each changed order wakes the process waiting on its lookup key with the status as a hint; the process then
 *   downloads the certificate (or fails) in its own step. Orders nobody waits for are ignored.
 *
 * Orders every window missed are still found: each pending process also reads its order directly every
 * `orderFallbackInterval` (the backend's poll()).
 */
import type { CaServices, PendingRef, StepContext } from '../types.ts';
import { DeploymentFaultError, describeError } from '../../errors.ts';
import { abortableSleep, type Sleep } from '../../http/abortable-sleep.ts';
import type { Logger } from '../../observability/logger.ts';
import type { DigicertClient, StatusChange } from './client.ts';
import { STATUS_CHANGES_MAX_WINDOW_MS } from './config.ts';
import { TimeFrameTooLongError } from './errors.ts';

export interface StatusPollerOptions {
  readonly client: DigicertClient;
  readonly services: CaServices;
  /** Non-secret id of the API key: the lease name. */
  readonly keyId: string;
  readonly intervalMs: number;
  readonly initialWindowMs: number;
  /** The lookup key the backend gave the process waiting on an order. */
  readonly lookupKey: (orderId: number) => string;
  readonly log: Logger;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Default: a timer. */
  readonly sleep?: Sleep;
}

export interface TickResult {
  /** Whether this replica held the poller lease (and so polled). */
  readonly polled: boolean;
  /** Orders DigiCert reported as changed. */
  readonly changes: number;
  /** Processes woken. */
  readonly woken: number;
  /** The window asked for, in seconds. */
  readonly windowSeconds?: number;
  /** Log-safe error of a failed poll. */
  readonly error?: string;
}

/** The hint merged into a woken process's pending ref (see DigicertCa.poll). */
export function statusHint(change: StatusChange): PendingRef {
  return {
    seenStatus: change.status,
    ...(change.certificate_id === undefined ? {} : { certificateId: change.certificate_id }),
  };
}

export class StatusChangesPoller {
  private readonly options: StatusPollerOptions;
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  /** Start of the last successful poll (epoch ms); the next window reaches back to it. */
  private coveredFrom: number | undefined;
  private maxWindowSeconds = STATUS_CHANGES_MAX_WINDOW_MS / 1000;

  constructor(options: StatusPollerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
  }

  get leaseName(): string {
    return `digicert-status-poller:${this.options.keyId}`;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops polling and hands the lease back so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    const { services } = this.options;
    await services.store.releaseNamedLease(this.leaseName, services.replicaId).catch(() => undefined);
  }

  /** One poll, if this replica holds (or takes) the lease. Never throws. */
  async tick(): Promise<TickResult> {
    const { services, client, intervalMs, log } = this.options;
    let held: boolean;
    try {
      held = await services.store.tryNamedLease(this.leaseName, services.replicaId, 3 * intervalMs);
    } catch (error) {
      log.warn({ error: describeError(error) }, 'DigiCert status poller: cannot take the poller lease');
      return { polled: false, changes: 0, woken: 0, error: describeError(error) };
    }
    if (!held) return { polled: false, changes: 0, woken: 0 };

    const startedAt = this.now();
    const overlapMs = Math.max(intervalMs, 30_000);
    const wantedMs =
      this.coveredFrom === undefined ? this.options.initialWindowMs : startedAt - this.coveredFrom + overlapMs;
    const windowSeconds = Math.max(1, Math.min(this.maxWindowSeconds, Math.ceil(wantedMs / 1000)));
    const signal = AbortSignal.any([this.stopping.signal, services.signal]);
    const ctx: StepContext = { signal, log };
    let changes: readonly StatusChange[];
    try {
      changes = await client.statusChanges(windowSeconds, ctx);
      services.clearFault('digicert');
    } catch (error) {
      if (signal.aborted) return { polled: true, changes: 0, woken: 0, windowSeconds, error: 'stopped' };
      // A refused key must show on /readyz even while no process is being ordered.
      if (error instanceof DeploymentFaultError) services.reportFault(error);
      if (error instanceof TimeFrameTooLongError) {
        this.maxWindowSeconds = Math.max(60, Math.floor(windowSeconds / 2));
        log.warn(
          { windowSeconds, nextMaxSeconds: this.maxWindowSeconds },
          'DigiCert refused the status-changes window; asking for less',
        );
      } else {
        log.warn(
          { error: describeError(error), windowSeconds },
          'DigiCert status poll failed; the next window covers the gap',
        );
      }
      return { polled: true, changes: 0, woken: 0, windowSeconds, error: describeError(error) };
    }
    let woken = 0;
    for (const change of changes) {
      try {
        if (await services.wake(this.options.lookupKey(change.order_id), statusHint(change))) woken += 1;
      } catch (error) {
        // The order keeps its fallback poll; the next window (with its overlap) tries again.
        log.warn(
          { orderId: change.order_id, error: describeError(error) },
          'cannot wake the process of a changed DigiCert order',
        );
      }
    }
    // A window too wide to answer in full is never cut short by DigiCert, so the poll covers up to its own start.
    this.coveredFrom = startedAt;
    if (woken > 0)
      log.info({ changes: changes.length, woken, windowSeconds }, 'DigiCert orders changed; woke their processes');
    else log.debug({ changes: changes.length, windowSeconds }, 'DigiCert status poll');
    return { polled: true, changes: changes.length, woken, windowSeconds };
  }

  private async run(): Promise<void> {
    const { services, intervalMs } = this.options;
    const signal = AbortSignal.any([this.stopping.signal, services.signal]);
    while (!signal.aborted) {
      await this.tick();
      try {
        await this.sleep(intervalMs, signal);
      } catch {
        return; // stopped
      }
    }
  }
}
