import { describe, expect, it } from 'vitest';
import { BACKOFF_JITTER, backoffDelay, signaturePollDelay } from '../../src/backoff.ts';

const policy = { initialMs: 1_000, maxMs: 16_000 };
const low = (): number => 0;
const middle = (): number => 0.5;
const high = (): number => 0.999_999;

describe('the one backoff rule (engine, HTTP client, Key Vault, DigiCert)', () => {
  it.each([
    ['the first retry waits the initial delay', 1, 1_000],
    ['each retry doubles the delay', 3, 4_000],
    ['the schedule stops at the maximum', 9, 16_000],
    ['a retry number below 1 is treated as the first', 0, 1_000],
  ])('%s', (_name, retry, scheduled) => {
    expect(backoffDelay(policy, retry, undefined, middle)).toBe(scheduled);
  });

  it('draws each delay within ±20 % of the schedule, so replicas that failed together spread out', () => {
    expect(BACKOFF_JITTER).toBe(0.2);
    expect(backoffDelay(policy, 2, undefined, low)).toBe(1_600);
    expect(backoffDelay(policy, 2, undefined, high)).toBe(2_400);
  });

  it('never waits longer than the maximum, even with jitter', () => {
    expect(backoffDelay(policy, 5, undefined, high)).toBe(16_000);
    expect(backoffDelay(policy, 5, undefined, low)).toBe(12_800);
  });

  it("never retries before the server's Retry-After", () => {
    expect(backoffDelay(policy, 1, 7_000, high)).toBe(7_000);
    expect(backoffDelay(policy, 1, 7_000_000, low)).toBe(7_000_000);
    expect(backoffDelay(policy, 3, 10, middle)).toBe(4_000);
  });

  it('spreads real random draws over the whole band', () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(policy, 2));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1_600);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2_400);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });
});

describe('the device-signature poll schedule', () => {
  const poll = { initialMs: 200, maxMs: 900_000 };
  it.each([
    ['the first look comes after the initial delay', 0, 200],
    ['later looks wait as long as already waited', 5_000, 5_000],
    ['a device asleep for hours is looked at once per maximum', 8 * 3_600_000, 900_000],
  ])('%s', (_name, waited, delay) => {
    expect(signaturePollDelay(poll, waited)).toBe(delay);
  });
});
