/**
 * The scheduler: one loop per replica picks due records from the store and launches them (at most
 * `scheduler.maxConcurrent` at once), `submit` starts a new process at once, and `stop` drains — stops taking work,
 * lets running steps finish within the grace period, then aborts them and hands their processes back. A waiting
 * process holds nothing (its record carries `dueAt`). One process's run: process-runner.ts; what an error leads to:
 * failure-policy.ts. The picture: DESIGN.md §1, §5 and docs/failure-model.md.
 *
 * Order: the store hands out continuing work (processes past `start`) before new work (src/store/types.ts, findDue),
 * so a burst of notifications does not hold back the signature checks and uploads of processes already started.
 * New work still gets at least one launch in {@link START_SHARE_EVERY} while it is due — a steady stream of checks
 * cannot starve it — and a submitted process starts at once only when no due work was left waiting for a slot.
 */
import { performance } from 'node:perf_hooks';
import type { ProcessRef } from '../chrome/types.ts';
import { describeError } from '../errors.ts';
import {
  ACTIVE_STEPS,
  DEFAULT_SCAN_SPACING_MS,
  isContinuing,
  type Outcome,
  type ProcessRecord,
  type ProcessStore,
} from '../store/types.ts';
import { newCorrelationId } from './correlation-id.ts';
import { ShutdownAbort } from './failure-policy.ts';
import { FaultGate } from './fault-gate.ts';
import { ProcessRunner } from './process-runner.ts';
import type { EngineDependencies } from './step.ts';
import { StoreLoadControl, observedStore } from './store-load.ts';

/** Resolves with the promise's value, or `fallback` after `ms`; the timer never outlives the race. */
async function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How often the waiting-process gauges are counted from the store; less often while it is congested, and up to the
 * congested interval as the count grows slow or large: a count may take a tenth of the time at most (the next begins
 * no sooner than GAUGE_DURATION_FACTOR times its duration after it began; on a store that scans, a count of 20,000
 * records takes seconds), and the next waits GAUGE_MS_PER_RECORD for each record the last one counted (Firestore
 * bills a count one read per 1,000 records: about one read a second at most).
 */
const GAUGE_INTERVAL_MS = 5_000;
const GAUGE_INTERVAL_CONGESTED_MS = 60_000;
const GAUGE_DURATION_FACTOR = 10;
const GAUGE_MS_PER_RECORD = 1;
/**
 * The counts are the store's, the same for every replica: one replica counts them, the one holding this named lease
 * (the others report none). Its time to live outlasts the longest interval, so the lease does not pass between
 * replicas while its holder runs.
 */
export const GAUGE_LEASE = 'waiting-process-gauges';
const GAUGE_LEASE_TTL_MS = 3 * GAUGE_INTERVAL_CONGESTED_MS;
/** Slow scans space the next one out up to this (or the poll interval, if longer). */
const MAX_SCAN_SPACING_MS = 10_000;

/** While new and continuing work are both due, new work gets at least one launch in this many. */
export const START_SHARE_EVERY = 4;

interface Running {
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

export class ProvisioningEngine {
  private readonly deps: EngineDependencies;
  private readonly now: () => number;
  private readonly running = new Map<string, Running>();
  private readonly waiters = new Map<string, Set<(outcome: Outcome) => void>>();
  private state: 'idle' | 'running' | 'draining' | 'stopped' = 'idle';
  private loop: Promise<void> | undefined;
  private wake: ((immediately?: boolean) => void) | undefined;
  private lastGaugeUpdate = 0;
  /** The least time to the next count the last one asked for, from how long it took and how many records it found. */
  private countSpacingMs = 0;
  /** Whether this replica counted the gauges last time (it holds {@link GAUGE_LEASE}). */
  private countsGauges = false;
  /** Pauses a component with a deployment fault as a whole (src/provisioning/fault-gate.ts). */
  readonly faultGate: FaultGate;
  /** Held processes the gate released, launched as capacity allows. */
  private readonly resumeQueue = new Set<string>();
  private readonly runner: ProcessRunner;
  /** How hard this replica presses on the store: concurrency and scan spacing (store-load.ts). */
  readonly storeLoad: StoreLoadControl;
  /**
   * The store for the work itself (processes' steps, the intake's creates): every call's duration and outcome told
   * to {@link storeLoad}. Scans and gauge counts use the store directly — their duration grows with the collection,
   * not with how many processes run, and sets the scan spacing instead.
   */
  private readonly store: ProcessStore;
  private readonly rawStore: ProcessStore;
  /** Creates in flight (submit), at most the concurrency limit; the rest wait in `createQueue`. */
  private creating = 0;
  private readonly createQueue: (() => void)[] = [];
  /** Continuing-work launches since the last start was launched, up to START_SHARE_EVERY - 1 (the starts' due share). */
  private continuingSinceStart = 0;
  /** Whether the last scan filled its page: due work may be waiting for a slot, so a submitted process queues too. */
  private backlog = false;
  /**
   * Whether the last scan found nothing due and nothing due at its end (nextDueAt later than then): the next turn asks
   * nextDueAt first and scans only if a record is due by then — a quiet replica costs one query per poll interval,
   * not three.
   */
  private quiet = false;

