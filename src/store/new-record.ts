import {
  PROCESS_RECORD_SCHEMA_VERSION,
  type Lease,
  type NewProcess,
  type ProcessPatch,
  type ProcessRecord,
} from './types.ts';

/** The version of a record just created; every write after that adds one (the compare-and-set token). */
export const NEW_RECORD_VERSION = 1;

/** The record a store creates for a process it has not seen: step `start`, due at `init.dueAt`, no lease. */
export function newProcessRecord(init: NewProcess, now: number): ProcessRecord {
  return {
    schemaVersion: PROCESS_RECORD_SCHEMA_VERSION,
    processId: init.processId,
    customer: init.customer,
    correlationId: init.correlationId,
    step: 'start',
    issueAttempts: 0,
    issueResults: 0,
    attempts: 0,
    dueAt: init.dueAt,
    version: NEW_RECORD_VERSION,
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * The record after one write (memory and sqlite stores): `patch` over `record`, the given lease, the store's own
 * fields (version, updatedAt), fields patched to undefined removed, and `expireAt` = now + `retentionMs` when the
 * record becomes done. Frozen.
 */
export function nextRecord(
  record: ProcessRecord,
  patch: ProcessPatch,
  lease: Lease | undefined,
  now: number,
  retentionMs: number,
): ProcessRecord {
  const merged: Record<string, unknown> = { ...record, ...patch, lease, version: record.version + 1, updatedAt: now };
  // Fields patched to undefined are left out of a new object rather than `delete`d: a delete (like adding many
  // properties one by one) turns the object into a dictionary, about 1.6 KiB of property table instead of a few
  // hundred bytes — and every waiting process keeps its record. Object.fromEntries builds a fast object.
  const hasUndefined = Object.values(merged).includes(undefined);
  const draft = hasUndefined ? Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) : merged;
  if (draft.step === 'done' && record.step !== 'done') {
    return Object.freeze({ ...draft, expireAt: now + retentionMs } as unknown as ProcessRecord);
  }
  return Object.freeze(draft as unknown as ProcessRecord);
}
