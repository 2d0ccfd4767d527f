/**
 * The lease-free signature check: a further check of a device that has not signed yet costs one store write instead
 * of three (lease, wait, and its budget token stays). A check only reads (getOperation or get); nothing it does needs
 * the lease, which guards the unsafe calls (signData, an order, an upload, setFailure).
 *
 * 1. Claim the check by compare-and-set on the record's version, without a lease: move `dueAt` to the next check
 *    (ProcessStore.reschedule). Another replica that found the record due in the same scan loses the compare-and-set
 *    and sends nothing; the record is not due again until the next check, so nobody checks at the same time.
 * 2. Read the process. Still waiting: done — the claim already wrote what the step's wait would have written.
 * 3. Anything else (signed, refused, not asked, an error, the deadline reached): take the lease, and only if the record
 *    is still the one claimed (version + 1: nobody wrote in between) let `await_signature` act on what was read, under
 *    the lease as before. Someone else's write in between: drop it, theirs is the newer state.
 *
 * A replica that dies after the claim loses nothing: the record is due at the next check and anyone checks it then.
 * The first check after signData keeps the lease path (most devices have signed by then, and the lease would follow
 * the claim: one write more, not less).
 */
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProcessRef } from '../chrome/types.ts';
import type { ProcessRecord } from '../store/types.ts';
import type { EngineDependencies, ReadAhead } from './step.ts';
import { nextSignatureCheckMs, signDataSentAt, signedProcess } from './steps/await-signature.ts';

export type LeaseFreeCheck =
  /** Nothing more to do: still waiting (rescheduled), or the record was not this replica's to check. */
  | { readonly kind: 'handled' }
  /** The check found something to act on: take the lease, expect `version + 1`, and hand `readAhead` to the step. */
  | { readonly kind: 'act'; readonly version: number; readonly readAhead: ReadAhead };

/**
 * Whether a due record's next step is a further signature check this replica may make without the lease: at
 * `await_signature`, due, unleased, past its first check, before its deadline, with no deployment fault to clear.
 */
export function checksWithoutLease(record: ProcessRecord, deps: EngineDependencies, now: number): boolean {
  const { config } = deps;
  if (record.step !== 'await_signature' || record.dueAt > now) return false;
  if (record.lease !== undefined && record.lease.expiresAt > now) return false;
  if ((record.faultAttempts ?? 0) > 0) return false;
  if (record.signatureDeadline === undefined || now >= record.signatureDeadline) return false;
  const firstCheckAt = signDataSentAt(record, config, now) + config.scheduler.signaturePollInitialMs;
  return record.dueAt > firstCheckAt;
}

/** Claims and makes one check (see the module comment). `signal` is the run's; `log` names the process. */
export async function checkWithoutLease(
  record: ProcessRecord,
  deps: EngineDependencies,
  now: () => number,
  signal: AbortSignal,
  log: Logger,
): Promise<LeaseFreeCheck> {
  const { store, config, metrics, health } = deps;
  const claimedAt = now();
  let claimed: ProcessRecord | undefined;
  try {
    claimed = await store.reschedule(
      record.processId,
      record.version,
      claimedAt + nextSignatureCheckMs(record, config, claimedAt),
    );
  } catch (error) {
    // The record is untouched and still due: the scheduler finds it again.
    health.reportFault('store', describeError(error));
    log.warn({ error: describeError(error) }, 'cannot claim a signature check; will retry');
    return { kind: 'handled' };
  }
  if (claimed === undefined) return { kind: 'handled' }; // another replica has it, or it changed since the scan

  const ref: ProcessRef = { customer: record.customer, processId: record.processId };
  const started = performance.now();
  let readAhead: ReadAhead;
  try {
    readAhead = { read: await signedProcess({ deps, record, ref, ctx: { signal, log } }) };
  } catch (error) {
    if (signal.aborted) {
      // Shutdown: hand the check back (due when it was), as a leased step is handed back.
      await store.reschedule(record.processId, claimed.version, record.dueAt).catch(() => undefined);
      return { kind: 'handled' };
    }
    readAhead = { error };
  }
  if ('read' in readAhead && readAhead.read === 'waiting' && now() < (record.signatureDeadline ?? 0)) {
    health.clearFault('chrome');
    metrics.stepDuration.observe({ step: 'await_signature', outcome: 'wait' }, (performance.now() - started) / 1000);
    return { kind: 'handled' };
  }
  return { kind: 'act', version: claimed.version, readAhead };
}