  /** `congestionQuietMs`: see StoreLoadOptions.quietMs (tests shorten it; the engine's load clock is real time). */
  constructor(deps: EngineDependencies, options: { congestionQuietMs?: number } = {}) {
    const { config, metrics, log } = deps;
    this.now = deps.now ?? Date.now;
    this.storeLoad = new StoreLoadControl({
      maxConcurrent: config.scheduler.maxConcurrent,
      minSpacingMs: Math.min(config.scheduler.pollIntervalMs, deps.store.scanSpacingMs ?? DEFAULT_SCAN_SPACING_MS),
      idleSpacingMs: config.scheduler.pollIntervalMs,
      maxSpacingMs: Math.max(config.scheduler.pollIntervalMs, MAX_SCAN_SPACING_MS),
      slowCallMs: deps.store.slowCallMs,
      now: () => performance.now(),
      ...(options.congestionQuietMs === undefined ? {} : { quietMs: options.congestionQuietMs }),
      // One line when a congestion episode begins and one when it ends (store-load.ts CONGESTION_QUIET_MS); the limit
      // between them is on certprov_store_concurrency_limit.
      onStateChange: ({ state, limit, cause, episode }) => {
        metrics.storeCongestion.inc({ state, reason: cause });
        const fields = { limit, maxConcurrent: config.scheduler.maxConcurrent, cause };
        if (state === 'congested') {
          log.warn(fields, 'store congested: running fewer processes at once until it answers in time again');
        } else {
          log.info(
            {
              ...fields,
              ...(episode === undefined
                ? {}
                : {
                    halvings: episode.halvings,
                    lowestLimit: episode.lowestLimit,
                    congestedSeconds: Math.round(episode.durationMs / 1000),
                  }),
            },
            'store answers in time again: back to the configured concurrency',
          );
        }
      },
    });
    metrics.storeConcurrencyLimit.set(this.storeLoad.limit);
    metrics.scanSpacing.set(this.storeLoad.spacingMs / 1000);
    this.rawStore = deps.store;
    this.store = observedStore(deps.store, this.storeLoad, () => performance.now());
    this.deps = { ...deps, store: this.store };
    deps = this.deps;
    this.faultGate = new FaultGate({
      log: deps.log,
      backoff: { initialMs: deps.config.scheduler.retryInitialMs, maxMs: deps.config.scheduler.retryMaxMs },
      now: this.now,
      resume: (ids) => {
        for (const id of ids) this.resumeQueue.add(id);
        this.launchResumed();
      },
    });
    this.runner = new ProcessRunner({
      deps,
      now: this.now,
      faultGate: this.faultGate,
      onDone: (record) => this.notifyWaiters(record),
    });
  }

  /** Processes whose steps run on this replica right now. */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * Records a process (create-if-absent) and starts it. Returns the stored record: `created` false for a
   * duplicate delivery. Rejects when the store cannot be written (the message must then be handed back).
   */
  async submit(notification: ProcessRef): Promise<{ created: boolean; record: ProcessRecord }> {
    // A burst of notifications is a burst of creates: while the store is congested, they too go at most `limit` at
    // a time (the messages wait in the intake, held, meanwhile).
    while (this.creating >= this.limit()) await new Promise<void>((resolve) => this.createQueue.push(resolve));
    this.creating += 1;
    let result: { created: boolean; record: ProcessRecord };
    try {
      result = await this.store.create({
        processId: notification.processId,
        customer: notification.customer,
        correlationId: newCorrelationId(),
        dueAt: this.now(),
      });
    } finally {
      this.creating -= 1;
      this.createQueue.shift()?.();
    }
    if (result.created) {
      this.deps.metrics.processesStarted.inc();
      this.deps.log.info(
        { processId: notification.processId, correlationId: result.record.correlationId, step: 'start' },
        'process received',
      );
    }
    // A duplicate delivery carries nothing new (the notification only says the process exists): it starts a process
    // that is due, never one waiting for its dueAt — a device signature check or a retry backoff keeps its time.
    // What may bring a waiting process forward is a new event about it: a CA's answer (wakeByLookupKey), the fault
    // gate's probe passing, a shutdown handing it back (docs/failure-model.md "What wakes a waiting process").
    if (result.record.step !== 'done' && result.record.dueAt <= this.now()) this.trigger(result.record);
    return result;
  }

