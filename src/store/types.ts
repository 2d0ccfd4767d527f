/**
 * Process state (DESIGN.md §5). One record per Chrome provisioning process; the scheduler in src/provisioning/
 * drives every wait from `dueAt`, and a lease in the record makes sure one replica works on a process at a time.
 *
 * Leases: Google and DigiCert accept no fencing token, so a lease cannot stop a paused replica from acting once
 * after it lost the lease. The workflow keeps leases long relative to a step, measures them with monotonic time and
 * a safety margin, and re-reads the process right before the unsafe calls (docs/failure-model.md).
 */
import { DeploymentFaultError, type FailureReason } from '../errors.ts';
import type { PendingRef } from '../ca/pending-ref.ts';
import type { RenderedProfile } from '../pki/types.ts';
import type { CertificateHolder, InventoryStore } from './inventory.ts';

/** Bump when a field changes meaning; readers accept every version up to their own (rolling upgrades). */
export const PROCESS_RECORD_SCHEMA_VERSION = 1;

/**
 * Where a process is. `start` covers get → policy → claim → signData; the rest are waits or single side effects.
 * Only `done` is final.
 */
export const ACTIVE_STEPS = ['start', 'await_signature', 'issue', 'await_ca', 'upload', 'report_failure'] as const;
export type ActiveStep = (typeof ACTIVE_STEPS)[number];
export type Step = ActiveStep | 'done';

export type Outcome = 'issued' | 'failed' | 'skipped';

/** Why a process ended without work: a low-cardinality metric label. */
export type SkipReason = 'already_finished' | 'claimed_elsewhere' | 'claim_refused' | 'process_not_found' | 'not_ours';

export interface Lease {
  readonly owner: string;
  /** Wall-clock epoch milliseconds; other replicas may take the lease after this. */
  readonly expiresAt: number;
}

export interface PendingFailure {
  readonly reason: FailureReason;
  /** The text for setFailure, correlation id included. */
  readonly userMessage: string;
}

export interface ProcessRecord {
  readonly schemaVersion: number;
  readonly processId: string;
  readonly customer: string;
  readonly correlationId: string;
  readonly step: Step;
  readonly outcome?: Outcome;
  /** FailureReason when failed, SkipReason when skipped. */
  readonly reason?: FailureReason | SkipReason;

  /**
   * Epoch ms when this replica set's claim was accepted. A record that has it never claims again (a resumed process
   * is ours already); only a process without it is claimed.
   */
  readonly claimedAt?: number;

  readonly caConnection?: string;
  readonly profile?: string;
  /** The device SubjectPublicKeyInfo, base64 DER (from the process resource). */
  readonly spki?: string;
  /**
   * The profile as rendered when the CSR was built; the CA request uses this snapshot, so a configuration change
   * while a process waits cannot make the certificate disagree with the CSR the device signed.
   */
  readonly rendered?: RenderedProfile;
  /** Who the certificate is for (from the process resource): the inventory's clear identity (store only, never logged). */
  readonly holder?: CertificateHolder;

  /**
   * Epoch ms when the last signData was sent. The signature deadline counts from a signData that took effect; after
   * an unclear one, this tells when the request can no longer be in flight (README "Failure model").
   */
  readonly signDataAt?: number;
  /** Operation name returned by signData, when known. */
  readonly signDataOperation?: string;
  /** Epoch ms after which a missing device signature fails the process. */
  readonly signatureDeadline?: number;
  /** The verified CSR, base64 DER, once the device signed. */
  readonly csr?: string;

  /** Number of CA `issue` calls started (intent recorded before each). */
  readonly issueAttempts: number;
  /** Number of `issue` calls whose result was recorded. */
  readonly issueResults: number;
  readonly pendingRef?: PendingRef;
  /** Index key for {@link CoordinationStore.wakeByLookupKey}. */
  readonly lookupKey?: string;
  /** Epoch ms after which a pending CA request is cancelled and the process failed. */
  readonly caDeadline?: number;

