/**
 * Step `start` (src/provisioning/steps/start.ts) against the sandbox's Chrome API: get → ours? → claim once →
 * profile → signData exactly once, and the ways it ends early (docs/failure-model.md "Whose process is it?").
 */
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChromeApi } from '../../../../src/chrome/types.ts';
import { ProcessNotFoundError } from '../../../../src/chrome/errors.ts';
import { TerminalError } from '../../../../src/errors.ts';
import { startStep } from '../../../../src/provisioning/steps/start.ts';
import type { ProcessRecord } from '../../../../src/store/types.ts';
import { REPLICA, stepTests, type StepHarness } from './harness.ts';

const { keys, start } = stepTests();

/**
 * Chrome whose first claim takes longer than the read before signData may be old (start.ts FRESH_READ_MS, 1 s);
 * `meanwhile` runs after that claim is applied and before it answers.
 */
function slowFirstClaim(meanwhile: () => Promise<void> = () => Promise.resolve()): (real: ChromeApi) => ChromeApi {
  let first = true;
  return (real) => ({
    get: (ref, ctx) => real.get(ref, ctx),
    claim: async (ref, instanceId, ctx) => {
      const result = await real.claim(ref, instanceId, ctx);
      if (first) {
        first = false;
        await sleep(1_100);
        await meanwhile();
      }
      return result;
    },
    signData: (ref, data, algorithm, ctx) => real.signData(ref, data, algorithm, ctx),
    getOperation: (name, ctx) => real.getOperation(name, ctx),
    uploadCertificate: (ref, pem, ctx) => real.uploadCertificate(ref, pem, ctx),
    setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
  });
}

/**
 * The record of sandbox process `id`, leased by the harness after another replica's lease on it expired: that replica
 * may be paused, not dead, and act once when it resumes.
 */
async function takenOver(t: StepHarness, id: string): Promise<ProcessRecord> {
  await t.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-STEPTEST', dueAt: 0 });
  await t.store.tryLease(id, 'paused-replica', 1);
  await sleep(5);
  const record = await t.store.tryLease(id, REPLICA, t.config.scheduler.leaseMs);
  if (record === undefined) throw new Error(`cannot take over ${id}`);
  return record;
}

