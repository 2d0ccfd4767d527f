/** The record after a write (memory and SQLite stores): fields patched to undefined are gone, not kept as undefined. */
import { describe, expect, it } from 'vitest';
import { newProcessRecord, nextRecord } from '../../../src/store/new-record.ts';

describe('nextRecord', () => {
  const created = newProcessRecord({ processId: 'p1', customer: 'C0', correlationId: 'c1', dueAt: 5 }, 1_000);
  const leased = nextRecord(
    created,
    { step: 'await_signature', lookupKey: 'k' },
    { owner: 'a', expiresAt: 9 },
    2_000,
    60,
  );

  it('applies the patch and the lease, bumps the version, and freezes the result', () => {
    expect(leased).toMatchObject({ step: 'await_signature', lookupKey: 'k', lease: { owner: 'a', expiresAt: 9 } });
    expect(leased.version).toBe(created.version + 1);
    expect(leased.updatedAt).toBe(2_000);
    expect(Object.isFrozen(leased)).toBe(true);
  });

  it('removes the lease and the fields patched to undefined from the record', () => {
    const released = nextRecord(leased, { lookupKey: undefined }, undefined, 3_000, 60);
    expect(Object.keys(released)).not.toContain('lease');
    expect(Object.keys(released)).not.toContain('lookupKey');
    expect(released).toMatchObject({ step: 'await_signature', processId: 'p1', version: leased.version + 1 });
    expect(Object.isFrozen(released)).toBe(true);
  });

  it('sets expireAt once, when the record becomes done', () => {
    const done = nextRecord(leased, { step: 'done', outcome: 'issued' }, undefined, 4_000, 60);
    expect(done.expireAt).toBe(4_060);
    expect(Object.keys(done)).not.toContain('lease');
    expect(nextRecord(done, {}, undefined, 5_000, 60).expireAt).toBe(4_060);
  });
});
