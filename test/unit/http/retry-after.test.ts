import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../../src/http/retry-after.ts';

const NOW = Date.parse('2025-03-01T12:00:00Z');

describe('parseRetryAfter', () => {
  it.each([
    ['delay in seconds', '1', 1000],
    ['zero seconds', '0', 0],
    ['seconds with surrounding spaces', ' 120 ', 120_000],
    ['IMF-fixdate in the future', 'Sat, 01 Mar 2025 12:00:30 GMT', 30_000],
    ['obsolete RFC 850 date', 'Saturday, 01-Mar-25 12:01:00 GMT', 60_000],
    ['asctime date (GMT without saying so)', 'Sat Mar  1 12:00:10 2025', 10_000],
    ['date in the past gives no wait', 'Sat, 01 Mar 2025 11:00:00 GMT', 0],
  ])('reads %s', (_name, header, expected) => {
    expect(parseRetryAfter(header, NOW)).toBe(expected);
  });

  it.each([
    ['absent', null],
    ['empty', ''],
    ['negative seconds', '-5'],
    ['fractional seconds', '1.5'],
    ['garbage', 'soon'],
    ['a date without a day name', 'May 5'],
  ])('ignores a header that is %s', (_name, header) => {
    expect(parseRetryAfter(header, NOW)).toBeUndefined();
  });
});
