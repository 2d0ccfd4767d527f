/**
 * What every workflow step receives and returns. Steps are small functions, one file each under steps/; the run of
 * a process (process-runner.ts) owns leases, persistence between steps and metrics, and the failure policy
 * (failure-policy.ts) decides what an error leads to.
 */
import { performance } from 'node:perf_hooks';
import type { CaConnection } from '../ca/connection.ts';
import type { StepContext } from '../ca/types.ts';
import type { CertificateProvisioningProcess, ChromeApi, ProcessRef } from '../chrome/types.ts';
import type { Config } from '../config/load.ts';
import type { FailureReason } from '../errors.ts';
import type { Health } from '../observability/health.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import {
  LeaseLostError,
  type Outcome,
  type ProcessPatch,
  type ProcessRecord,
  type ProcessStore,
  type SkipReason,
  type Step,
} from '../store/types.ts';

export interface EngineDependencies {
  readonly config: Config;
  readonly chrome: ChromeApi;
  /** CA connections by name, constructed from config. */
  readonly cas: ReadonlyMap<string, CaConnection>;
  readonly store: ProcessStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly health: Health;
  /** Lease owner id of this replica (unique per process instance). */
  readonly replicaId: string;
  /** Wall clock, epoch ms; injectable for tests. */
  readonly now?: () => number;
}

export type StepResult =
  /** Continue with another step right away, under the same lease. */
  | { readonly kind: 'next'; readonly step: Step; readonly patch?: ProcessPatch }
  /** Persist, release the lease, and run `step` again after `delayMs` (a wait that holds nothing). */
  | { readonly kind: 'wait'; readonly step: Step; readonly delayMs: number; readonly patch?: ProcessPatch }
  /** The process is finished for this adapter. */
  | {
      readonly kind: 'done';
      readonly outcome: Outcome;
      readonly reason?: FailureReason | SkipReason;
      readonly patch?: ProcessPatch;
    };

/**
 * The lease on a process as this replica sees it, on the monotonic clock: the lease expires in the store at wall
 * time, but a paused or slow replica must judge its own remaining time without trusting the wall clock, and with
 * a safety margin (DESIGN.md §5).
 */
export class LeaseGuard {
  private readonly leaseMs: number;
  private readonly marginMs: number;
  private deadline: number;
  private lostFlag = false;

  /** `requestedAt`: `performance.now()` taken before the lease was requested (conservative). */
  constructor(leaseMs: number, marginMs: number, requestedAt: number) {
    this.leaseMs = leaseMs;
    this.marginMs = marginMs;
    this.deadline = requestedAt + leaseMs;
  }

  /** Records a successful renewal requested at `requestedAt` (monotonic). */
  renewed(requestedAt: number): void {
    this.deadline = requestedAt + this.leaseMs;
  }

  markLost(): void {
    this.lostFlag = true;
  }

  /** Milliseconds of lease left after the safety margin; ≤ 0 means "act no more". */
  remainingMs(): number {
    return this.lostFlag ? 0 : this.deadline - this.marginMs - performance.now();
  }

  /** Throws before an unsafe call when the lease may be gone (lost, or too close to expiry to finish the call). */
  assertHeld(processId: string, owner: string): void {
    if (this.remainingMs() <= 0) throw new LeaseLostError(processId, owner);
  }
}

export interface ProcessRun {
  readonly deps: EngineDependencies;
  /**
   * The record as the lease returned it at the start of this step; {@link persist} returns the stored record and does
   * not change this one (start's underFirstLease reads the leased version from it).
   */
  readonly record: ProcessRecord;
  readonly ref: ProcessRef;
  readonly ctx: StepContext;
  readonly lease: LeaseGuard;
  /**
   * True for the first step run under this lease. Such a step may be resuming what an earlier holder left in the
   * middle (a replica killed or paused after Google accepted a call but before the record said so), so a step with a
   * side effect reads the process back first and finishes from what it shows (DESIGN.md §1 "resume from the
   * resource"). A step that follows another under the same lease knows the state already.
   */
  readonly freshLease: boolean;
  /**
   * The check a lease-free signature check made just before this lease was taken: `await_signature` acts on it instead
   * of asking Chrome again (one request per check).
   */
  readonly readAhead?: ReadAhead;
  /** Writes a patch now, under the lease (e.g. an intent before an unsafe call); returns the stored record. */
  persist(patch: ProcessPatch): Promise<ProcessRecord>;
  now(): number;
}

export type StepHandler = (run: ProcessRun) => Promise<StepResult>;

/** What a signature check read: the signed process, or where the device stands (steps/await-signature.ts). */
export type SignatureRead = CertificateProvisioningProcess | 'waiting' | 'refused' | 'not-asked';

/** A signature check already made without the lease (signature-check.ts): its read, or the error it met. */
export type ReadAhead = { readonly read: SignatureRead } | { readonly error: unknown };

/**
 * The process resource, when it already finished: read before repeating a side effect in a resumed step. An upload
 * or a setFailure is never repeated on a process that finished (DESIGN.md §1).
 */
export async function finishedProcess(
  run: ProcessRun,
): Promise<{ readonly issued: boolean; readonly failed: boolean } | undefined> {
  const process = await run.deps.chrome.get(run.ref, run.ctx);
  if (process.issuedCertificate !== undefined) return { issued: true, failed: false };
  if (process.failureMessage !== undefined) return { issued: false, failed: true };
  return undefined;
}

/** The text for setFailure: the user message plus the correlation id the admin can find in the logs. */
export function userFailureMessage(userMessage: string, correlationId: string): string {
  return `${userMessage} (reference ${correlationId})`;
}

/** Terminal errors whose user message already names the reason; the failure path uses these directly. */
export function failurePatch(reason: FailureReason, userMessage: string, correlationId: string): ProcessPatch {
  // `attempts` counts the failures of the current step: report_failure starts its own count, so a step that ran out of
  // retries does not leave setFailure without any.
  return {
    step: 'report_failure',
    failure: { reason, userMessage: userFailureMessage(userMessage, correlationId) },
    attempts: 0,
  };
}
