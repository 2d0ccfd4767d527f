/**
 * How a {@link ProcessRecord} is laid out in a Firestore document, and back. Kept apart from the store so the layout
 * (what the indexes, the TTL policy and rolling upgrades depend on) is in one place.
 *
 * Layout of `<collection>/<document id>` (docs/several-replicas.md):
 * - every ProcessRecord field under its own name; epoch milliseconds stay integers;
 * - `rendered` as a JSON string: a DistinguishedName is an array of arrays, which Firestore cannot store;
 * - `expireAt` as a Firestore Timestamp, because a TTL policy only acts on Timestamp fields;
 * - two query fields the record does not have: `active` (not done) and `availableAt` = max(dueAt, lease expiry),
 *   the moment any replica may pick the record up. The due-query is then one equality and one range filter,
 *   `active == true && availableAt <= now ORDER BY availableAt`, served by one composite index, and it never reads
 *   finished records;
 * - `schemaMajor`: the layout's major version. Readers accept every `schemaVersion` of their own major (older
 *   records lack newer fields, newer ones carry fields this reader ignores — and preserves, because writes patch
 *   fields instead of replacing documents) and refuse another major.
 */
import { FieldValue, Timestamp, type DocumentData } from '@google-cloud/firestore';
import { createHash } from 'node:crypto';
import { DeploymentFaultError } from '../errors.ts';
import type { PendingRef } from '../ca/types.ts';
import type { RenderedProfile } from '../pki/types.ts';
import { newProcessRecord } from './new-record.ts';
import {
  ACTIVE_STEPS,
  PROCESS_RECORD_SCHEMA_VERSION,
  type Lease,
  type NewProcess,
  type PendingFailure,
  type ProcessPatch,
  type ProcessRecord,
  type Step,
} from './types.ts';

/** Incompatible layout changes bump this; a reader refuses documents of another major. */
export const DOCUMENT_SCHEMA_MAJOR = 1;

/** The steps this version can work on; a record at another step belongs to a newer replica. */
export const KNOWN_STEPS: ReadonlySet<Step> = new Set<Step>([...ACTIVE_STEPS, 'done']);

/** Firestore field names the queries use; the index definitions in docs/several-replicas.md name the same fields. */
export const FIELDS = {
  active: 'active',
  availableAt: 'availableAt',
  step: 'step',
  lookupKey: 'lookupKey',
  expireAt: 'expireAt',
} as const;

/** A document id for a process id: the id itself when Firestore allows it, else a stable hash-based id. */
export function documentIdFor(processId: string): string {
  // Document ids may not contain '/', be '.' or '..', match __.*__, or exceed 1,500 bytes. Chrome's process ids are
  // plain tokens, so the fallback exists only to never fail on an odd id.
  if (/^[A-Za-z0-9_\-.]{1,400}$/.test(processId) && !/^\.\.?$/.test(processId) && !/^__.*__$/.test(processId)) {
    return processId;
  }
  return `h_${createHash('sha256').update(processId).digest('hex')}`;
}

