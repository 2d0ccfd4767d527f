/**
 * The provisioning engine: one orchestrator for every process (DESIGN.md §1, §5).
 *
 * - `submit` records a process (create-if-absent: duplicate deliveries are normal) and starts it right away.
 * - A scheduler loop per replica picks due records from the store, takes the lease on each, and runs steps until
 *   the process must wait (device signature, CA pending order, retry backoff) or is done. A wait holds nothing: the
 *   record carries `dueAt` and the lease is released, so waiting processes cost no timer and no Pub/Sub message.
 * - Failures are handled here, by class (src/errors.ts): retry later with backoff; terminal → `report_failure`
 *   (setFailure with a short message and the correlation id); deployment fault → never setFailure, mark not-ready,
 *   retry later; lease lost → stop touching the process at once.
 * - Shutdown: stop taking work, let running steps finish within the grace period, then abort them and hand their
 *   processes back (lease released, due now) so another replica continues.
 */
import { performance } from 'node:perf_hooks';
import type { StepContext } from '../ca/types.ts';
import { ProcessNotFoundError } from '../chrome/errors.ts';
import { userMessageFor } from '../user-messages.ts';
import type { ProcessRef } from '../chrome/types.ts';
import {
  CertprovError,
  DeploymentFaultError,
  RetryableError,
  TerminalError,
  describeError,
  type FaultComponent,
} from '../errors.ts';
import {
  ACTIVE_STEPS,
  LeaseLostError,
  type ActiveStep,
  type Outcome,
  type ProcessPatch,
  type ProcessRecord,
  type Step,
} from '../store/types.ts';
import { RateBudgetExhaustedError } from '../http/shared-rate-limiter.ts';
import { backoffDelay } from '../backoff.ts';
import { newCorrelationId } from './correlation-id.ts';
import { FaultGate } from './fault-gate.ts';
import {
  failurePatch,
  LeaseGuard,
  type EngineDependencies,
  type ProcessRun,
  type StepHandler,
  type StepResult,
} from './step.ts';
import { awaitSignatureStep } from './steps/await-signature.ts';
import { awaitCaStep, issueStep } from './steps/issue.ts';
import { reportFailureStep } from './steps/report-failure.ts';
import { startStep } from './steps/start.ts';
import { uploadStep } from './steps/upload.ts';

const HANDLERS: Readonly<Record<ActiveStep, StepHandler>> = {
  start: startStep,
  await_signature: awaitSignatureStep,
  issue: issueStep,
  await_ca: awaitCaStep,
  upload: uploadStep,
  report_failure: reportFailureStep,
};

/** Steps that talk to the CA; the others talk to Google. Used to clear a component's deployment fault on success. */
const CA_STEPS: ReadonlySet<Step> = new Set(['issue', 'await_ca']);
/** At most this many next-steps in one lease hold; a guard against a step bug looping forever. */
const MAX_STEPS_PER_RUN = 16;
/** Least time between two scans of the store for due records (see schedule()). */
const MIN_SCAN_SPACING_MS = 50;

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

class ShutdownAbort extends Error {
  constructor() {
    super('adapter is shutting down');
    this.name = 'ShutdownAbort';
  }
}

interface Running {
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

export class ProvisioningEngine {
  private readonly deps: EngineDependencies;
  private readonly now: () => number;
  private readonly running = new Map<string, Running>();
  private readonly waiters = new Map<string, Set<(outcome: Outcome) => void>>();
  private readonly leaseMarginMs: number;
  private state: 'idle' | 'running' | 'draining' | 'stopped' = 'idle';
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastGaugeUpdate = 0;
  /** Pauses a component with a deployment fault as a whole (src/provisioning/fault-gate.ts). */
  readonly faultGate: FaultGate;
  /** Held processes the gate released, launched as capacity allows. */
  private readonly resumeQueue = new Set<string>();