describe('step start', () => {
  it('claims a new process of ours, asks the device once, and waits for the signature from now on', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = t.tenant.createProcess({
      key: keys().next('ec-p256'),
      subject: { kind: 'device', serialNumber: 'SER-1', deviceDirectoryApiId: 'dir-1' },
    });
    const record = await t.leased(id);
    const result = await startStep(t.runOf(record));

    const { signatureTimeoutMs } = t.config.chrome;
    expect(result).toMatchObject({
      kind: 'wait',
      step: 'await_signature',
      delayMs: t.config.scheduler.signaturePollInitialMs,
      patch: {
        caConnection: 'default_ca_config',
        profile: 'device_profile',
        spki: t.tenant.process(id).subjectPublicKeyInfo,
        signDataAt: t.clock,
        signatureDeadline: t.clock + signatureTimeoutMs,
        attempts: 0,
        holder: { device: { serialNumber: 'SER-1', directoryId: 'dir-1' } },
      },
    });
    expect(result.kind === 'wait' && result.patch?.signDataOperation).toMatch(/\/operations\//);
    expect(JSON.stringify(result.kind === 'wait' && result.patch?.rendered?.subject)).toContain('"SER-1"');
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1, setFailures: 0 });
    expect(t.tenant.claimedBy(id)).toBe(t.config.instanceId);
    // The claim is recorded before anything else can fail: a resumed process does not claim again.
    expect((await t.record(id)).claimedAt).toBe(t.clock);
  });

  it('resumed after the device was asked, it never asks again and keeps the deadline it had', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = t.tenant.createProcess({ key: keys().next('rsa-2048') });
    const first = await startStep(t.runOf(await t.leased(id)));
    const deadline = first.kind === 'wait' ? first.patch?.signatureDeadline : undefined;
    // The replica died before recording the result; the record only knows the claim and the deadline.
    const record = await t.write(id, { signatureDeadline: deadline });
    t.advance(60_000);

    const resumed = await startStep(t.runOf(record));
    expect(resumed).toMatchObject({ kind: 'wait', step: 'await_signature', patch: { signatureDeadline: deadline } });
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1, doubleSignData: 0 });
  });

  it('an unclear signData (the connection reset after Google applied it) is not resent and costs an attempt', async () => {
    const t = await start({
      tenant: { signDelayMs: 'never', faults: { dropResponse: { method: 'signData', count: 1 } } },
    });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    const record = await t.leased(id, { attempts: 2 });
    const result = await startStep(t.runOf(record));

    expect(result).toMatchObject({ kind: 'wait', step: 'await_signature', patch: { attempts: 3 } });
    expect(result.kind === 'wait' && result.patch?.signDataOperation).toBeUndefined();
    expect(t.tenant.counters(id).signDataCalls).toBe(1);
    expect(t.tenant.process(id).signData).toBeDefined();
  });

  it('a process that already finished is skipped without a claim', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256'), finished: 'issued' });
    expect(await startStep(t.runOf(await t.leased(id)))).toEqual({
      kind: 'done',
      outcome: 'skipped',
      reason: 'already_finished',
    });
    expect(t.tenant.counters(id).claims).toBe(0);
  });

  it.each([
    ['names a CA connection reference not configured here', { caConnection: 'another_adapters_ca' }],
    ['is a SCEP process', { shape: 'scep' as const }],
  ])('a process that %s is not ours: never claimed, never failed', async (_name, options) => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256'), ...options });
    expect(await startStep(t.runOf(await t.leased(id)))).toEqual({
      kind: 'done',
      outcome: 'skipped',
      reason: 'not_ours',
    });
    expect(t.tenant.counters(id)).toMatchObject({ claims: 0, signDataCalls: 0, setFailures: 0 });
  });

  it('a process claimed by another adapter instance is acknowledged, not failed', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256'), preClaimedBy: 'someone-else' });
    expect(await startStep(t.runOf(await t.leased(id)))).toEqual({
      kind: 'done',
      outcome: 'skipped',
      reason: 'claimed_elsewhere',
    });
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 0 });
    expect(t.tenant.claimedBy(id)).toBe('someone-else');
  });

  it('an unknown profile is terminal after the claim, with a message naming the profile', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256'), profile: 'wifi_profile' });
    const error = await startStep(t.runOf(await t.leased(id))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({
      reason: 'unknown_profile',
      userMessage: 'The certificate service has no certificate profile named "wifi_profile". Ask your administrator.',
    });
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 0 });
  });

  it('a process Google does not have fails the step with ProcessNotFoundError (the policy skips it)', async () => {
    const t = await start();
    const error = await startStep(t.runOf(await t.leased('no-such-process'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessNotFoundError);
  });

  it('under the first lease on the record, a slow claim needs no second read: nobody else can have asked the device', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' }, wrapChrome: slowFirstClaim() });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    const result = await startStep(t.runOf(await t.leased(id)));

    expect(result).toMatchObject({ kind: 'wait', step: 'await_signature' });
    expect(t.tenant.counters(id)).toMatchObject({ gets: 1, claims: 1, signDataCalls: 1 });
  });

  it('under a lease taken over from another replica, a slow claim is followed by a second read before signData', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' }, wrapChrome: slowFirstClaim() });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    const result = await startStep(t.runOf(await takenOver(t, id)));

    expect(result).toMatchObject({ kind: 'wait', step: 'await_signature' });
    expect(t.tenant.counters(id)).toMatchObject({ gets: 2, claims: 1, signDataCalls: 1 });
  });

  it('a process whose device was asked during a slow claim (a replica that lost its lease) is not asked again', async () => {
    const started: { t?: StepHarness; id?: string } = {};
    // A replica that lost its lease still acts once: it reads, claims and asks the device during our claim.
    const otherReplica = async () => {
      const { t, id } = started;
      if (t === undefined || id === undefined) throw new Error('the process is created');
      const theirs = await startStep(t.runOf(await t.record(id)));
      expect(theirs).toMatchObject({ kind: 'wait', step: 'await_signature' });
    };
    const t = await start({ tenant: { signDelayMs: 'never' }, wrapChrome: slowFirstClaim(otherReplica) });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    Object.assign(started, { t, id });
    const ours = await startStep(t.runOf(await takenOver(t, id)));

    expect(ours).toEqual({ kind: 'next', step: 'start' }); // resumes from the resource, which now has signData
    expect(t.tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0 });
    expect(t.logs.text()).toContain('process changed between claim and signData');
  });
});
