import {
  PROCESS_RECORD_SCHEMA_VERSION,
  type Lease,
  type NewProcess,
  type ProcessPatch,
  type ProcessRecord,
} from './types.ts';

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
    version: 1,
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
  const draft: { -readonly [K in keyof ProcessRecord]: ProcessRecord[K] } = {
    ...record,
    ...patch,
    lease,
    version: record.version + 1,
    updatedAt: now,
  };
  for (const key of Object.keys(draft) as (keyof ProcessRecord)[]) {
    if (draft[key] === undefined) delete draft[key];
  }
  if (draft.step === 'done' && record.step !== 'done') draft.expireAt = now + retentionMs;
  return Object.freeze(draft);
}