  constructor(deps: EngineDependencies) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.faultGate = new FaultGate({
      log: deps.log,
      backoff: { initialMs: deps.config.scheduler.retryInitialMs, maxMs: deps.config.scheduler.retryMaxMs },
      now: this.now,
      resume: (ids) => {
        for (const id of ids) this.resumeQueue.add(id);
        this.launchResumed();
      },
    });
    // Stop unsafe calls well before the lease could expire: 20% of the lease, at least 5 s (but never more than half).
    this.leaseMarginMs = Math.min(
      deps.config.scheduler.leaseMs / 2,
      Math.max(5_000, deps.config.scheduler.leaseMs * 0.2),
    );
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
    const result = await this.deps.store.create({
      processId: notification.processId,
      customer: notification.customer,
      correlationId: newCorrelationId(),
      dueAt: this.now(),
    });
    if (result.created) {
      this.deps.metrics.processesStarted.inc();
      this.deps.log.info(
        { processId: notification.processId, correlationId: result.record.correlationId, step: 'start' },
        'process received',
      );
    }
    if (result.record.step !== 'done') this.trigger(notification.processId);
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
      this.deps.store.get(processId).then(
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
    this.wake?.();
    await this.loop;
    const all = () => Promise.all([...this.running.values()].map((r) => r.done)).then(() => true);
    if (!(await withTimeout(all(), graceMs, false))) {
      this.deps.log.warn({ inFlight: this.running.size }, 'grace period over; handing back in-flight processes');
      for (const run of this.running.values()) run.abort.abort(new ShutdownAbort());
      await withTimeout(all(), 5_000, false);
    }
    this.state = 'stopped';
  }

  /** Starts a process now if there is capacity; otherwise the scheduler picks it up. */
  private trigger(processId: string): void {
    if (this.state !== 'running') return;
    if (this.running.size < this.deps.config.scheduler.maxConcurrent) this.launch(processId);
    else this.wake?.();
  }

  /** Launches processes the fault gate resumed, while there is capacity (the rest when running ones finish). */
  private launchResumed(): void {
    if (this.state !== 'running') return;
    for (const processId of this.resumeQueue) {
      if (this.running.size >= this.deps.config.scheduler.maxConcurrent) return;
      this.resumeQueue.delete(processId);
      this.launch(processId);
    }
  }

  private launch(processId: string): void {
    if (this.running.has(processId)) return;
    const abort = new AbortController();
    const entry: Running = {
      abort,
      done: this.runProcess(processId, abort)
        .catch((error: unknown) => {
          this.deps.log.error({ processId, error: describeError(error) }, 'unexpected error while running a process');
        })
        .finally(() => {
          // Only a replica that was at capacity needs a scan now; otherwise the scheduler's own timing (nextDueAt)
          // already covers what this process left behind, and a scan per finished step would load a shared store.
          const wasFull = this.running.size >= this.deps.config.scheduler.maxConcurrent;
          this.running.delete(processId);
          this.deps.metrics.processesInFlight.set(this.running.size);
          this.launchResumed();
          if (wasFull) this.wake?.();
        }),
    };
    this.running.set(processId, entry);
    this.deps.metrics.processesInFlight.set(this.running.size);
  }

