import { PROCESS_RECORD_SCHEMA_VERSION, type NewProcess, type ProcessRecord } from './types.ts';

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
