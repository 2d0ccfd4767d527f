/**
 * The failure policy: what a step's error means for its process, as a pure function of the record, the step, the
 * error and the scheduler settings — no I/O, no clock (delays are relative; the run turns them into `dueAt`), the
 * jitter's randomness passed in. The run of one process (process-runner.ts) carries the decision out: it records the
 * result, reports the fault, counts the retry and writes the log lines. The classes are those of src/errors.ts; what
 * each costs the user and the operator is docs/failure-model.md "What fails, and what happens".
 */
import { ProcessNotFoundError } from '../chrome/errors.ts';
import { userMessageFor } from '../user-messages.ts';
import {
  CertprovError,
  DeploymentFaultError,
  RetryableError,
  TerminalError,
  describeError,
  type FaultComponent,
} from '../errors.ts';
import { LeaseLostError, type ProcessRecord, type Step } from '../store/types.ts';
import { RateBudgetExhaustedError } from '../http/shared-rate-limiter.ts';
import { backoffDelay } from '../backoff.ts';
import { failurePatch, type StepResult } from './step.ts';

/** Deployment-fault retries back off as if this were the retry number, at most: the delay is `retryMax` by then. */
const FAULT_BACKOFF_CEILING = 12;

/** The reason the scheduler aborts a running step on shutdown (the process is handed back, not failed). */
export class ShutdownAbort extends Error {
  constructor() {
    super('adapter is shutting down');
    this.name = 'ShutdownAbort';
  }
}

export interface FailureInput {
  readonly record: ProcessRecord;
  readonly step: Step;
  readonly error: unknown;
  /** Why the step's signal was aborted, if it was (a lost lease, a shutdown). */
  readonly abortReason?: unknown;
  /** The fault component the step depends on (chrome, or its CA connection's), if this replica has it. */
  readonly component?: FaultComponent;
  readonly scheduler: {
    readonly maxAttempts: number;
    readonly retryInitialMs: number;
    readonly retryMaxMs: number;
  };
  /** [0, 1), for the backoff's jitter. */
  readonly random: () => number;
}

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields?: Record<string, unknown>;
  readonly message: string;
}

export interface FailureDecision {
  /** What to record (a StepResult), or `abandon`: stop touching the process at once, record nothing. */
  readonly next: StepResult | { readonly kind: 'abandon' };
  /** The `outcome` label of the step-duration metric. */
  readonly outcome: 'lease_lost' | 'shutdown' | 'ok' | 'terminal' | 'deployment_fault' | 'retry';
  /**
   * A deployment fault to report: the component goes not-ready. `gated`: it is the step's own component, so the fault
   * gate pauses it for every process (and writes the log line itself).
   */
  readonly fault?: {
    readonly component: FaultComponent;
    readonly message: string;
    readonly hint: string | undefined;
    readonly gated: boolean;
  };
  /** The `error_class` label of the retry counter, when the step is retried. */
  readonly retryClass?: 'deployment' | 'rate_budget' | 'retry';
  /** In order, for the process's logger. */
  readonly log: readonly LogLine[];
}