  private async schedule(): Promise<void> {
    const { store, config, log, health } = this.deps;
    // With a shared store every scan is two queries per replica: space scans at least this far apart, however often
    // work arrives, finishes or comes due (records this replica is still leasing read as due until the lease lands).
    const minSpacingMs = Math.min(config.scheduler.pollIntervalMs, MIN_SCAN_SPACING_MS);
    while (this.state === 'running') {
      const scanStarted = performance.now();
      let nextIn = config.scheduler.pollIntervalMs;
      try {
        const capacity = config.scheduler.maxConcurrent - this.running.size;
        // At capacity nothing is asked: a finishing process wakes the loop (launch).
        if (capacity > 0) {
          const due = await store.findDue(this.now(), capacity);
          let launched = 0;
          for (const record of due) {
            if (this.running.size >= config.scheduler.maxConcurrent) break;
            if (this.running.has(record.processId)) continue;
            this.launch(record.processId);
            launched += 1;
          }
          if (launched > 0 && due.length >= capacity) {
            nextIn = 0; // a full page: more may be due right now
          } else {
            const next = await store.nextDueAt?.();
            if (next !== undefined) nextIn = Math.min(nextIn, Math.max(0, next - this.now()));
          }
        }
        await this.updateGauges();
        health.clearFault('store');
      } catch (error) {
        health.reportFault('store', describeError(error));
        log.error({ error: describeError(error) }, 'cannot read due processes from the store');
      }
      nextIn = Math.max(nextIn, minSpacingMs - (performance.now() - scanStarted));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, nextIn);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async updateGauges(): Promise<void> {
    const now = this.now();
    if (now - this.lastGaugeUpdate < 5_000 || this.deps.store.countActive === undefined) return;
    this.lastGaugeUpdate = now;
    const counts = await this.deps.store.countActive();
    for (const step of ACTIVE_STEPS) this.deps.metrics.processesWaiting.set({ step }, counts[step] ?? 0);
    this.deps.metrics.caPendingOrders.set(counts.await_ca ?? 0);
  }

  /** Runs one process under a lease until it waits, finishes, or the lease is lost. */
  private async runProcess(processId: string, abort: AbortController): Promise<void> {
    const { store, config, replicaId } = this.deps;
    const requestedAt = performance.now();
    let record: ProcessRecord | undefined;
    try {
      record = await store.tryLease(processId, replicaId, config.scheduler.leaseMs);
    } catch (error) {
      // The store is unreachable or refused: the record stays where it is and the scheduler retries it.
      this.deps.health.reportFault('store', describeError(error));
      this.deps.log.warn({ processId, error: describeError(error) }, 'cannot take the lease on a process; will retry');
      return;
    }
    if (record === undefined) return;
    const guard = new LeaseGuard(config.scheduler.leaseMs, this.leaseMarginMs, requestedAt);
    const renewal = setInterval(() => {
      const at = performance.now();
      store.renewLease(processId, replicaId, config.scheduler.leaseMs).then(
        (held) => {
          if (held) guard.renewed(at);
          else {
            guard.markLost();
            abort.abort(new LeaseLostError(processId, replicaId));
          }
        },
        (error: unknown) => this.deps.log.warn({ processId, error: describeError(error) }, 'lease renewal failed'),
      );
    }, config.scheduler.leaseMs / 3);
    try {
      for (let i = 0; i < MAX_STEPS_PER_RUN && record !== undefined; i += 1) {
        record = await this.runStep(record, guard, abort, i === 0);
      }
    } finally {
      clearInterval(renewal);
    }
  }

  /** Runs the record's step and persists its result; returns the record when the next step should run right away. */
  private async runStep(
    record: ProcessRecord,
    guard: LeaseGuard,
    abort: AbortController,
    freshLease: boolean,
  ): Promise<ProcessRecord | undefined> {
    const { store, metrics, replicaId, config } = this.deps;
    const step = record.step;
    if (step === 'done') return undefined;
    const ref: ProcessRef = { customer: record.customer, processId: record.processId };
    const log = this.deps.log.child({ processId: record.processId, correlationId: record.correlationId, step });
    const ctx: StepContext = { signal: abort.signal, log };
    let current = record;
    const run: ProcessRun = {
      deps: this.deps,
      record,
      ref,
      ctx,
      lease: guard,
      freshLease,
      now: this.now,
      persist: async (patch) => {
        current = await store.update(record.processId, replicaId, patch, { renewLeaseMs: config.scheduler.leaseMs });
        return current;
      },
    };
    const target = this.targetOf(current, step);
    const component = target?.component;
    const gateKey = target?.gateKey;
    const admission = gateKey === undefined ? undefined : this.faultGate.admit(gateKey, record.processId);
    if (admission?.kind === 'hold') {
      // The component is paused: nothing is sent. The record is parked (released, due after the longest backoff, in
      // case this replica goes away); the gate launches it again when a probe passes.
      metrics.stepDuration.observe({ step, outcome: 'held' }, 0);
      log.debug({ component: gateKey }, 'held: the component has a deployment fault');
      return this.apply(current, step, { kind: 'wait', step, delayMs: config.scheduler.retryMaxMs }, log);
    }
    const started = performance.now();
    let result: StepResult | 'abandon';
    let outcomeLabel: string;
    try {
      result = await HANDLERS[step](run);
      outcomeLabel = result.kind === 'wait' ? 'wait' : 'ok';
      if (component !== undefined) this.deps.health.clearFault(component);
      if (gateKey !== undefined) this.faultGate.succeeded(gateKey);
      if ((current.faultAttempts ?? 0) > 0) result = { ...result, patch: { ...result.patch, faultAttempts: 0 } };
    } catch (error) {
      [result, outcomeLabel] = this.onStepError(current, step, error, abort, log, component, gateKey);
    }
    // A probe that ended neither way (a 5xx, the lease lost, shutdown) frees the slot for the next process.
    if (admission?.kind === 'probe' && gateKey !== undefined && outcomeLabel !== 'deployment_fault') {
      this.faultGate.release(gateKey, record.processId);
    }
    metrics.stepDuration.observe({ step, outcome: outcomeLabel }, (performance.now() - started) / 1000);
    if (result === 'abandon') return undefined;
    return this.apply(current, step, result, log);
  }

  /**
   * What a step depends on: the fault component a success proves healthy (Google's API, or the one the CA's backend
   * declares), and what the fault gate pauses — the Chrome API, or one CA connection (`digicert:name`), since two
   * connections of one backend have their own credentials and one's refused key must not hold the other's work.
   * Undefined for a connection this replica does not have.
   */
  private targetOf(record: ProcessRecord, step: Step): { component: FaultComponent; gateKey: string } | undefined {
    if (!CA_STEPS.has(step)) return { component: 'chrome', gateKey: 'chrome' };
    const connection = this.deps.cas.get(record.caConnection ?? '');
    return connection === undefined
      ? undefined
      : { component: connection.faultComponent, gateKey: `${connection.faultComponent}:${connection.name}` };
  }

  private onStepError(
    record: ProcessRecord,
    step: Step,
    error: unknown,
    abort: AbortController,
    log: StepContext['log'],
    stepComponent: FaultComponent | undefined,
    gateKey: string | undefined,
  ): [StepResult | 'abandon', string] {
    const { config, metrics, health } = this.deps;
    const reason: unknown = abort.signal.aborted ? abort.signal.reason : undefined;
    if (error instanceof LeaseLostError || reason instanceof LeaseLostError) {
      log.warn('lease lost; another replica may continue this process. Not touching it further.');
      return ['abandon', 'lease_lost'];
    }
    if (reason instanceof ShutdownAbort) {
      log.info('shutting down; handing the process back');
      return [{ kind: 'wait', step, delayMs: 0 }, 'shutdown'];
    }
    if (error instanceof ProcessNotFoundError) {
      // Not ours to fail: the process is gone (or never existed in this customer).
      log.warn({ error: error.message }, 'process not found; acknowledging it');
      return [{ kind: 'done', outcome: 'skipped', reason: 'process_not_found' }, 'ok'];
    }
    if (error instanceof TerminalError) {
      if (step === 'report_failure') {
        log.error({ error: describeError(error) }, 'setFailure was refused; giving up on this process');
        return [{ kind: 'done', outcome: 'failed', reason: record.failure?.reason ?? error.reason }, 'terminal'];
      }
      log.error({ reason: error.reason, error: describeError(error) }, 'process cannot succeed; reporting the failure');
      return [
        {
          kind: 'next',
          step: 'report_failure',
          patch: failurePatch(error.reason, error.userMessage, record.correlationId),
        },
        'terminal',
      ];
    }
    if (error instanceof DeploymentFaultError && error.component === stepComponent && gateKey !== undefined) {
      // The step's own component: the gate pauses it for every process and logs once per interval.
      health.reportFault(error.component, error.message);
      metrics.retries.inc({ where: 'step', error_class: 'deployment' });
      this.faultGate.faulted(gateKey, record.processId, error);
      return [
        {
          kind: 'wait',
          step,
          delayMs: config.scheduler.retryMaxMs,
          patch: { faultAttempts: (record.faultAttempts ?? 0) + 1, lastError: describeError(error) },
        },
        'deployment_fault',
      ];
    }
    if (error instanceof DeploymentFaultError) {
      health.reportFault(error.component, error.message);
      metrics.retries.inc({ where: 'step', error_class: 'deployment' });
      const faultAttempts = (record.faultAttempts ?? 0) + 1;
      const delayMs = backoffDelay(
        { initialMs: config.scheduler.retryInitialMs, maxMs: config.scheduler.retryMaxMs },
        Math.min(faultAttempts, 12),
        error.retryAfterMs,
      );
      log.error(
        { component: error.component, hint: error.hint, error: describeError(error), retryInMs: delayMs },
        'deployment fault: fix the configuration or permissions; the process is kept and retried (no setFailure)',
      );
      // Deployment faults never exhaust a process (they do not count in `attempts`): the operator's fix should not
      // cost users their certificates.
      return [
        { kind: 'wait', step, delayMs, patch: { faultAttempts, lastError: describeError(error) } },
        'deployment_fault',
      ];
    }
    if (error instanceof RateBudgetExhaustedError) {
      // Our own client-side budget (Chrome API, DigiCert) had no room: nothing was sent, nothing failed. The process
      // waits for room without spending its retry budget — a renewal wave must not exhaust processes.
      metrics.retries.inc({ where: 'step', error_class: 'rate_budget' });
      log.debug({ retryInMs: error.retryAfterMs }, 'rate budget has no room; step rescheduled');
      return [{ kind: 'wait', step, delayMs: error.retryAfterMs ?? config.scheduler.retryInitialMs }, 'retry'];
    }
    const attempts = record.attempts + 1;
    const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
    if (!(error instanceof CertprovError)) {
      log.error(
        { error: describeError(error), stack: error instanceof Error ? error.stack : undefined },
        'unexpected error in step',
      );
    }
    if (attempts >= config.scheduler.maxAttempts) {
      log.error({ attempts, error: describeError(error) }, 'retries exhausted');
      return [
        {
          kind: 'next',
          step: 'report_failure',
          patch: failurePatch('retries_exhausted', userMessageFor('retries_exhausted'), record.correlationId),
        },
        'terminal',
      ];
    }
    metrics.retries.inc({ where: 'step', error_class: 'retry' });
    const delayMs = backoffDelay(
      { initialMs: config.scheduler.retryInitialMs, maxMs: config.scheduler.retryMaxMs },
      attempts,
      retryAfterMs,
    );
    log.warn({ attempts, retryInMs: delayMs, error: describeError(error) }, 'step failed; will retry');
    return [{ kind: 'wait', step, delayMs, patch: { attempts, lastError: describeError(error) } }, 'retry'];
  }

  private async apply(
    record: ProcessRecord,
    from: Step,
    result: StepResult,
    log: StepContext['log'],
  ): Promise<ProcessRecord | undefined> {
    const { store, replicaId, config, health } = this.deps;
    const now = this.now();
    let patch: ProcessPatch;
    let options: { release?: boolean; renewLeaseMs?: number };
    switch (result.kind) {
      case 'next':
        patch = { ...result.patch, step: result.step };
        options = { renewLeaseMs: config.scheduler.leaseMs };
        break;
      case 'wait':
        patch = { ...result.patch, step: result.step, dueAt: now + result.delayMs };
        options = { release: true };
        break;
      case 'done':
        patch = {
          ...result.patch,
          step: 'done',
          outcome: result.outcome,
          dueAt: now,
          ...(result.reason === undefined ? {} : { reason: result.reason }),
        };
        options = { release: true };
        break;
    }
    let stored: ProcessRecord;
    try {
      stored = await store.update(record.processId, replicaId, patch, options);
    } catch (error) {
      if (error instanceof LeaseLostError) {
        log.warn('lease lost before the step result was recorded; another replica will redo the step');
      } else {
        health.reportFault('store', describeError(error));
        log.error(
          { error: describeError(error) },
          'cannot record the step result; the lease will expire and the step be retried',
        );
      }
      return undefined;
    }
    if (result.kind === 'done') {
      this.finished(stored, log);
      return undefined;
    }
    if (stored.step !== from || result.kind === 'next') {
      log.info(
        { next: stored.step, ...(result.kind === 'wait' ? { dueInMs: result.delayMs } : {}) },
        `process → ${stored.step}`,
      );
    }
    return result.kind === 'next' ? stored : undefined;
  }

  private finished(record: ProcessRecord, log: StepContext['log']): void {
    const { metrics } = this.deps;
    const ca = record.caConnection ?? 'none';
    const seconds = (this.now() - record.createdAt) / 1000;
    switch (record.outcome) {
      case 'issued':
        metrics.processesIssued.inc({ ca_connection: ca, backend: this.deps.cas.get(ca)?.type ?? 'unknown' });
        break;
      case 'failed':
        metrics.processesFailed.inc({ reason: record.reason ?? 'internal', ca_connection: ca });
        break;
      case 'skipped':
        metrics.processesSkipped.inc({ reason: record.reason ?? 'unknown' });
        break;
    }
    metrics.provisioningDuration.observe({ outcome: record.outcome ?? 'unknown' }, seconds);
    log.info(
      { outcome: record.outcome, reason: record.reason, durationMs: Math.round(seconds * 1000) },
      `process done: ${record.outcome}`,
    );
    const set = this.waiters.get(record.processId);
    if (set !== undefined && record.outcome !== undefined) {
      this.waiters.delete(record.processId);
      for (const listener of set) listener(record.outcome);
    }
  }
}
