/**
 * The run of one process: take its lease, keep it renewed, and run steps (steps/, one file each) until the process
 * must wait or is done; record each result under the lease. A step's error goes to the failure policy
 * (failure-policy.ts), whose decision is carried out here. The fault gate (fault-gate.ts) may hold a step before it
 * sends anything. Leases and the resume rule: docs/failure-model.md.
 */
import { performance } from 'node:perf_hooks';
import type { StepContext } from '../step-context.ts';
import type { ProcessRef } from '../chrome/types.ts';
import { describeError, type FaultComponent } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { LeaseLostError, type ActiveStep, type ProcessPatch, type ProcessRecord, type Step } from '../store/types.ts';
import { decideFailure, type FailureDecision } from './failure-policy.ts';
import type { FaultGate } from './fault-gate.ts';
import { checkWithoutLease, checksWithoutLease } from './signature-check.ts';
import {
  LeaseGuard,
  type EngineDependencies,
  type ProcessRun,
  type ReadAhead,
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
/** A step result the store could not record is tried again this many times, while the lease lasts. */
const RESULT_WRITE_RETRIES = 1;

export interface ProcessRunnerOptions {
  readonly deps: EngineDependencies;
  readonly now: () => number;
  readonly faultGate: FaultGate;
  /** Called once a process is recorded as done on this replica (after its metrics and log line). */
  readonly onDone: (record: ProcessRecord) => void;
}

export class ProcessRunner {
  private readonly deps: EngineDependencies;
  private readonly now: () => number;
  private readonly faultGate: FaultGate;
  private readonly onDone: (record: ProcessRecord) => void;
  private readonly leaseMarginMs: number;

  constructor(options: ProcessRunnerOptions) {
    this.deps = options.deps;
    this.now = options.now;
    this.faultGate = options.faultGate;
    this.onDone = options.onDone;
    const { leaseMs } = options.deps.config.scheduler;
    // Stop unsafe calls well before the lease could expire: 20% of the lease, at least 5 s (but never more than half).
    this.leaseMarginMs = Math.min(leaseMs / 2, Math.max(5_000, leaseMs * 0.2));
  }

  /**
   * Runs one process under a lease until it waits, finishes, or the lease is lost. `abort` stops its steps. A record
   * not due yet is left alone unless `beforeDue` (the fault gate resuming what it parked): a launch from a scan that
   * another replica overtook (it ran the step and wrote a later dueAt between our scan and our lease) must not run
   * the step again before its time.
   */
  async run(
    processId: string,
    abort: AbortController,
    options: { beforeDue?: boolean; record?: ProcessRecord } = {},
  ): Promise<void> {
    const { store, config, replicaId } = this.deps;
    // A further signature check, with the record at hand (the scan's): made without the lease (signature-check.ts).
    let ahead: { version: number; readAhead: ReadAhead } | undefined;
    const scanned = options.record;
    if (
      scanned !== undefined &&
      !this.faultGate.isFaulted('chrome') &&
      checksWithoutLease(scanned, this.deps, this.now())
    ) {
      const log = this.deps.log.child({
        processId,
        correlationId: scanned.correlationId,
        step: scanned.step,
      });
      const check = await checkWithoutLease(scanned, this.deps, this.now, abort.signal, log);
      if (check.kind === 'handled') return;
      ahead = check;
    }
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
    // After a lease-free check the record is due at its next check (the claim moved it); it is ours to act on only if
    // nobody wrote to it between the claim and this lease.
    const leaveAlone =
      ahead === undefined
        ? record.dueAt > this.now() && options.beforeDue !== true
        : record.version !== ahead.version + 1;
    if (leaveAlone) {
      await store.update(processId, replicaId, {}, { release: true }).catch((error: unknown) => {
        // The lease expires on its own; the record keeps its dueAt either way.
        this.deps.log.warn({ processId, error: describeError(error) }, 'cannot release the lease on a process not due');
      });
      return;
    }
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
        record = await this.runStep(record, guard, abort, i === 0, i === 0 ? ahead?.readAhead : undefined);
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
    readAhead: ReadAhead | undefined,
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
      ...(readAhead === undefined || record.step !== 'await_signature' ? {} : { readAhead }),
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
      return this.apply(current, step, { kind: 'wait', step, delayMs: config.scheduler.retryMaxMs }, log, guard);
    }
    const started = performance.now();
    let result: StepResult | undefined;
    let outcomeLabel: string;
    try {
      result = await HANDLERS[step](run);
      outcomeLabel = result.kind === 'wait' ? 'wait' : 'ok';
      if (component !== undefined) this.deps.health.clearFault(component);
      if (gateKey !== undefined) this.faultGate.succeeded(gateKey);
      if ((current.faultAttempts ?? 0) > 0) result = { ...result, patch: { ...result.patch, faultAttempts: 0 } };
    } catch (error) {
      const abortReason: unknown = abort.signal.aborted ? abort.signal.reason : undefined;
      const decision = decideFailure({
        record: current,
        step,
        error,
        abortReason,
        ...(component === undefined ? {} : { component }),
        scheduler: config.scheduler,
        random: Math.random,
      });
      this.carryOut(decision, record.processId, gateKey, log);
      result = decision.next.kind === 'abandon' ? undefined : decision.next;
      outcomeLabel = decision.outcome;
    }
    // A probe that ended neither way (a 5xx, the lease lost, shutdown) frees the slot for the next process.
    if (admission?.kind === 'probe' && gateKey !== undefined && outcomeLabel !== 'deployment_fault') {
      this.faultGate.release(gateKey, record.processId);
    }
    metrics.stepDuration.observe({ step, outcome: outcomeLabel }, (performance.now() - started) / 1000);
    if (result === undefined) return undefined;
    return this.apply(current, step, result, log, guard);
  }

  /** The failure policy's side effects: readiness, the retry counter, the fault gate, the log lines. */
  private carryOut(decision: FailureDecision, processId: string, gateKey: string | undefined, log: Logger): void {
    const { fault, retryClass } = decision;
    if (fault !== undefined) this.deps.health.reportFault(fault.component, fault.message);
    if (retryClass !== undefined) this.deps.metrics.retries.inc({ where: 'step', error_class: retryClass });
    if (fault?.gated === true && gateKey !== undefined) this.faultGate.faulted(gateKey, processId, fault);
    for (const line of decision.log) {
      if (line.fields === undefined) log[line.level](line.message);
      else log[line.level](line.fields, line.message);
    }
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

  /** Records a step's result; returns the stored record when the next step should run right away. */
  private async apply(
    record: ProcessRecord,
    from: Step,
    result: StepResult,
    log: Logger,
    guard: LeaseGuard,
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
    let stored: ProcessRecord | undefined;
    for (let attempt = 0; stored === undefined; attempt += 1) {
      try {
        stored = await store.update(record.processId, replicaId, patch, options);
      } catch (error) {
        if (error instanceof LeaseLostError) {
          log.warn('lease lost before the step result was recorded; another replica will redo the step');
          return undefined;
        }
        health.reportFault('store', describeError(error));
        // The step's work is done: recording it again (a compare-and-set under the lease, safe to repeat) costs one
        // write, leaving it costs the whole step again — Chrome requests included — once the lease expires.
        const delayMs = config.scheduler.retryInitialMs;
        if (attempt < RESULT_WRITE_RETRIES && guard.remainingMs() > delayMs) {
          log.warn({ error: describeError(error), retryInMs: delayMs }, 'cannot record the step result; trying again');
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          continue;
        }
        log.error(
          { error: describeError(error) },
          'cannot record the step result; the lease will expire and the step be retried',
        );
        return undefined;
      }
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

  /** Counts and logs a finished process, then tells the scheduler (its outcome waiters). */
  private finished(record: ProcessRecord, log: Logger): void {
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
    this.onDone(record);
  }
}