  /**
   * Resolves with the outcome once the process is done on this replica (the memory store's ack-when-finished
   * policy), or undefined if `signal` aborts first.
   */
  waitForOutcome(processId: string, signal: AbortSignal): Promise<Outcome | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let settled = false;
      const set = this.waiters.get(processId) ?? new Set();
      const settle = (outcome: Outcome | undefined) => {
        if (settled) return;
        settled = true;
        set.delete(listener);
        if (set.size === 0 && this.waiters.get(processId) === set) this.waiters.delete(processId);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const listener = (outcome: Outcome) => settle(outcome);
      const onAbort = () => settle(undefined);
      // Listen first, then look: a process finishing in between is seen by one or the other, never missed.
      set.add(listener);
      this.waiters.set(processId, set);
      signal.addEventListener('abort', onAbort, { once: true });
      this.store.get(processId).then(
        (record) => {
          if (record?.step === 'done') settle(record.outcome);
        },
        () => undefined, // the listener still fires when the process finishes here
      );
    });
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.loop = this.schedule();
  }

  /**
   * Stops taking work; waits up to `graceMs` for running steps, then aborts the rest and hands their processes back.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    this.faultGate.close();
    this.resumeQueue.clear();
    this.wake?.(true);
    await this.loop;
    // The next replica takes over the gauges at once instead of after the lease's time to live.
    if (this.countsGauges) {
      await this.rawStore.releaseNamedLease(GAUGE_LEASE, this.deps.replicaId).catch(() => undefined);
    }
    const all = () => Promise.all([...this.running.values()].map((r) => r.done)).then(() => true);
    if (!(await withTimeout(all(), graceMs, false))) {
      this.deps.log.warn({ inFlight: this.running.size }, 'grace period over; handing back in-flight processes');
      for (const run of this.running.values()) run.abort.abort(new ShutdownAbort());
      await withTimeout(all(), 5_000, false);
    }
    this.state = 'stopped';
  }

  /**
   * Starts a submitted process now if there is capacity and no due work was left waiting at the last scan; otherwise the
   * scheduler picks it up in the store's order.
   */
  private trigger(record: ProcessRecord): void {
    if (this.state !== 'running') return;
    if (!this.backlog && this.running.size < this.limit()) {
      this.countLaunch(record);
      this.launch(record.processId, false, record);
    } else this.wake?.();
  }

  /** Keeps the count behind new work's share (START_SHARE_EVERY) of what was launched. */
  private countLaunch(record: ProcessRecord): void {
    this.continuingSinceStart = isContinuing(record.step)
      ? Math.min(this.continuingSinceStart + 1, START_SHARE_EVERY - 1)
      : 0;
  }

  /** Launches processes the fault gate resumed, while there is capacity (the rest when running ones finish). */
  private launchResumed(): void {
    if (this.state !== 'running') return;
    for (const processId of this.resumeQueue) {
      if (this.running.size >= this.limit()) return;
      this.resumeQueue.delete(processId);
      this.launch(processId, true);
    }
  }

  /**
   * `beforeDue`: run it even if its record is not due yet (the fault gate resumes the processes it parked). `record`:
   * the record as the scan or submit read it, when at hand (a further signature check is made without the lease).
   */
  private launch(processId: string, beforeDue = false, record?: ProcessRecord): void {
    if (this.running.has(processId)) return;
    const abort = new AbortController();
    const entry: Running = {
      abort,
      done: this.runner
        .run(processId, abort, { beforeDue, ...(record === undefined ? {} : { record }) })
        .catch((error: unknown) => {
          this.deps.log.error({ processId, error: describeError(error) }, 'unexpected error while running a process');
        })
        .finally(() => {
          // Only a replica that was at capacity needs a scan now; otherwise the scheduler's own timing (nextDueAt)
          // already covers what this process left behind, and a scan per finished step would load a shared store.
          const wasFull = this.running.size >= this.limit();
          this.running.delete(processId);
          this.deps.metrics.processesInFlight.set(this.running.size);
          this.launchResumed();
          if (wasFull) this.wake?.();
        }),
    };
    this.running.set(processId, entry);
    this.deps.metrics.processesInFlight.set(this.running.size);
  }

  /** Processes this replica may run at once now: `scheduler.maxConcurrent`, less while the store is congested. */
  private limit(): number {
    return this.storeLoad.limit;
  }

  private async schedule(): Promise<void> {
    const { config, log, health, metrics } = this.deps;
    const store = this.rawStore;
    // Scans stay at least the spacing apart (a shared store's scan is up to three queries per replica; one while it is
    // quiet), however often work arrives, finishes or comes due (records this replica is still leasing read as due
    // until the lease lands); the spacing grows after slow scans and scans that found nothing (store-load.ts).
    while (this.state === 'running') {
      const scanStarted = performance.now();
      let nextIn = config.scheduler.pollIntervalMs;
      let launched = 0;
      let scanned = false;
      try {
        const capacity = this.limit() - this.running.size;
        // At capacity nothing is asked: a finishing process wakes the loop (launch).
        // Quiet: nothing was due at the last scan; scan only if something is due now (records other replicas
        // created or released meanwhile included: the next due time is the store's, not this replica's).
        const upcoming = capacity > 0 && this.quiet ? await store.nextDueAt?.() : undefined;
        const stillQuiet = this.quiet && store.nextDueAt !== undefined && (upcoming ?? Infinity) > this.now();
        if (capacity > 0 && stillQuiet) {
          scanned = true;
          if (upcoming !== undefined) nextIn = Math.min(nextIn, Math.max(0, upcoming - this.now()));
        } else if (capacity > 0) {
          scanned = true;
          this.quiet = false;
          // New work's share: of the launches since the last start plus this page, one in START_SHARE_EVERY.
          const reserveForStarts = Math.floor((this.continuingSinceStart + capacity) / START_SHARE_EVERY);
          const due = await store.findDue(this.now(), capacity, { reserveForStarts });
          this.backlog = due.length >= capacity;
          for (const record of due) {
            if (this.running.size >= this.limit()) break;
            if (this.running.has(record.processId)) continue;
            this.launch(record.processId, false, record);
            launched += 1;
            this.countLaunch(record);
          }
          if (launched > 0 && due.length >= capacity) {
            nextIn = 0; // a full page: more may be due right now
          } else {
            const next = await store.nextDueAt?.();
            if (next !== undefined) nextIn = Math.min(nextIn, Math.max(0, next - this.now()));
            this.quiet = due.length === 0 && (next ?? Infinity) > this.now();
          }
        }
        await this.updateGauges();
        health.clearFault('store');
      } catch (error) {
        health.reportFault('store', describeError(error));
        log.error({ error: describeError(error) }, 'cannot read due processes from the store');
      }
      if (scanned) {
        this.storeLoad.scanEnded(performance.now() - scanStarted, launched);
        metrics.scanSpacing.set(this.storeLoad.spacingMs / 1000);
      }
      metrics.storeConcurrencyLimit.set(this.storeLoad.limit);
      const spacingLeft = () => Math.max(0, this.storeLoad.spacingMs - (performance.now() - scanStarted));
      await new Promise<void>((resolve) => {
        let timer = setTimeout(resolve, Math.max(nextIn, spacingLeft()));
        // A wake (work arrived, or a slot freed at capacity) comes forward to the least spacing, not before it:
        // processes finishing one after another at capacity would otherwise cost a scan each. Stop ends it at once.
        this.wake = (immediately = false) => {
          clearTimeout(timer);
          if (immediately) resolve();
          else timer = setTimeout(resolve, spacingLeft());
        };
      });
      this.wake = undefined;
    }
  }

  private async updateGauges(): Promise<void> {
    const now = this.now();
    // One count per step, each a query over the collection: refreshed less often while the store is congested or
    // slow to count, and by one replica for all.
    const everyMs = Math.min(
      GAUGE_INTERVAL_CONGESTED_MS,
      Math.max(
        this.storeLoad.state === 'congested' ? GAUGE_INTERVAL_CONGESTED_MS : GAUGE_INTERVAL_MS,
        this.countSpacingMs,
      ),
    );
    if (now - this.lastGaugeUpdate < everyMs || this.rawStore.countActive === undefined) return;
    this.lastGaugeUpdate = now;
    const { metrics, replicaId } = this.deps;
    const counting = await this.rawStore.tryNamedLease(GAUGE_LEASE, replicaId, GAUGE_LEASE_TTL_MS);
    if (!counting) {
      // Another replica counts: this one reports nothing rather than a count that grows stale.
      if (this.countsGauges) {
        metrics.processesWaiting.reset();
        metrics.caPendingOrders.reset();
      }
      this.countsGauges = false;
      return;
    }
    this.countsGauges = true;
    const began = this.now();
    const counts = await this.rawStore.countActive();
    const counted = Object.values(counts).reduce((sum, n) => sum + n, 0);
    this.countSpacingMs = Math.max(GAUGE_DURATION_FACTOR * (this.now() - began), GAUGE_MS_PER_RECORD * counted);
    for (const step of ACTIVE_STEPS) metrics.processesWaiting.set({ step }, counts[step] ?? 0);
    metrics.caPendingOrders.set(counts.await_ca ?? 0);
  }

  /** Resolves the waiters of a process that finished on this replica (waitForOutcome). */
  private notifyWaiters(record: ProcessRecord): void {
    const set = this.waiters.get(record.processId);
    if (set !== undefined && record.outcome !== undefined) {
      this.waiters.delete(record.processId);
      for (const listener of set) listener(record.outcome);
    }
  }
}