  /** The issued leaf, kept until uploadCertificate succeeded. */
  readonly certificatePem?: string;
  readonly failure?: PendingFailure;

  /** Consecutive failed attempts of the current step (reset on progress); `scheduler.maxAttempts` bounds them. */
  readonly attempts: number;
  /**
   * Consecutive deployment faults (401/403, missing permission) of the current step: they only lengthen the backoff
   * and never exhaust the process — an operator's fix must not cost users their certificates.
   */
  readonly faultAttempts?: number;
  /** Log-safe description of the last error. */
  readonly lastError?: string;

  /** Epoch ms when the scheduler should run the record next. */
  readonly dueAt: number;
  readonly lease?: Lease;
  /** Incremented on every write; compare-and-set token. */
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Set when done: a Firestore TTL policy on this field deletes finished records. */
  readonly expireAt?: number;
}

/** The fields a writer may change; identity, version and timestamps are the store's. */
export type ProcessPatch = Partial<
  Omit<
    ProcessRecord,
    'schemaVersion' | 'processId' | 'customer' | 'correlationId' | 'version' | 'createdAt' | 'updatedAt' | 'lease'
  >
>;

export interface NewProcess {
  readonly processId: string;
  readonly customer: string;
  readonly correlationId: string;
  readonly dueAt: number;
}

/** Thrown by writes when the caller no longer holds the lease: stop working on the process at once. */
export class LeaseLostError extends Error {
  constructor(processId: string, owner: string) {
    super(`lease on process ${processId} is no longer held by ${owner}`);
    this.name = 'LeaseLostError';
  }
}

export interface UpdateOptions {
  /** Extend the lease to now + this many ms with the write. */
  readonly renewLeaseMs?: number;
  /** Drop the lease with the write (the record becomes available to any replica at `dueAt`). */
  readonly release?: boolean;
}

/** Cross-replica coordination beyond single records: named leases (one poller per API key) and shared rate budgets. */
export interface CoordinationStore {
  /** Takes or renews the named lease for `owner`; false when another owner holds an unexpired one. */
  tryNamedLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseNamedLease(name: string, owner: string): Promise<void>;
  /**
   * Takes one token from every window of a shared budget (sliding-window counters, e.g. 100 per 5 s and 1,000 per
   * 3 min). Returns 0 when granted, else how many ms to wait before asking again (nothing is taken then).
   */
  takeToken(bucket: string, windows: readonly RateWindow[]): Promise<number>;
  /** Makes the process waiting on `lookupKey` due now; merges `hint` into its pendingRef. False if none waits. */
  wakeByLookupKey(lookupKey: string, hint?: PendingRef): Promise<boolean>;
}

export interface RateWindow {
  readonly limit: number;
  readonly windowMs: number;
}

/**
 * The store did not answer in time, or refused for load (Firestore's DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED): a
 * deployment fault of component `store` that also tells the scheduler to press less (src/provisioning/store-load.ts).
 * A write that failed this way may still have been applied.
 */
export class StoreBusyError extends DeploymentFaultError {
  /** `timeout`: no answer within the bound; `overload`: the store said it is over its limit. */
  readonly busy: 'timeout' | 'overload';

  constructor(
    message: string,
    busy: 'timeout' | 'overload',
    options: { readonly hint?: string; readonly cause?: unknown },
  ) {
    super(message, { component: 'store', ...options });
    this.busy = busy;
  }
}

/**
 * Whether a record is continuing work (findDue's first group): past `start`, so its Chrome process is claimed or its
 * device was asked. Records at `start` (a retry of it included) are new work.
 */
export function isContinuing(step: Step): boolean {
  return step !== 'start';
}

/** The active steps of continuing work ({@link isContinuing}), for stores that query by step. */
export const CONTINUING_STEPS: readonly ActiveStep[] = ACTIVE_STEPS.filter((step) => step !== 'start');