/** A document id for a named lease or a rate bucket in the coordination collection. */
export function coordinationDocumentId(kind: 'lease' | 'budget', name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_\-.]/g, '_').slice(0, 200);
  return `${kind}_${safe}_${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

function availableAt(dueAt: number, lease: Lease | undefined): number {
  return Math.max(dueAt, lease?.expiresAt ?? 0);
}

/** The document for a new record (create-if-absent). */
export function newDocument(init: NewProcess, now: number): DocumentData {
  return {
    schemaMajor: DOCUMENT_SCHEMA_MAJOR,
    ...newProcessRecord(init, now),
    [FIELDS.active]: true,
    [FIELDS.availableAt]: init.dueAt,
  };
}

export interface RecordChange {
  readonly patch?: ProcessPatch;
  /** The lease after the write; undefined removes it. */
  readonly lease: Lease | undefined;
  /** Epoch ms for `expireAt` when the record becomes done. */
  readonly expireAt?: number;
}

/**
 * The field updates for one write: the patch (a field set to undefined is deleted), the lease, the store's own
 * fields (version, updatedAt) and the query fields. Returns the resulting record too, as the next read would see
 * it (fields this version does not know are untouched in the document and absent from the record).
 */
export function changeDocument(
  current: ProcessRecord,
  change: RecordChange,
  now: number,
): { update: DocumentData; record: ProcessRecord } {
  const patch = change.patch ?? {};
  const draft: { -readonly [K in keyof ProcessRecord]: ProcessRecord[K] } = {
    ...current,
    ...patch,
    version: current.version + 1,
    updatedAt: now,
  };
  const update: DocumentData = {};
  for (const [key, value] of Object.entries(patch) as [keyof ProcessPatch, unknown][]) {
    if (key === 'expireAt') continue; // the store's to set
    if (value === undefined) {
      update[key] = FieldValue.delete();
      delete draft[key];
    } else {
      update[key] = key === 'rendered' ? JSON.stringify(value) : value;
    }
  }
  if (change.lease === undefined) {
    delete draft.lease;
    update.lease = FieldValue.delete();
  } else {
    draft.lease = change.lease;
    update.lease = { owner: change.lease.owner, expiresAt: change.lease.expiresAt };
  }
  if (draft.step === 'done' && current.step !== 'done' && change.expireAt !== undefined) {
    draft.expireAt = change.expireAt;
    update[FIELDS.expireAt] = Timestamp.fromMillis(change.expireAt);
  }
  update.version = draft.version;
  update.updatedAt = now;
  update[FIELDS.active] = draft.step !== 'done';
  update[FIELDS.availableAt] = availableAt(draft.dueAt, draft.lease);
  return { update, record: Object.freeze(draft) };
}

function num(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Timestamp) return value.toMillis();
  return undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function map(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Timestamp)
    ? (value as Record<string, unknown>)
    : undefined;
}

function pendingRef(value: unknown): PendingRef | undefined {
  const m = map(value);
  if (m === undefined) return undefined;
  const ref: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') ref[k] = v;
  }
  return ref;
}

function rendered(value: unknown): RenderedProfile | undefined {
  if (typeof value === 'string') return JSON.parse(value) as RenderedProfile;
  // Tolerated: a writer that stored the profile as a map (no nested arrays).
  return map(value) as RenderedProfile | undefined;
}

/** Thrown for a document this version must not interpret (another layout major). */
export class IncompatibleRecordError extends DeploymentFaultError {}

/**
 * Reads a document into a record, tolerant of older and newer versions of the same major: missing counters read
 * as 0, unknown fields are ignored here (and preserved in the document), a field of the wrong type reads as absent.
 * Returns undefined for a document that is not a process record at all.
 */
export function parseDocument(data: DocumentData | undefined): ProcessRecord | undefined {
  if (data === undefined) return undefined;
  const major = num(data.schemaMajor) ?? DOCUMENT_SCHEMA_MAJOR;
  if (major !== DOCUMENT_SCHEMA_MAJOR) {
    throw new IncompatibleRecordError(
      `process record ${String(data.processId)} has layout major ${major}; this adapter reads ${DOCUMENT_SCHEMA_MAJOR}`,
      {
        component: 'store',
        hint: 'an adapter version with another record layout wrote this collection: finish or roll back the upgrade, or use another store.collection',
      },
    );
  }
  const processId = str(data.processId);
  const customer = str(data.customer);
  const step = str(data.step) as Step | undefined;
  if (processId === undefined || customer === undefined || step === undefined) return undefined;
  const leaseMap = map(data.lease);
  const leaseOwner = str(leaseMap?.owner);
  const leaseExpires = num(leaseMap?.expiresAt);
  const failureMap = map(data.failure);
  const failure: PendingFailure | undefined =
    failureMap !== undefined && typeof failureMap.reason === 'string' && typeof failureMap.userMessage === 'string'
      ? (failureMap as unknown as PendingFailure)
      : undefined;
  const optional = {
    outcome: str(data.outcome) as ProcessRecord['outcome'],
    reason: str(data.reason) as ProcessRecord['reason'],
    caConnection: str(data.caConnection),
    profile: str(data.profile),
    spki: str(data.spki),
    rendered: rendered(data.rendered),
    claimedAt: num(data.claimedAt),
    signDataAt: num(data.signDataAt),
    holder: map(data.holder) as ProcessRecord['holder'],
    signDataOperation: str(data.signDataOperation),
    signatureDeadline: num(data.signatureDeadline),
    csr: str(data.csr),
    pendingRef: pendingRef(data.pendingRef),
    lookupKey: str(data.lookupKey),
    caDeadline: num(data.caDeadline),
    certificatePem: str(data.certificatePem),
    failure,
    lastError: str(data.lastError),
    faultAttempts: num(data.faultAttempts),
    lease:
      leaseOwner !== undefined && leaseExpires !== undefined
        ? { owner: leaseOwner, expiresAt: leaseExpires }
        : undefined,
    expireAt: num(data[FIELDS.expireAt]),
  };
  const record: Record<string, unknown> = {
    schemaVersion: num(data.schemaVersion) ?? PROCESS_RECORD_SCHEMA_VERSION,
    processId,
    customer,
    correlationId: str(data.correlationId) ?? '',
    step,
    issueAttempts: num(data.issueAttempts) ?? 0,
    issueResults: num(data.issueResults) ?? 0,
    attempts: num(data.attempts) ?? 0,
    dueAt: num(data.dueAt) ?? 0,
    version: num(data.version) ?? 0,
    createdAt: num(data.createdAt) ?? 0,
    updatedAt: num(data.updatedAt) ?? 0,
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) record[key] = value;
  return Object.freeze(record as unknown as ProcessRecord);
}
