/**
 * Step `await_signature` (src/provisioning/steps/await-signature.ts) against the sandbox's Chrome API and devices
 * holding real keys: the poll schedule of a sleeping device, its deadline, the proof of possession and the CSR
 * (checked by openssl), and a device that refuses. docs/failure-model.md "Devices that sleep".
 */
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../../src/errors.ts';
import { decodeBase64 } from '../../../../src/pki/pem.ts';
import { awaitSignatureStep } from '../../../../src/provisioning/steps/await-signature.ts';
import { startStep } from '../../../../src/provisioning/steps/start.ts';
import type { StepResult } from '../../../../src/provisioning/step.ts';
import { selfSignedDeviceCertificate } from '../../../../src/sandbox/device-certificate.ts';
import type { CreateProcessOptions } from '../../../../src/sandbox/index.ts';
import type { ProcessRecord } from '../../../../src/store/types.ts';
import { spkiDerOfCsr, subjectLines, verifyCsr } from '../../../support/openssl.ts';
import { stepTests, type StepHarness } from './harness.ts';

/** The documented schedule: first look 200 ms after signData, gaps grow with the wait up to 15 min, 24 h in all. */
const SLEEPING_DEVICE = {
  scheduler: { signaturePollInitial: '200ms', signaturePollMax: '15m' },
  chrome: { signatureTimeout: '24h' },
};
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const { keys, start } = stepTests();

/** A process of ours that `start` has asked to sign, its record as the engine would have written it. */
async function asked(
  options: Partial<CreateProcessOptions> = {},
): Promise<{ t: StepHarness; id: string; record: ProcessRecord }> {
  const t = await start({ config: SLEEPING_DEVICE });
  const id = t.tenant.createProcess({ key: keys().next('ec-p256'), ...options });
  const started = await startStep(t.runOf(await t.leased(id)));
  if (started.kind !== 'wait') throw new Error(`start did not wait: ${JSON.stringify(started)}`);
  return { t, id, record: await t.write(id, { ...started.patch, step: 'await_signature' }) };
}

async function signed(t: StepHarness, id: string): Promise<void> {
  await expect.poll(() => t.tenant.process(id).signature, { timeout: 5_000 }).toBeDefined();
}

describe('step await_signature', () => {
  it('a signed process yields a CSR that openssl verifies, for the device key, with the rendered subject', async () => {
    const { t, id, record } = await asked({
      subject: { kind: 'device', serialNumber: 'SER-9', deviceDirectoryApiId: 'dir-9' },
    });
    await signed(t, id);
    t.advance(1_500);
    const result = await awaitSignatureStep(t.runOf(record, { freshLease: false }));

    expect(result).toMatchObject({ kind: 'next', step: 'issue', patch: { attempts: 0 } });
    const csr = decodeBase64((result as Extract<StepResult, { kind: 'next' }>).patch?.csr ?? '');
    expect((await verifyCsr(csr)).ok).toBe(true);
    expect(await spkiDerOfCsr(csr)).toEqual(Buffer.from(t.tenant.process(id).subjectPublicKeyInfo ?? '', 'base64'));
    expect(await subjectLines(csr, 'req')).toEqual(['CN=SER-9', 'O=certprov test']);
  });

  it.each([
    ['just after signData, looks again after signaturePollInitial', 0, 200],
    ['after 5 s, waits as long again', 5_000, 5_000],
    ['after 40 min, waits at most signaturePollMax', 40 * MINUTE, 15 * MINUTE],
    ['10 min before the deadline, waits no longer than the deadline', 24 * HOUR - 10 * MINUTE, 10 * MINUTE],
  ])('a device that has not signed: %s', async (_name, waitedMs, delayMs) => {
    const { t, record } = await asked({ deviceOffline: true });
    t.advance(waitedMs);
    expect(await awaitSignatureStep(t.runOf(record, { freshLease: false }))).toEqual({
      kind: 'wait',
      step: 'await_signature',
      delayMs,
    });
  });

  it('a process that got its certificate meanwhile (another replica finished it) is skipped', async () => {
    const key = keys().next('ec-p256');
    const { t, id, record } = await asked({ key });
    await signed(t, id);
    const run = t.runOf(record, { freshLease: false });
    await t.chrome.uploadCertificate(run.ref, selfSignedDeviceCertificate(key, 'issued elsewhere'), run.ctx);
    expect(await awaitSignatureStep(run)).toEqual({ kind: 'done', outcome: 'skipped', reason: 'already_finished' });
  });

  it('a device that has not signed 24 h after signData fails with signature_timeout', async () => {
    const { t, record } = await asked({ deviceOffline: true });
    t.advance(24 * HOUR);
    const error = await awaitSignatureStep(t.runOf(record)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({
      reason: 'signature_timeout',
      userMessage: 'The device did not answer the certificate request in time. It will try again later.',
    });
  });

  it('a device that signed other bytes than it was asked fails with bad_signature', async () => {
    const { t, id, record } = await asked({ badSignature: true });
    await signed(t, id);
    const error = await awaitSignatureStep(t.runOf(record)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({
      reason: 'bad_signature',
      userMessage: "The device's proof-of-possession signature could not be verified.",
    });
  });

  it('a device that refuses to sign ends the process failed, without a setFailure of ours', async () => {
    const { t, id, record } = await asked({ deviceRefuses: true });
    await expect.poll(() => t.tenant.process(id).failureMessage, { timeout: 5_000 }).toBeDefined();
    expect(await awaitSignatureStep(t.runOf(record))).toEqual({
      kind: 'done',
      outcome: 'failed',
      reason: 'device_refused',
    });
    expect(t.tenant.counters(id).setFailures).toBe(0);
  });

  describe('after an unclear signData that never reached the process', () => {
    /** The record of a process claimed but never asked: signData's result was unclear and it did not take effect. */
    async function neverAsked(attempts: number) {
      const t = await start({ config: SLEEPING_DEVICE });
      const id = t.tenant.createProcess({ key: keys().next('ec-p256'), preClaimedBy: t.config.instanceId });
      const record = await t.leased(id, { step: 'await_signature', signDataAt: t.clock, attempts });
      return { t, record };
    }

    it('keeps looking while the request could still be in flight (2 × chrome.requestTimeout)', async () => {
      const { t, record } = await neverAsked(1);
      t.advance(1_000);
      // rig timings: requestTimeout 5 s, signaturePollInitial 200 ms → looks again after 1 s (as long as waited).
      expect(await awaitSignatureStep(t.runOf(record))).toEqual({
        kind: 'wait',
        step: 'await_signature',
        delayMs: 1_000,
      });
      t.advance(8_000);
      expect(await awaitSignatureStep(t.runOf(record))).toEqual({
        kind: 'wait',
        step: 'await_signature',
        delayMs: 1_000,
      });
    });

    it('then asks the device again, from start', async () => {
      const { t, record } = await neverAsked(1);
      t.advance(10_000);
      expect(await awaitSignatureStep(t.runOf(record))).toEqual({ kind: 'next', step: 'start' });
    });

    it('but not once scheduler.maxAttempts unclear attempts are spent: retries_exhausted', async () => {
      const { t } = await neverAsked(0);
      const record = await t.write(t.tenant.processIds()[0] ?? '', { attempts: t.config.scheduler.maxAttempts });
      t.advance(10_000);
      const error = await awaitSignatureStep(t.runOf(record)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TerminalError);
      expect(error).toMatchObject({ reason: 'retries_exhausted' });
    });
  });
});
