/**
 * In-memory process state for one replica: the demo, tests, and single-replica trials. Nothing survives a crash,
 * so with this store a Pub/Sub message is acknowledged only when its process has finished (DESIGN.md §5) and a
 * redelivery resumes from the Chrome process resource. `run` prints a warning when it is used.
 *
 * Records are frozen and replaced on every write, so a caller can never mutate stored state by accident.
 */
import type { PendingRef } from '../ca/types.ts';
import { DueIndex } from './due-index.ts';
import { holdsLease, leaseAfterUpdate, leasedByOther, mayReschedule } from './lease.ts';
import { takeFromWindows } from './rate-window.ts';
import { newProcessRecord, nextRecord } from './new-record.ts';
import {
  compareByExpiry,
  holderKeyOf,
  matchesQuery,
  revokedRecord,
  supersede,
  type CertificateQuery,
  type CertificateRecord,
  type NewCertificate,
  type RecordCertificateResult,
  type StoredCrl,
  type Revocation,
} from './inventory.ts';
import {
  LeaseLostError,
  type FindDueOptions,
  type NewProcess,
  type ProcessPatch,
  type ProcessRecord,
  type ProcessStore,
  type RateWindow,
  type Step,
  type UpdateOptions,
} from './types.ts';

export interface MemoryStoreOptions {
  /** Wall clock (epoch ms); injectable for tests. */
  now?: () => number;
  /** How long finished records are kept (duplicate deliveries after the end are recognised). Default 1h. */
  finishedRetentionMs?: number;
}

interface NamedLease {
  owner: string;
  expiresAt: number;
}

export class MemoryProcessStore implements ProcessStore {
  readonly kind = 'memory' as const;
  readonly durable = false;
  /** A scan is a heap look-up in this process: see ProcessStore.scanSpacingMs. */
  readonly scanSpacingMs = 5;

