/**
 * The memory store's index of records by when they can be worked on, so that a scheduler scan costs
 * O(k log n) for the k records it returns instead of a pass over every waiting process.
 *
 * Binary min-heaps of immutable record snapshots:
 * - `later`: ordered by the moment a record becomes workable, `max(dueAt, lease expiry)`;
 * - `ready`: records that were workable at an earlier scan, ordered by `dueAt`, one heap per group of findDue's
 *   order (continuing work, then records at `start`: src/store/types.ts).
 *
 * The store replaces a record on every write and {@link DueIndex.add}s the new one; an entry whose record is no longer
 * the stored one is stale and dropped when it reaches the top of its heap (lazy deletion). Stale entries are bounded:
 * when the heaps hold far more entries than there are records, they are rebuilt from the records.
 */
import { duePage } from './due-page.ts';
import { isContinuing, type FindDueOptions, type ProcessRecord } from './types.ts';

interface Entry {
  readonly record: ProcessRecord;
  /** When the record can be worked on: its dueAt, or its lease's expiry if later. */
  readonly at: number;
}

/** The moment `record` can be taken: its due time, or the end of its lease if that is later. */
export function workableAt(record: ProcessRecord): number {
  const leaseEnd = record.lease?.expiresAt ?? 0;
  return record.dueAt > leaseEnd ? record.dueAt : leaseEnd;
}

class MinHeap<T> {
  readonly items: T[] = [];
  private readonly before: (a: T, b: T) => boolean;

  constructor(before: (a: T, b: T) => boolean) {
    this.before = before;
  }

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      const p = items[parent] as T;
      if (!this.before(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(items[right] as T, items[left] as T) ? right : left;
      const c = items[child] as T;
      if (!this.before(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}

export class DueIndex {
  private readonly later = new MinHeap<Entry>((a, b) => a.at < b.at);
  private readonly ready = {
    continuing: new MinHeap<Entry>((a, b) => a.record.dueAt < b.record.dueAt),
    starts: new MinHeap<Entry>((a, b) => a.record.dueAt < b.record.dueAt),
  };
  /** Whether an entry still describes the stored record (the store's current snapshot of that process). */
  private readonly isCurrent: (record: ProcessRecord) => boolean;

  constructor(isCurrent: (record: ProcessRecord) => boolean) {
    this.isCurrent = isCurrent;
  }

  /** Entries held, stale ones included. */
  get size(): number {
    return this.later.size + this.ready.continuing.size + this.ready.starts.size;
  }

  /** Indexes the stored snapshot of an active (not done) record. */
  add(record: ProcessRecord): void {
    this.later.push({ record, at: workableAt(record) });
  }

  /** Drops every entry and indexes `records` afresh (the stale entries go). */
  rebuild(records: Iterable<ProcessRecord>): void {
    this.later.clear();
    this.ready.continuing.clear();
    this.ready.starts.clear();
    for (const record of records) this.add(record);
  }

  /** Up to `limit` current records workable at `now`, in findDue's order (src/store/types.ts). */
  due(now: number, limit: number, options: FindDueOptions = {}): ProcessRecord[] {
    this.promote(now);
    const continuing = this.take(this.ready.continuing, now, limit);
    const starts = this.take(this.ready.starts, now, limit);
    return duePage(continuing, starts, limit, options.reserveForStarts);
  }

  /**
   * When the next record becomes workable: exact when none is workable yet; otherwise a moment at or before the
   * earliest `dueAt` of the workable ones (already past, so the scheduler scans at once).
   */
  nextAt(): number | undefined {
    let next: number | undefined;
    for (const heap of [this.ready.continuing, this.ready.starts, this.later]) {
      const at = this.top(heap)?.at;
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    return next;
  }

  /** Up to `limit` current records of a `ready` heap workable at `now`, earliest `dueAt` first; all stay indexed. */
  private take(heap: MinHeap<Entry>, now: number, limit: number): ProcessRecord[] {
    const found: Entry[] = [];
    const notYet: Entry[] = [];
    while (found.length < limit) {
      const entry = heap.pop();
      if (entry === undefined) break;
      if (!this.isCurrent(entry.record)) continue;
      // Workable at an earlier scan but not at `now`: the wall clock stepped back.
      if (entry.at > now) notYet.push(entry);
      else found.push(entry);
    }
    // What is returned stays indexed until its process is leased (the lease write replaces the record).
    for (const entry of found) heap.push(entry);
    for (const entry of notYet) this.later.push(entry);
    return found.map((e) => e.record);
  }

  /** Moves the entries workable at `now` from `later` to `ready`, dropping stale ones on the way. */
  private promote(now: number): void {
    for (;;) {
      const entry = this.later.peek();
      if (entry === undefined || entry.at > now) return;
      this.later.pop();
      if (!this.isCurrent(entry.record)) continue;
      if (isContinuing(entry.record.step)) this.ready.continuing.push(entry);
      else this.ready.starts.push(entry);
    }
  }

  /** The heap's first current entry (stale ones above it are dropped). */
  private top(heap: MinHeap<Entry>): Entry | undefined {
    for (;;) {
      const entry = heap.peek();
      if (entry === undefined || this.isCurrent(entry.record)) return entry;
      heap.pop();
    }
  }
}
