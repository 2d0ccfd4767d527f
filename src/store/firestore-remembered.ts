/**
 * What the Firestore store remembers of the process records it read, scanned or wrote: the record and the update
 * time of its document, so that the next compare-and-set of that record needs no read (the update time is the
 * write's precondition). A snapshot is worth keeping only while this replica is about to write the record again:
 *
 * - leased (an unexpired lease): the holder writes it again within the step — renewals, patches, the release;
 * - due (and not leased): just scanned, about to be leased or claimed;
 * - any other — released to wait, a further signature check claimed by `reschedule`, a record read or woken — only
 *   among the `recent` latest such: the write that may follow right away (the lease a claimed check takes when it
 *   finds the device signed, within one Chrome request) still finds it; older ones are dropped, because the due scan
 *   that finds the record next brings a fresh snapshot. So a process waiting for its device or its CA costs this
 *   replica no memory, however many wait.
 *
 * Finished records are forgotten. A remembered snapshot may be stale (another replica wrote since): the write's
 * precondition then fails and the store reads again — a remembered snapshot costs at most a failed write, never a
 * wrong one.
 */
import type { ProcessRecord } from './types.ts';

export interface RememberedSnapshot<T> {
  readonly record: ProcessRecord;
  readonly updateTime: T;
}

export interface RememberedLimits {
  /** Leased and due records kept; at this size the map starts over (which only costs reads). */
  readonly active: number;
  /** Other records kept, the latest first: about the checks in flight (scheduler.maxConcurrent is at most 1,000). */
  readonly recent: number;
}

export const REMEMBERED_LIMITS: RememberedLimits = { active: 10_000, recent: 1_024 };

export class RememberedRecords<T> {
  private readonly active = new Map<string, RememberedSnapshot<T>>();
  /** Insertion order is age: the first entry is the oldest (re-remembering moves an entry to the end). */
  private readonly recent = new Map<string, RememberedSnapshot<T>>();

  private readonly limits: RememberedLimits;

  constructor(limits: RememberedLimits = REMEMBERED_LIMITS) {
    this.limits = limits;
  }

  /** Records remembered now (both kinds). */
  get size(): number {
    return this.active.size + this.recent.size;
  }

  get(processId: string): RememberedSnapshot<T> | undefined {
    return this.active.get(processId) ?? this.recent.get(processId);
  }

  /** Remembers `record` as stored at `updateTime`, judged leased or due at `now` (epoch ms). */
  remember(record: ProcessRecord, updateTime: T, now: number): void {
    const { processId } = record;
    this.forget(processId);
    if (record.step === 'done') return;
    const entry = { record, updateTime };
    const leased = record.lease !== undefined && record.lease.expiresAt > now;
    if (leased || record.dueAt <= now) {
      if (this.active.size >= this.limits.active) this.active.clear();
      this.active.set(processId, entry);
      return;
    }
    if (this.recent.size >= this.limits.recent) {
      const oldest = this.recent.keys().next();
      if (oldest.done !== true) this.recent.delete(oldest.value);
    }
    this.recent.set(processId, entry);
  }

  forget(processId: string): void {
    this.active.delete(processId);
    this.recent.delete(processId);
  }

  clear(): void {
    this.active.clear();
    this.recent.clear();
  }
}
