/**
 * Step `report_failure` (src/provisioning/steps/report-failure.ts) against the sandbox's Chrome API: the failure
 * policy writes the catalog's message with the correlation reference, this step sends exactly that with setFailure,
 * and a process that finished meanwhile gets no setFailure.
 */
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../../src/errors.ts';
import { decideFailure } from '../../../../src/provisioning/failure-policy.ts';
import { reportFailureStep } from '../../../../src/provisioning/steps/report-failure.ts';
import type { ProcessRecord } from '../../../../src/store/types.ts';
import { MAX_USER_MESSAGE_LENGTH } from '../../../../src/user-messages.ts';
import { stepTests } from './harness.ts';

const { keys, start } = stepTests();

/**
 * A claimed process whose device did not sign in time: the policy's decision on the step's terminal error is written
 * as the engine would, so the record is at `report_failure` with the message the user will read.
 */
async function failing(options: { finished?: 'issued' | 'failed'; claimed?: boolean } = {}) {
  const t = await start();
  const id = t.tenant.createProcess({
    key: keys().next('ec-p256'),
    ...(options.claimed === false ? {} : { preClaimedBy: t.config.instanceId }),
    ...(options.finished === undefined ? {} : { finished: options.finished }),
  });
  const waiting = await t.leased(id, { step: 'await_signature' });
  const decision = decideFailure({
    record: waiting,
    step: 'await_signature',
    error: new TerminalError('the device did not sign within chrome.signatureTimeout', { reason: 'signature_timeout' }),
    scheduler: t.config.scheduler,
    random: Math.random,
  });
  if (decision.next.kind !== 'next') throw new Error('the policy did not report the failure');
  const record: ProcessRecord = await t.write(id, decision.next.patch);
  return { t, id, record };
}

describe('step report_failure', () => {
  it("sends the catalog's message with the correlation reference, and the process ends failed with its reason", async () => {
    const { t, id, record } = await failing();
    expect(await reportFailureStep(t.runOf(record, { freshLease: false }))).toEqual({
      kind: 'done',
      outcome: 'failed',
      reason: 'signature_timeout',
    });
    const message = t.tenant.process(id).failureMessage ?? '';
    expect(message).toBe(
      `The device did not answer the certificate request in time. It will try again later. (reference ${record.correlationId})`,
    );
    expect(message.length).toBeLessThanOrEqual(MAX_USER_MESSAGE_LENGTH);
    expect(t.tenant.counters(id).setFailures).toBe(1);
  });

  it('resumed on a process that finished meanwhile, it sends no setFailure', async () => {
    const { t, id, record } = await failing({ finished: 'issued' });
    expect(await reportFailureStep(t.runOf(record))).toEqual({
      kind: 'done',
      outcome: 'failed',
      reason: 'signature_timeout',
    });
    expect(t.tenant.counters(id).setFailures).toBe(0);
  });

  it('refused because the process already failed (400 FAILED_PRECONDITION): read back, done', async () => {
    const { t, id, record } = await failing({ finished: 'failed' });
    expect(await reportFailureStep(t.runOf(record, { freshLease: false }))).toEqual({
      kind: 'done',
      outcome: 'failed',
      reason: 'signature_timeout',
    });
    expect(t.tenant.counters(id).setFailures).toBe(1);
    expect(t.tenant.process(id).failureMessage).toBe('The CA could not issue the certificate.');
  });

  it('refused on a process that has not finished (not claimed by us): the refusal goes to the policy', async () => {
    const { t, id, record } = await failing({ claimed: false });
    const error = await reportFailureStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({ reason: 'chrome_rejected' });
    expect(t.tenant.process(id).failureMessage).toBeUndefined();
  });

  it('a transient setFailure error (503) is thrown for the policy to retry, the failure kept on the record', async () => {
    const { t, id, record } = await failing();
    t.tenant.faults = { burst503: 10, methods: ['setFailure'] };
    const error = await reportFailureStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(TerminalError);
    expect((await t.record(id)).failure?.reason).toBe('signature_timeout');
    expect(t.tenant.process(id).failureMessage).toBeUndefined();
  });
});
