import { randomBytes } from 'node:crypto';

/** Crockford base32: no I, L, O, U — easy to read aloud from a ChromeOS notification. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A short id the ChromeOS user sees in a failure message and the admin finds in the logs (e.g. `CP-7K2M9Q4X`).
 * 40 random bits: unique enough to find one process's log lines, meaningless to anyone else.
 */
export function newCorrelationId(): string {
  const bytes = randomBytes(5);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < 8; i += 1) {
    out = (ALPHABET[Number(bits & 31n)] as string) + out;
    bits >>= 5n;
  }
  return `CP-${out}`;
}
