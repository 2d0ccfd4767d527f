/**
 * Units of time in milliseconds, defined once. Durations in configuration are parsed by src/config/duration.ts;
 * code that needs a day or an hour names it here rather than writing 86_400_000 again.
 */

export const SECOND_MS = 1_000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