/** Decides what happens to a process whose step threw `error` (first matching rule wins, most specific first). */
export function decideFailure(input: FailureInput): FailureDecision {
  const { record, step, error, abortReason, component, scheduler, random } = input;
  if (error instanceof LeaseLostError || abortReason instanceof LeaseLostError) {
    return {
      next: { kind: 'abandon' },
      outcome: 'lease_lost',
      log: [
        { level: 'warn', message: 'lease lost; another replica may continue this process. Not touching it further.' },
      ],
    };
  }
  if (abortReason instanceof ShutdownAbort) {
    return {
      next: { kind: 'wait', step, delayMs: 0 },
      outcome: 'shutdown',
      log: [{ level: 'info', message: 'shutting down; handing the process back' }],
    };
  }
  if (error instanceof ProcessNotFoundError) {
    // Not ours to fail: the process is gone (or never existed in this customer).
    return {
      next: { kind: 'done', outcome: 'skipped', reason: 'process_not_found' },
      outcome: 'ok',
      log: [{ level: 'warn', fields: { error: error.message }, message: 'process not found; acknowledging it' }],
    };
  }
  if (error instanceof TerminalError) {
    if (step === 'report_failure') {
      return {
        next: { kind: 'done', outcome: 'failed', reason: record.failure?.reason ?? error.reason },
        outcome: 'terminal',
        log: [
          {
            level: 'error',
            fields: { error: describeError(error) },
            message: 'setFailure was refused; giving up on this process',
          },
        ],
      };
    }
    return {
      next: {
        kind: 'next',
        step: 'report_failure',
        patch: failurePatch(error.reason, error.userMessage, record.correlationId),
      },
      outcome: 'terminal',
      log: [
        {
          level: 'error',
          fields: { reason: error.reason, error: describeError(error) },
          message: 'process cannot succeed; reporting the failure',
        },
      ],
    };
  }
  if (error instanceof DeploymentFaultError) {
    const faultAttempts = (record.faultAttempts ?? 0) + 1;
    const patch = { faultAttempts, lastError: describeError(error) };
    if (error.component === component) {
      // The step's own component: the gate pauses it for every process and logs once per interval; this process is
      // parked for the longest backoff in case this replica goes away before the gate resumes it.
      return {
        next: { kind: 'wait', step, delayMs: scheduler.retryMaxMs, patch },
        outcome: 'deployment_fault',
        fault: { component: error.component, message: error.message, hint: error.hint, gated: true },
        retryClass: 'deployment',
        log: [],
      };
    }
    const delayMs = backoffDelay(
      { initialMs: scheduler.retryInitialMs, maxMs: scheduler.retryMaxMs },
      Math.min(faultAttempts, FAULT_BACKOFF_CEILING),
      error.retryAfterMs,
      random,
    );
    // Deployment faults never exhaust a process (they do not count in `attempts`): the operator's fix should not cost
    // users their certificates.
    return {
      next: { kind: 'wait', step, delayMs, patch },
      outcome: 'deployment_fault',
      fault: { component: error.component, message: error.message, hint: error.hint, gated: false },
      retryClass: 'deployment',
      log: [
        {
          level: 'error',
          fields: { component: error.component, hint: error.hint, error: describeError(error), retryInMs: delayMs },
          message:
            'deployment fault: fix the configuration or permissions; the process is kept and retried (no setFailure)',
        },
      ],
    };
  }
  if (error instanceof RateBudgetExhaustedError) {
    // Our own client-side budget (Chrome API, DigiCert) had no room: nothing was sent, nothing failed. The process
    // waits for room without spending its retry budget — a renewal wave must not exhaust processes.
    return {
      next: { kind: 'wait', step, delayMs: error.retryAfterMs ?? scheduler.retryInitialMs },
      outcome: 'retry',
      retryClass: 'rate_budget',
      log: [
        {
          level: 'debug',
          fields: { retryInMs: error.retryAfterMs },
          message: 'rate budget has no room; step rescheduled',
        },
      ],
    };
  }
  // Retryable, or not ours at all (a bug): retried with backoff until scheduler.maxAttempts, then failed.
  const attempts = record.attempts + 1;
  const unexpected: LogLine[] =
    error instanceof CertprovError
      ? []
      : [
          {
            level: 'error',
            fields: { error: describeError(error), stack: error instanceof Error ? error.stack : undefined },
            message: 'unexpected error in step',
          },
        ];
  if (attempts >= scheduler.maxAttempts && step === 'report_failure') {
    // setFailure itself kept failing: the process ends failed with the reason it was failing for (not
    // retries_exhausted, which would hide it), as when setFailure is refused for good.
    return {
      next: { kind: 'done', outcome: 'failed', reason: record.failure?.reason ?? 'retries_exhausted' },
      outcome: 'terminal',
      log: [
        ...unexpected,
        {
          level: 'error',
          fields: { attempts, error: describeError(error) },
          message: 'setFailure kept failing; giving up on this process',
        },
      ],
    };
  }
  if (attempts >= scheduler.maxAttempts) {
    return {
      next: {
        kind: 'next',
        step: 'report_failure',
        patch: failurePatch('retries_exhausted', userMessageFor('retries_exhausted'), record.correlationId),
      },
      outcome: 'terminal',
      log: [
        ...unexpected,
        { level: 'error', fields: { attempts, error: describeError(error) }, message: 'retries exhausted' },
      ],
    };
  }
  const delayMs = backoffDelay(
    { initialMs: scheduler.retryInitialMs, maxMs: scheduler.retryMaxMs },
    attempts,
    error instanceof RetryableError ? error.retryAfterMs : undefined,
    random,
  );
  return {
    next: { kind: 'wait', step, delayMs, patch: { attempts, lastError: describeError(error) } },
    outcome: 'retry',
    retryClass: 'retry',
    log: [
      ...unexpected,
      {
        level: 'warn',
        fields: { attempts, retryInMs: delayMs, error: describeError(error) },
        message: 'step failed; will retry',
      },
    ],
  };
}