  private readonly records = new Map<string, ProcessRecord>();
  /** Ids of records not done. */
  private readonly active = new Set<string>();
  /** The records not done, by when they can be worked on: a scheduler scan does not visit every waiting process. */
  private readonly dueIndex = new DueIndex((record) => this.records.get(record.processId) === record);
  private readonly lookup = new Map<string, string>();
  private readonly namedLeases = new Map<string, NamedLease>();
  private readonly buckets = new Map<string, number[]>();
  /** The inventory, by `connection \u0000 serial`; never expired (a certificate outlives its process record). */
  private readonly certificates = new Map<string, CertificateRecord>();
  /** Keys of `certificates` by holder key and profile (what a new certificate may supersede). */
  private readonly certificatesByHolder = new Map<string, string[]>();
  private readonly crls = new Map<string, StoredCrl>();
  /** revocationCount per connection. */
  private readonly revocations = new Map<string, number>();
  private readonly now: () => number;
  private readonly finishedRetentionMs: number;
  private lastExpiry = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.finishedRetentionMs = options.finishedRetentionMs ?? 3_600_000;
  }

  create(init: NewProcess): Promise<{ created: boolean; record: ProcessRecord }> {
    this.expireFinished();
    const existing = this.records.get(init.processId);
    if (existing !== undefined) return Promise.resolve({ created: false, record: existing });
    const now = this.now();
    const record: ProcessRecord = Object.freeze(newProcessRecord(init, now));
    this.records.set(init.processId, record);
    this.active.add(init.processId);
    this.dueIndex.add(record);
    return Promise.resolve({ created: true, record });
  }

  get(processId: string): Promise<ProcessRecord | undefined> {
    return Promise.resolve(this.records.get(processId));
  }

  findByCorrelationId(correlationId: string): Promise<ProcessRecord | undefined> {
    for (const record of this.records.values()) {
      if (record.correlationId === correlationId) return Promise.resolve(record);
    }
    return Promise.resolve(undefined);
  }

  recordCertificate(certificate: NewCertificate): Promise<RecordCertificateResult> {
    const key = certificateKey(certificate.caConnection, certificate.serial);
    const existing = this.certificates.get(key);
    if (existing !== undefined) return Promise.resolve({ created: false, record: existing, superseded: [] });
    // Only the holder's certificates of this profile can be superseded: look at those, not the whole inventory.
    const holderKey = `${holderKeyOf(certificate.holder)}\u0000${certificate.profile}`;
    const ofHolder = this.certificatesByHolder.get(holderKey) ?? [];
    const { record, superseded } = supersede(
      certificate,
      ofHolder.flatMap((k) => this.certificates.get(k) ?? []),
    );
    for (const older of superseded) this.certificates.set(certificateKey(older.caConnection, older.serial), older);
    this.certificates.set(key, record);
    ofHolder.push(key);
    this.certificatesByHolder.set(holderKey, ofHolder);
    return Promise.resolve({ created: true, record, superseded });
  }

  getCertificate(caConnection: string, serial: string): Promise<CertificateRecord | undefined> {
    return Promise.resolve(this.certificates.get(certificateKey(caConnection, serial)));
  }

  findCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    const found = [...this.certificates.values()].filter((r) => matchesQuery(r, query)).sort(compareByExpiry);
    return Promise.resolve(query.limit === undefined ? found : found.slice(0, query.limit));
  }

  countCertificates(query: CertificateQuery): Promise<number> {
    const { limit: _limit, ...all } = query;
    return this.findCertificates(all).then((found) => found.length);
  }

  setRevocation(caConnection: string, serial: string, revocation: Revocation): Promise<CertificateRecord | undefined> {
    const key = certificateKey(caConnection, serial);
    const current = this.certificates.get(key);
    if (current === undefined) return Promise.resolve(undefined);
    const record = revokedRecord(current, revocation);
    if (record === undefined) return Promise.resolve(current);
    this.certificates.set(key, record);
    if (record.status === 'revoked') this.revocations.set(caConnection, (this.revocations.get(caConnection) ?? 0) + 1);
    return Promise.resolve(record);
  }

  revocationCount(caConnection: string): Promise<number> {
    return Promise.resolve(this.revocations.get(caConnection) ?? 0);
  }

  getCrl(caConnection: string): Promise<StoredCrl | undefined> {
    return Promise.resolve(this.crls.get(caConnection));
  }

  putCrl(crl: StoredCrl): Promise<boolean> {
    const current = this.crls.get(crl.caConnection);
    if (current !== undefined && current.crlNumber >= crl.crlNumber) return Promise.resolve(false);
    this.crls.set(crl.caConnection, Object.freeze({ ...crl, der: Uint8Array.from(crl.der) }));
    return Promise.resolve(true);
  }

  tryLease(processId: string, owner: string, ttlMs: number): Promise<ProcessRecord | undefined> {
    const record = this.records.get(processId);
    const now = this.now();
    if (record === undefined || record.step === 'done' || leasedByOther(record.lease, owner, now)) {
      return Promise.resolve(undefined);
    }
    return Promise.resolve(this.write(record, {}, { owner, expiresAt: now + ttlMs }));
  }

  update(processId: string, owner: string, patch: ProcessPatch, options: UpdateOptions = {}): Promise<ProcessRecord> {
    const record = this.records.get(processId);
    const now = this.now();
    if (record === undefined || !holdsLease(record.lease, owner, now)) {
      return Promise.reject(new LeaseLostError(processId, owner));
    }
    return Promise.resolve(this.write(record, patch, leaseAfterUpdate(record.lease, options, now)));
  }

  reschedule(processId: string, version: number, dueAt: number): Promise<ProcessRecord | undefined> {
    const record = this.records.get(processId);
    if (!mayReschedule(record, version, this.now())) return Promise.resolve(undefined);
    return Promise.resolve(this.write(record, { dueAt }, record.lease));
  }

  renewLease(processId: string, owner: string, ttlMs: number): Promise<boolean> {
    const record = this.records.get(processId);
    const now = this.now();
    if (record === undefined || !holdsLease(record.lease, owner, now)) return Promise.resolve(false);
    this.write(record, {}, { owner, expiresAt: now + ttlMs });
    return Promise.resolve(true);
  }

  findDue(now: number, limit: number, options?: FindDueOptions): Promise<ProcessRecord[]> {
    return Promise.resolve(limit > 0 ? this.dueIndex.due(now, limit, options) : []);
  }

  nextDueAt(): Promise<number | undefined> {
    return Promise.resolve(this.dueIndex.nextAt());
  }

  countActive(): Promise<Partial<Record<Step, number>>> {
    const counts: Partial<Record<Step, number>> = {};
    for (const id of this.active) {
      const step = this.records.get(id)?.step;
      if (step !== undefined) counts[step] = (counts[step] ?? 0) + 1;
    }
    return Promise.resolve(counts);
  }

  tryNamedLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const current = this.namedLeases.get(name);
    if (leasedByOther(current, owner, now)) return Promise.resolve(false);
    this.namedLeases.set(name, { owner, expiresAt: now + ttlMs });
    return Promise.resolve(true);
  }

  releaseNamedLease(name: string, owner: string): Promise<void> {
    if (this.namedLeases.get(name)?.owner === owner) this.namedLeases.delete(name);
    return Promise.resolve();
  }

  takeToken(bucket: string, windows: readonly RateWindow[]): Promise<number> {
    let times = this.buckets.get(bucket);
    if (times === undefined) {
      times = [];
      this.buckets.set(bucket, times);
    }
    return Promise.resolve(takeFromWindows(times, windows, this.now()));
  }

  wakeByLookupKey(lookupKey: string, hint?: PendingRef): Promise<boolean> {
    const id = this.lookup.get(lookupKey);
    const record = id === undefined ? undefined : this.records.get(id);
    if (record === undefined || record.step === 'done') return Promise.resolve(false);
    const now = this.now();
    this.write(
      record,
      {
        dueAt: Math.min(record.dueAt, now),
        pendingRef: hint === undefined ? record.pendingRef : { ...record.pendingRef, ...hint },
      },
      record.lease,
    );
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private write(record: ProcessRecord, patch: ProcessPatch, lease: ProcessRecord['lease']): ProcessRecord {
    const next = nextRecord(record, patch, lease, this.now(), this.finishedRetentionMs);
    this.records.set(record.processId, next);
    if (record.lookupKey !== undefined && record.lookupKey !== next.lookupKey) this.lookup.delete(record.lookupKey);
    if (next.lookupKey !== undefined && next.step !== 'done') this.lookup.set(next.lookupKey, next.processId);
    if (next.step === 'done') {
      this.active.delete(next.processId);
      if (next.lookupKey !== undefined) this.lookup.delete(next.lookupKey);
    } else {
      this.dueIndex.add(next);
    }
    // Every write leaves the record's previous index entry stale; drop them all once they far outnumber the records.
    if (this.dueIndex.size > 4 * this.active.size + 1_024) {
      this.dueIndex.rebuild([...this.active].flatMap((id) => this.records.get(id) ?? []));
    }
    return next;
  }

  private expireFinished(): void {
    const now = this.now();
    // A full scan, so at most once a minute.
    if (now - this.lastExpiry < 60_000) return;
    this.lastExpiry = now;
    for (const [id, record] of this.records) {
      if (record.expireAt !== undefined && record.expireAt <= now) this.records.delete(id);
    }
  }
}

function certificateKey(caConnection: string, serial: string): string {
  return `${caConnection}\u0000${serial}`;
}
