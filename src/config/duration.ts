/**
 * Durations in configuration are strings with units (`500ms`, `30s`, `15m`, `2h`, `365d`, `1h30m`): a bare number
 * is ambiguous (seconds? milliseconds?) and is rejected with a hint.
 */
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS } from '../time.ts';

const UNIT_MS = { ms: 1, s: SECOND_MS, m: MINUTE_MS, h: HOUR_MS, d: DAY_MS } as const;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/** Parses a duration string into milliseconds; returns undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let match = PART.exec(trimmed); match !== null; match = PART.exec(trimmed)) {
    const [whole, amount, unit] = match;
    total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
    consumed += whole.length;
  }
  if (consumed !== trimmed.length) return undefined;
  return Math.round(total);
}

/** Formats milliseconds the way configuration writes them (for messages and `check-config`). */
export function formatDuration(ms: number): string {
  if (ms % UNIT_MS.d === 0 && ms >= UNIT_MS.d) return `${ms / UNIT_MS.d}d`;
  if (ms % UNIT_MS.h === 0 && ms >= UNIT_MS.h) return `${ms / UNIT_MS.h}h`;
  if (ms % UNIT_MS.m === 0 && ms >= UNIT_MS.m) return `${ms / UNIT_MS.m}m`;
  if (ms % UNIT_MS.s === 0 && ms >= UNIT_MS.s) return `${ms / UNIT_MS.s}s`;
  return `${ms}ms`;
}
