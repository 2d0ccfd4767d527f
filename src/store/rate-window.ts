/**
 * Exact sliding-window rate budgets over the grant times of one bucket, kept in ascending order (the memory store's
 * budget, and the sqlite store's in-memory view of its `rate_grants` rows). A window's count and its oldest grant
 * are found by binary search, so a token costs O(log n) however large the budget — the Chrome API budget holds
 * thousands of grants a minute.
 */
import type { RateWindow } from './types.ts';

/** Index of the first element of the ascending `sorted` that is greater than `value` (its length if none). */
function firstLaterThan(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) > value) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The longest of the windows: grants older than this no longer count anywhere. */
export function longestWindowMs(windows: readonly RateWindow[]): number {
  return Math.max(...windows.map((w) => w.windowMs));
}

/**
 * Decides one token at `now` against `times` (ascending, mutated): drops grants older than the longest window,
 * then returns 0 and records the grant when every window has room, else the ms until the oldest grant inside the
 * fullest window ages out (nothing recorded). A grant made on a clock that stepped back is inserted in order.
 */
export function takeFromWindows(times: number[], windows: readonly RateWindow[], now: number): number {
  const aged = firstLaterThan(times, now - longestWindowMs(windows));
  if (aged > 0) times.splice(0, aged);
  let wait = 0;
  for (const window of windows) {
    const inWindow = times.length - firstLaterThan(times, now - window.windowMs);
    if (inWindow >= window.limit) {
      // The oldest grant inside the window must age out before another fits.
      const oldest = times[times.length - window.limit] as number;
      wait = Math.max(wait, oldest + window.windowMs - now + 1);
    }
  }
  if (wait === 0) times.splice(firstLaterThan(times, now), 0, now);
  return wait;
}