export interface FindDueOptions {
  /**
   * Places of the page kept for records at `start` when they are due, before continuing work fills it. Without it
   * a steady stream of continuing work could take every slot; the scheduler sets it so that at least one launch in
   * four goes to new work while new work is due (src/provisioning/engine.ts).
   */
  readonly reserveForStarts?: number;
}

/** The scheduler's least spacing of two scans of a store that does not set its own (ProcessStore.scanSpacingMs). */
export const DEFAULT_SCAN_SPACING_MS = 50;

export interface ProcessStore extends CoordinationStore, InventoryStore {
  readonly kind: 'memory' | 'sqlite' | 'firestore';
  /** Whether records survive a crash of this process. */
  readonly durable: boolean;
  /**
   * Least time the scheduler leaves between two scans of this store (findDue, nextDueAt); default
   * {@link DEFAULT_SCAN_SPACING_MS}. A shared store keeps the default: each scan is up to three billed queries per
   * replica. A local store answers a scan from an index in microseconds and sets less, so a slot freed at capacity is
   * filled at once instead of idling until the next scan.
   */
  readonly scanSpacingMs?: number;
  /**
   * A call slower than this tells the scheduler the store is congested, as a timeout would (Firestore: a quarter of
   * its request timeout); undefined for a local store, whose only congestion signal is a {@link StoreBusyError}.
   */
  readonly slowCallMs?: number;

  /** Creates the record unless one exists (create-if-absent); returns the stored record either way. */
  create(init: NewProcess): Promise<{ created: boolean; record: ProcessRecord }>;
  get(processId: string): Promise<ProcessRecord | undefined>;
  /** The record with this correlation id (the id a user reads on the ChromeOS screen), for `certprov status`. */
  findByCorrelationId(correlationId: string): Promise<ProcessRecord | undefined>;
  /**
   * Takes the lease if the record is not done and its lease is absent, expired or already `owner`'s. Returns the
   * record with the new lease, or undefined when another replica holds it (or the record is gone or done).
   */
  tryLease(processId: string, owner: string, ttlMs: number): Promise<ProcessRecord | undefined>;
  /** Compare-and-set on the lease: writes `patch` only while `owner` holds the lease; else throws {@link LeaseLostError}. */
  update(processId: string, owner: string, patch: ProcessPatch, options?: UpdateOptions): Promise<ProcessRecord>;
  /**
   * Compare-and-set on the record's version, without a lease: moves `dueAt` of a record still at `version`, not done,
   * whose lease is absent or expired. Returns the stored record, or undefined (nothing written) when the record
   * changed since that version, is done or gone, or a replica holds its lease. The lease-free signature check claims
   * a check with it (src/provisioning/signature-check.ts): the record is not due again until the next check, so no
   * other replica checks at the same time, and a replica that dies mid-check loses nothing.
   */
  reschedule(processId: string, version: number, dueAt: number): Promise<ProcessRecord | undefined>;
  /** Extends the lease; false (nothing written) when `owner` no longer holds it. */
  renewLease(processId: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * Up to `limit` records not done, due at or before `now`, whose lease is absent or expired. The order (the
   * scheduler launches a page in it): **continuing work first** — records past `start`, whose Chrome process is
   * claimed or whose device was asked — then records still at `start`; within each group earliest `dueAt` first. So a
   * burst of new processes does not hold back the signature checks and uploads of the ones already started.
   * `options.reserveForStarts` keeps that many places of the page (at most `limit`) for records at `start` when that
   * many are due, ahead of continuing work: the scheduler's guaranteed share for new work ({@link FindDueOptions}).
   */
  findDue(now: number, limit: number, options?: FindDueOptions): Promise<ProcessRecord[]>;
  /** Earliest `dueAt` among records not done (the scheduler's next wake-up), if the store can tell cheaply. */
  nextDueAt?(): Promise<number | undefined>;
  /** Counts of records not done, by step (the pending-orders gauge). */
  countActive?(): Promise<Partial<Record<Step, number>>>;
  close(): Promise<void>;
}
