/**
 * The failure policy as a table (src/provisioning/failure-policy.ts): each row says in a sentence what an error on a
 * step leads to, gives the record, the step and the error, and the decision expected — what is recorded next, the
 * metric labels, the fault reported, the log lines. The jitter's randomness is fixed at the middle (factor 1), so
 * every delay is the schedule itself: retryInitial × 2^(retry-1), capped at retryMax.
 */
import { describe, expect, it, vi } from 'vitest';
import { ClaimedByAnotherInstanceError, ProcessNotFoundError } from '../../../src/chrome/errors.ts';
import {
  DeploymentFaultError,
  RetryableError,
  TerminalError,
  UnclearResultError,
  type FailureReason,
} from '../../../src/errors.ts';
import { RateBudgetExhaustedError } from '../../../src/http/shared-rate-limiter.ts';
import {
  decideFailure,
  ShutdownAbort,
  type FailureDecision,
  type FailureInput,
} from '../../../src/provisioning/failure-policy.ts';
import { LeaseLostError, type ActiveStep, type ProcessPatch, type ProcessRecord } from '../../../src/store/types.ts';

const CORRELATION = 'CP-7Q2M9XKD';
const SCHEDULER = { maxAttempts: 5, retryInitialMs: 1_000, retryMaxMs: 60_000 } as const;
const middle = (): number => 0.5;

function record(overrides: Partial<ProcessRecord> = {}): ProcessRecord {
  return {
    schemaVersion: 1,
    processId: 'p-1',
    customer: 'C0123',
    correlationId: CORRELATION,
    step: 'start',
    issueAttempts: 0,
    issueResults: 0,
    attempts: 0,
    dueAt: 1_000,
    version: 3,
    createdAt: 0,
    updatedAt: 1_000,
    ...overrides,
  };
}

/** The setFailure text the report_failure step will send. */
const reported = (reason: FailureReason, message: string): ProcessPatch => ({
  step: 'report_failure',
  failure: { reason, userMessage: `${message} (reference ${CORRELATION})` },
  attempts: 0,
});

const EXHAUSTED = 'The certificate service could not complete the request. Try again later.';

interface Row {
  readonly name: string;
  readonly step: ActiveStep;
  readonly record?: Partial<ProcessRecord>;
  readonly error: unknown;
  readonly abortReason?: unknown;
  /** The fault component the step depends on; default `chrome` for Google steps, `digicert` for CA steps. */
  readonly component?: string | null;
  readonly scheduler?: Partial<FailureInput['scheduler']>;
  readonly random?: () => number;
  readonly expected: {
    readonly next: FailureDecision['next'];
    readonly outcome: FailureDecision['outcome'];
    readonly fault?: FailureDecision['fault'];
    readonly retryClass?: FailureDecision['retryClass'];
    /** `level: message` of each log line, in order. */
    readonly log: readonly string[];
  };
}

const retryable = new RetryableError('CA answered 503');
const fault = (component: string, options: { retryAfterMs?: number } = {}) =>
  new DeploymentFaultError('403 permission denied', { component, hint: 'grant the role', ...options });

type Expected = Row['expected'];
const RETRY_LOG = 'warn: step failed; will retry';
const UNEXPECTED_LOG = 'error: unexpected error in step';
const FAULT_LOG =
  'error: deployment fault: fix the configuration or permissions; the process is kept and retried (no setFailure)';
const TERMINAL_LOG = 'error: process cannot succeed; reporting the failure';

/** The step runs again after `delayMs`, its attempt count now `attempts`. */
function retried(
  step: ActiveStep,
  delayMs: number,
  attempts: number,
  lastError = 'RetryableError: CA answered 503',
  log = [RETRY_LOG],
): Expected {
  return {
    next: { kind: 'wait', step, delayMs, patch: { attempts, lastError } },
    outcome: 'retry',
    retryClass: 'retry',
    log,
  };
}

/** The failure is reported next (setFailure with `reason`'s message), at once, under the same lease. */
function reports(reason: FailureReason, message: string, log = [TERMINAL_LOG]): Expected {
  return { next: { kind: 'next', step: 'report_failure', patch: reported(reason, message) }, outcome: 'terminal', log };
}

/** A deployment fault of `component`: the step waits `delayMs`; `gated` when the fault gate pauses the component. */
function heldForFault(
  step: ActiveStep,
  component: string,
  delayMs: number,
  faultAttempts: number,
  gated: boolean,
): Expected {
  return {
    next: {
      kind: 'wait',
      step,
      delayMs,
      patch: { faultAttempts, lastError: 'DeploymentFaultError: 403 permission denied' },
    },
    outcome: 'deployment_fault',
    fault: { component, message: '403 permission denied', hint: 'grant the role', gated },
    retryClass: 'deployment',
    // The gate writes one line per interval, not one per process.
    log: gated ? [] : [FAULT_LOG],
  };
}

