/**
 * The lease decisions every process store makes the same way (DESIGN.md §5): who may take a process's lease, who
 * holds it, and what lease a write leaves behind. The stores differ in how they read and write atomically (a Map, a
 * SQLite transaction, a Firestore compare-and-set); these rules are one.
 */
import { NEW_RECORD_VERSION } from './new-record.ts';
import type { Lease, ProcessRecord, UpdateOptions } from './types.ts';

/** Another owner holds an unexpired lease: `owner` may not take it (its own lease it may always take again). */
export function leasedByOther(lease: Lease | undefined, owner: string, now: number): boolean {
  return lease !== undefined && lease.owner !== owner && lease.expiresAt > now;
}

/** `owner` holds the lease and it has not expired: it may write under it, or renew it. */
export function holdsLease(lease: Lease | undefined, owner: string, now: number): lease is Lease {
  return lease !== undefined && lease.owner === owner && lease.expiresAt > now;
}

/** The lease after an update by its holder: none when released, renewed for `renewLeaseMs`, else unchanged. */
export function leaseAfterUpdate(held: Lease, options: UpdateOptions, now: number): Lease | undefined {
  if (options.release === true) return undefined;
  return options.renewLeaseMs === undefined ? held : { owner: held.owner, expiresAt: now + options.renewLeaseMs };
}

/**
 * Whether ProcessStore.reschedule may move this record: still at `version`, not done, and nobody (this replica
 * included) holds an unexpired lease on it.
 */
export function mayReschedule(
  record: ProcessRecord | undefined,
  version: number,
  now: number,
): record is ProcessRecord {
  if (record?.version !== version || record.step === 'done') return false;
  return record.lease === undefined || record.lease.expiresAt <= now;
}

/**
 * Whether `record`, as tryLease returned it, is under the first lease any replica ever took on it: every store
 * creates a record at {@link NEW_RECORD_VERSION} and adds one per write, so a record one write past its creation has
 * had no write but this lease. No other replica has then ever held it, so none can be acting on the process after
 * losing its lease (the one actor a lease cannot stop: DESIGN.md §5, docs/failure-model.md "Residual risk").
 */
export function underFirstLease(record: ProcessRecord): boolean {
  return record.version === NEW_RECORD_VERSION + 1;
}
