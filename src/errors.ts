/**
 * The four outcome classes of DESIGN.md §5, as typed errors. Every remote client classifies a failure exactly once,
 * into one of these, and the workflow decides what to do from the class alone:
 *
 * - done            — not an error; steps return normally.
 * - retry later     — {@link RetryableError} (network, 5xx, 429 with Retry-After, CA pending, device not signed yet).
 * - terminal        — {@link TerminalError}: this process cannot succeed; setFailure with a short user message.
 * - deployment fault — {@link DeploymentFaultError}: an operator's mistake (401/403, missing permission,
 *   unreachable store). Never setFailure (it would fail the whole fleet), mark not-ready, alert, retry later.
 *
 * {@link UnclearResultError} is a retryable error that additionally says "the request may have been applied":
 * callers of unsafe operations (signData, a DigiCert order POST) must read state back instead of resending.
 */
import { userMessageFor, type FailureReason, type MessageDetails } from './user-messages.ts';

export type ErrorClass = 'retry' | 'terminal' | 'deployment';

/**
 * A component whose misconfiguration is a deployment fault; used as a metric label and in /readyz. The workflow's
 * own are `chrome`, `store` and `pubsub`; each CA backend declares its own (`CaBackend.faultComponent`), so this is
 * not a list of vendors.
 */
export type FaultComponent = string;

/**
 * Why a process failed, as a closed set: it is a metric label and must stay low-cardinality. The human detail goes
 * into the log line next to it; what the user reads comes from the catalog in src/user-messages.ts.
 */
export type { FailureReason, MessageDetails } from './user-messages.ts';

export interface CertprovErrorOptions {
  cause?: unknown;
}

export abstract class CertprovError extends Error {
  abstract readonly errorClass: ErrorClass;

  constructor(message: string, options?: CertprovErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

export interface RetryableErrorOptions extends CertprovErrorOptions {
  /** Server-requested delay (Retry-After) in milliseconds, when the server gave one. */
  retryAfterMs?: number;
}

/** Try again later; nothing is wrong with the request itself. */
export class RetryableError extends CertprovError {
  readonly errorClass = 'retry' as const;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: RetryableErrorOptions) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * The request was sent and its result is unknown (timeout after sending, connection reset, 5xx from a front end):
 * the server may have applied it. Safe calls may be retried; unsafe calls must be reconciled by reading state back.
 */
export class UnclearResultError extends RetryableError {}

export interface TerminalErrorOptions extends CertprovErrorOptions {
  /** Low-cardinality reason (metric label). */
  reason: FailureReason;
  /**
   * What the ChromeOS user reads (through setFailure), when the thrower knows better than the catalog (a CA
   * backend's own refusal). Default: the catalog's message for `reason` (src/user-messages.ts). Short, plain words,
   * no secrets and no personal data; the workflow appends the correlation id.
   */
  userMessage?: string;
  /** Configuration names the catalog message may show (profile, connection, field). */
  details?: MessageDetails;
}

/** This process cannot succeed: report it with setFailure, then acknowledge. */
export class TerminalError extends CertprovError {
  readonly errorClass = 'terminal' as const;
  readonly reason: FailureReason;
  readonly userMessage: string;

  constructor(message: string, options: TerminalErrorOptions) {
    super(message, options);
    this.reason = options.reason;
    this.userMessage = options.userMessage ?? userMessageFor(options.reason, options.details);
  }
}

export interface DeploymentFaultErrorOptions extends RetryableErrorOptions {
  component: FaultComponent;
  /** What the operator should fix, e.g. "grant keys/sign on the vault to the adapter's identity". */
  hint?: string;
}

/** An operator's mistake or an outage of a dependency we cannot work without. Never setFailure. */
export class DeploymentFaultError extends CertprovError {
  readonly errorClass = 'deployment' as const;
  readonly component: FaultComponent;
  readonly hint: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: DeploymentFaultErrorOptions) {
    super(message, options);
    this.component = options.component;
    this.hint = options.hint;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Invalid configuration: reported at start-up with every problem and its path, before any message is pulled. */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], source?: string) {
    super(
      `${source === undefined ? 'configuration' : source} is invalid:\n` + problems.map((p) => `  - ${p}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Returns the outcome class of any thrown value; unknown errors are treated as retryable (bugs get retried, logged, and eventually exhausted). */
export function errorClassOf(error: unknown): ErrorClass {
  return error instanceof CertprovError ? error.errorClass : 'retry';
}

/** A log-safe one-line description of an error and its causes (messages only, never request bodies or headers). */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth += 1) {
    if (current instanceof Error) {
      parts.push(`${current.name}: ${current.message}`);
      current = current.cause;
    } else {
      parts.push(typeof current === 'string' ? current : (JSON.stringify(current) ?? typeof current));
      break;
    }
  }
  return parts.join(' ← ');
}