const ABANDONED: Expected = {
  next: { kind: 'abandon' },
  outcome: 'lease_lost',
  log: ['warn: lease lost; another replica may continue this process. Not touching it further.'],
};

const FAILING = { failure: { reason: 'bad_signature', userMessage: 'x (reference CP-1)' } } as const;

const ROWS: readonly Row[] = [
  // Retryable errors and their budget.
  {
    name: 'a retryable CA error on issue retries with backoff and keeps the step',
    step: 'issue',
    error: retryable,
    expected: retried('issue', 1_000, 1),
  },
  {
    name: 'the third consecutive failure of a step waits four times the first delay',
    step: 'await_signature',
    record: { attempts: 2 },
    error: retryable,
    expected: retried('await_signature', 4_000, 3),
  },
  {
    name: 'the backoff stops growing at scheduler.retryMax',
    step: 'upload',
    record: { attempts: 20 },
    scheduler: { maxAttempts: 30 },
    error: retryable,
    expected: retried('upload', 60_000, 21),
  },
  {
    name: 'the jitter is drawn from the random source it is given (lowest draw: 80 % of the schedule)',
    step: 'issue',
    record: { attempts: 1 },
    random: () => 0,
    error: retryable,
    expected: retried('issue', 1_600, 2),
  },
  {
    name: "a server's Retry-After longer than the backoff is waited out in full",
    step: 'start',
    error: new RetryableError('Chrome API answered 429', { retryAfterMs: 30_000 }),
    expected: retried('start', 30_000, 1, 'RetryableError: Chrome API answered 429'),
  },
  {
    name: 'an unclear upload result that the step could not resolve is retried like any retryable error',
    step: 'upload',
    error: new UnclearResultError('connection reset after sending'),
    expected: retried('upload', 1_000, 1, 'UnclearResultError: connection reset after sending'),
  },
  {
    name: 'the failure that reaches scheduler.maxAttempts fails the process with retries_exhausted',
    step: 'await_signature',
    record: { attempts: 4 },
    error: retryable,
    expected: reports('retries_exhausted', EXHAUSTED, ['error: retries exhausted']),
  },
  {
    name: 'with scheduler.maxAttempts 1 the first retryable failure is already the last',
    step: 'issue',
    scheduler: { maxAttempts: 1 },
    error: retryable,
    expected: reports('retries_exhausted', EXHAUSTED, ['error: retries exhausted']),
  },
  {
    name: 'an unknown error (a bug) is retried like a retryable one, and logged as unexpected first',
    step: 'issue',
    error: new TypeError("Cannot read properties of undefined (reading 'csr')"),
    expected: retried('issue', 1_000, 1, "TypeError: Cannot read properties of undefined (reading 'csr')", [
      UNEXPECTED_LOG,
      RETRY_LOG,
    ]),
  },
  {
    name: 'an unknown thrown value that is not an Error exhausts the process like any other at the last attempt',
    step: 'upload',
    record: { attempts: 4 },
    error: 'a string thrown by a dependency',
    expected: reports('retries_exhausted', EXHAUSTED, [UNEXPECTED_LOG, 'error: retries exhausted']),
  },

  // Terminal errors.
  {
    name: 'a terminal error on start reports the failure with the catalog message and the correlation id',
    step: 'start',
    error: new TerminalError('unknown profile reference "wifi"', {
      reason: 'unknown_profile',
      details: { profile: 'wifi' },
    }),
    expected: reports(
      'unknown_profile',
      'The certificate service has no certificate profile named "wifi". Ask your administrator.',
    ),
  },
  {
    name: "a CA refusal carries the backend's own user message, not the catalog's",
    step: 'issue',
    error: new TerminalError('order rejected', { reason: 'ca_rejected', userMessage: 'The domain is not validated.' }),
    expected: reports('ca_rejected', 'The domain is not validated.'),
  },
  {
    name: 'a terminal error is reported at once, whatever retry budget is left',
    step: 'await_signature',
    record: { attempts: 3 },
    error: new TerminalError('the signed CertificationRequestInfo carries a different public key', {
      reason: 'bad_signature',
    }),
    expected: reports('bad_signature', "The device's proof-of-possession signature could not be verified."),
  },
  {
    name: 'a claim lost to another instance that escapes a step is terminal like any other',
    step: 'start',
    error: new ClaimedByAnotherInstanceError('claimed by another callerInstanceId'),
    expected: reports('chrome_rejected', 'The certificate request was rejected by the Chrome management service.'),
  },
  {
    name: 'setFailure refused for good ends the process failed with the reason it was failing for',
    step: 'report_failure',
    record: FAILING,
    error: new TerminalError('400 FAILED_PRECONDITION', { reason: 'chrome_rejected' }),
    expected: {
      next: { kind: 'done', outcome: 'failed', reason: 'bad_signature' },
      outcome: 'terminal',
      log: ['error: setFailure was refused; giving up on this process'],
    },
  },
  {
    name: "setFailure refused on a record without a failure ends with the refusal's reason",
    step: 'report_failure',
    error: new TerminalError('400 FAILED_PRECONDITION', { reason: 'chrome_rejected' }),
    expected: {
      next: { kind: 'done', outcome: 'failed', reason: 'chrome_rejected' },
      outcome: 'terminal',
      log: ['error: setFailure was refused; giving up on this process'],
    },
  },
  {
    name: 'a transient setFailure error is retried on report_failure (the failure is not lost)',
    step: 'report_failure',
    record: FAILING,
    error: new RetryableError('Chrome API answered 503'),
    expected: retried('report_failure', 1_000, 1, 'RetryableError: Chrome API answered 503'),
  },
  {
    name: 'a step that ran out of retries leaves report_failure a fresh count of its own',
    step: 'issue',
    record: { attempts: 4 },
    error: retryable,
    expected: reports('retries_exhausted', EXHAUSTED, ['error: retries exhausted']),
  },
  {
    name: 'a transient setFailure error right after the retries ran out is retried with backoff, reason kept',
    step: 'report_failure',
    record: { ...FAILING, attempts: 0 },
    error: new RetryableError('Chrome API answered 503'),
    expected: retried('report_failure', 1_000, 1, 'RetryableError: Chrome API answered 503'),
  },
  {
    name: 'setFailure that keeps failing until scheduler.maxAttempts ends the process failed with its own reason',
    step: 'report_failure',
    record: { ...FAILING, attempts: 4 },
    error: new RetryableError('Chrome API answered 503'),
    expected: {
      next: { kind: 'done', outcome: 'failed', reason: 'bad_signature' },
      outcome: 'terminal',
      log: ['error: setFailure kept failing; giving up on this process'],
    },
  },

  // A process that is not there.
  {
    name: 'a process Google no longer has is skipped, never failed',
    step: 'start',
    error: new ProcessNotFoundError('404 process not found'),
    expected: {
      next: { kind: 'done', outcome: 'skipped', reason: 'process_not_found' },
      outcome: 'ok',
      log: ['warn: process not found; acknowledging it'],
    },
  },
  {
    name: 'a process that disappears while its failure is reported is skipped too (not-found wins over terminal)',
    step: 'report_failure',
    record: FAILING,
    error: new ProcessNotFoundError('404 process not found'),
    expected: {
      next: { kind: 'done', outcome: 'skipped', reason: 'process_not_found' },
      outcome: 'ok',
      log: ['warn: process not found; acknowledging it'],
    },
  },

  // Deployment faults.
  {
    name: "a deployment fault of the step's own CA connection parks the process for retryMax and trips the gate",
    step: 'issue',
    record: { attempts: 4 },
    component: 'digicert',
    error: fault('digicert'),
    expected: heldForFault('issue', 'digicert', 60_000, 1, true),
  },
  {
    name: "a Chrome 403 on a Chrome step is the step's own component too: gated",
    step: 'upload',
    record: { faultAttempts: 2 },
    error: fault('chrome'),
    expected: heldForFault('upload', 'chrome', 60_000, 3, true),
  },
  {
    name: 'a fault of another component (the store during a Chrome step) backs off, is logged, and spends no attempt',
    step: 'start',
    record: { attempts: 4 },
    error: fault('store'),
    expected: heldForFault('start', 'store', 1_000, 1, false),
  },
  {
    name: 'ungated deployment faults never exhaust a process: the 40th still waits',
    step: 'start',
    record: { attempts: 4, faultAttempts: 39 },
    error: fault('kms'),
    expected: heldForFault('start', 'kms', 60_000, 40, false),
  },
  {
    name: 'the deployment-fault backoff stops doubling at the 12th fault, whatever retryMax allows',
    step: 'start',
    record: { faultAttempts: 29 },
    scheduler: { retryMaxMs: 100_000_000 },
    error: fault('store'),
    expected: heldForFault('start', 'store', 1_000 * 2 ** 11, 30, false),
  },
  {
    name: "an ungated deployment fault's Retry-After is waited out",
    step: 'start',
    error: fault('store', { retryAfterMs: 45_000 }),
    expected: heldForFault('start', 'store', 45_000, 1, false),
  },
  {
    name: "a CA step whose connection this replica does not have is not gated, even for that backend's component",
    step: 'await_ca',
    component: null,
    error: fault('digicert'),
    expected: heldForFault('await_ca', 'digicert', 1_000, 1, false),
  },

  // Our own rate budget.
  {
    name: 'an empty rate budget reschedules the step when there is room, without spending an attempt',
    step: 'start',
    record: { attempts: 4 },
    error: new RateBudgetExhaustedError('chrome budget has no room', { retryAfterMs: 250 }),
    expected: {
      next: { kind: 'wait', step: 'start', delayMs: 250 },
      outcome: 'retry',
      retryClass: 'rate_budget',
      log: ['debug: rate budget has no room; step rescheduled'],
    },
  },
  {
    name: 'an empty rate budget that does not say when waits scheduler.retryInitial',
    step: 'issue',
    error: new RateBudgetExhaustedError('digicert budget has no room'),
    expected: {
      next: { kind: 'wait', step: 'issue', delayMs: 1_000 },
      outcome: 'retry',
      retryClass: 'rate_budget',
      log: ['debug: rate budget has no room; step rescheduled'],
    },
  },

  // Leases and shutdown.
  {
    name: 'a lost lease stops the run at once and records nothing',
    step: 'upload',
    error: new LeaseLostError('p-1', 'replica-a'),
    expected: ABANDONED,
  },
  {
    name: 'a step aborted because the lease was lost is abandoned, whatever it threw (here a terminal error)',
    step: 'start',
    error: new TerminalError('aborted mid-call', { reason: 'internal' }),
    abortReason: new LeaseLostError('p-1', 'replica-a'),
    expected: ABANDONED,
  },
  {
    name: 'a step aborted by shutdown hands the process back: same step, due now, no attempt spent',
    step: 'await_ca',
    record: { attempts: 4 },
    error: new DOMException('This operation was aborted', 'AbortError'),
    abortReason: new ShutdownAbort(),
    expected: {
      next: { kind: 'wait', step: 'await_ca', delayMs: 0 },
      outcome: 'shutdown',
      log: ['info: shutting down; handing the process back'],
    },
  },
];

