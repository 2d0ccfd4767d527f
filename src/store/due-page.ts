/**
 * findDue's page from its two groups (the order is the ProcessStore contract's, src/store/types.ts): continuing work
 * first, records at `start` after, but `reserveForStarts` places kept for starts when they are due.
 */
import type { ProcessRecord } from './types.ts';

/** Earliest `dueAt` first. */
export function byDueAt(a: ProcessRecord, b: ProcessRecord): number {
  return a.dueAt - b.dueAt;
}

/**
 * The page of at most `limit` records from the due continuing records and the due starts, each already in the
 * order it is taken (earliest due first) and each holding at least as many as the page could take from it.
 */
export function duePage(
  continuing: readonly ProcessRecord[],
  starts: readonly ProcessRecord[],
  limit: number,
  reserveForStarts = 0,
): ProcessRecord[] {
  const reserved = Math.max(0, Math.min(reserveForStarts, starts.length, limit));
  const first = continuing.slice(0, Math.max(0, limit - reserved));
  return [...first, ...starts.slice(0, limit - first.length)];
}
