/**
 * How a command that cannot start or cannot finish tells the operator: ONE line saying what failed and what to do,
 * never a stack, and the exit code convention of src/main.ts (2 configuration or usage, 1 runtime).
 */
import { ConfigError, DeploymentFaultError, describeError } from '../errors.ts';

export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

export interface Failure {
  /** What failed, in one line. */
  readonly what: string;
  /** What to do about it, when known. */
  readonly hint: string | undefined;
  readonly exitCode: number;
}

export function explainFailure(error: unknown): Failure {
  if (error instanceof ConfigError) return { what: error.message, hint: undefined, exitCode: EXIT_CONFIG };
  if (error instanceof DeploymentFaultError) {
    // A fault message may already end with its hint ("…: grant roles/pubsub.subscriber …"): say it once.
    const hint = error.hint !== undefined && !error.message.endsWith(error.hint) ? error.hint : undefined;
    return { what: error.message, hint, exitCode: EXIT_RUNTIME };
  }
  return { what: describeError(error), hint: undefined, exitCode: EXIT_RUNTIME };
}

/** `what — what to do: hint` (a ConfigError keeps its list of problems, one per line). */
export function failureText(failure: Failure): string {
  return failure.hint === undefined ? failure.what : `${failure.what} — what to do: ${failure.hint}`;
}