function decide(row: Row): FailureDecision {
  const componentOf = (step: ActiveStep) => (step === 'issue' || step === 'await_ca' ? 'digicert' : 'chrome');
  const component = row.component === null ? undefined : (row.component ?? componentOf(row.step));
  return decideFailure({
    record: record({ step: row.step, ...row.record }),
    step: row.step,
    error: row.error,
    ...(row.abortReason === undefined ? {} : { abortReason: row.abortReason }),
    ...(component === undefined ? {} : { component }),
    scheduler: { ...SCHEDULER, ...row.scheduler },
    random: row.random ?? middle,
  });
}

describe('the failure policy', () => {
  for (const row of ROWS) {
    it(row.name, () => {
      const decision = decide(row);
      expect(decision.next).toEqual(row.expected.next);
      expect(decision.outcome).toBe(row.expected.outcome);
      expect(decision.fault).toEqual(row.expected.fault);
      expect(decision.retryClass).toBe(row.expected.retryClass);
      expect(decision.log.map((l) => `${l.level}: ${l.message}`)).toEqual(row.expected.log);
    });
  }

  it('covers every error class of src/errors.ts and the others a step may throw', () => {
    const classes = new Set(ROWS.map((r) => (r.error as object).constructor.name));
    for (const name of [
      'RetryableError',
      'UnclearResultError',
      'TerminalError',
      'DeploymentFaultError',
      'LeaseLostError',
      'ProcessNotFoundError',
      'RateBudgetExhaustedError',
      'TypeError',
      'String',
    ]) {
      expect(classes, name).toContain(name);
    }
  });

  it('reads no clock: the same input gives the same decision with the clocks broken', () => {
    const before = ROWS.map(decide);
    const broken = (name: string) => () => {
      throw new Error(`the failure policy read ${name}`);
    };
    const date = vi.spyOn(Date, 'now').mockImplementation(broken('Date.now'));
    const monotonic = vi.spyOn(performance, 'now').mockImplementation(broken('performance.now'));
    let after: FailureDecision[];
    try {
      after = ROWS.map(decide);
    } finally {
      date.mockRestore();
      monotonic.mockRestore();
    }
    expect(after).toEqual(before);
  });

  it('a log line carries the error and the delay an operator needs, never a stack for a classified error', () => {
    const retry = decide(ROWS[0] as Row);
    expect(retry.log[0]?.fields).toEqual({
      attempts: 1,
      retryInMs: 1_000,
      error: 'RetryableError: CA answered 503',
    });
    const unexpected = decide(ROWS.find((r) => r.error instanceof TypeError) as Row);
    expect(unexpected.log[0]?.fields?.stack).toMatch(/^TypeError: Cannot read properties/);
    const ungated = decide(ROWS.find((r) => r.name.startsWith('a fault of another component')) as Row);
    expect(ungated.log[0]?.fields).toMatchObject({ component: 'store', hint: 'grant the role', retryInMs: 1_000 });
  });
});
