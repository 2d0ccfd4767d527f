/** Optional CA abilities are detected once, all or nothing (src/ca/connection.ts). */
import { describe, expect, it } from 'vitest';
import { abilitiesOf } from '../../../src/ca/connection.ts';
import type { CertificateAuthority, IssueResult } from '../../../src/ca/types.ts';

const failed: IssueResult = { status: 'failed', detail: 'test', userMessage: 'test' };
const issueOnly: CertificateAuthority = { name: 'c', type: 't', issue: () => Promise.resolve(failed) };

describe('abilitiesOf', () => {
  it('a CA with only issue has no optional ability', () => {
    expect(abilitiesOf(issueOnly)).toEqual({});
  });

  it('finds each ability a CA implements, bound to the CA', async () => {
    const ca = {
      ...issueOnly,
      polled: 0,
      poll(this: { polled: number }) {
        this.polled += 1;
        return Promise.resolve(failed);
      },
      cancel: () => Promise.resolve(),
      probe: () => Promise.resolve('ok'),
    };
    const abilities = abilitiesOf(ca);
    expect(Object.keys(abilities).sort()).toEqual(['pending', 'probe']);
    await abilities.pending?.poll({}, {} as never, {} as never);
    expect(ca.polled).toBe(1);
  });

  it.each([
    ['poll without cancel', { poll: () => Promise.resolve(failed) }, /has poll but not cancel/],
    ['start without close', { start: () => Promise.resolve() }, /has start but not close/],
  ])('refuses a half-implemented ability: %s', (_label, extra, message) => {
    expect(() => abilitiesOf({ ...issueOnly, ...extra })).toThrow(message);
  });
});
