/**
 * Step `upload` (src/provisioning/steps/upload.ts) against the sandbox's Chrome API: the leaf goes into the inventory
 * and then to the process; an unclear result or a refusal is resolved by reading the process back, never by sending
 * again; a resumed upload to a process that has its certificate sends nothing.
 */
import { describe, expect, it } from 'vitest';
import { classifyChromeResponse, ProcessNotFoundError } from '../../../../src/chrome/errors.ts';
import type { ChromeApi } from '../../../../src/chrome/types.ts';
import { RetryableError, TerminalError, UnclearResultError } from '../../../../src/errors.ts';
import { parseCertificate } from '../../../../src/pki/certificate.ts';
import { issueStep } from '../../../../src/provisioning/steps/issue.ts';
import { uploadStep } from '../../../../src/provisioning/steps/upload.ts';
import { stepTests, type HarnessOptions } from './harness.ts';

const { keys, start } = stepTests();

/** A signed process whose leaf the local CA issued: the record is at `upload`. */
async function atUpload(options: HarnessOptions = {}) {
  const t = await start(options);
  const { id, record } = await t.atIssue({ key: keys().next('ec-p256') });
  const issued = await issueStep(t.runOf(record, { freshLease: false }));
  if (issued.kind !== 'next') throw new Error(`issue did not issue: ${JSON.stringify(issued)}`);
  const atStep = await t.write(id, { ...issued.patch, step: 'upload' });
  return { t, id, record: atStep, pem: atStep.certificatePem ?? '' };
}

describe('step upload', () => {
  it('records the certificate in the inventory, uploads the leaf, and the process is issued', async () => {
    const { t, id, record, pem } = await atUpload();
    expect(await uploadStep(t.runOf(record, { freshLease: false }))).toEqual({ kind: 'done', outcome: 'issued' });
    expect(t.tenant.process(id).issuedCertificate).toBe(pem);
    expect(t.tenant.counters(id)).toMatchObject({ uploads: 1, rejectedUploads: 0 });
    const serial = parseCertificate(pem).serialHex;
    expect(await t.store.getCertificate('default_ca_config', serial)).toMatchObject({
      processId: id,
      status: 'active',
    });
  });

  it('resumed after Google accepted the upload (the replica died before recording it), it does not upload again', async () => {
    const { t, id, record, pem } = await atUpload();
    const run = t.runOf(record);
    await t.chrome.uploadCertificate(run.ref, pem, run.ctx);
    expect(await uploadStep(run)).toEqual({ kind: 'done', outcome: 'issued' });
    expect(t.tenant.counters(id).uploads).toBe(1);
  });

  it('an unclear result (Google applied it, then answered 503) is read back: issued, not sent twice', async () => {
    const { t, id, record } = await atUpload({
      tenant: { faults: { errorAfterApply: { method: 'uploadCertificate', count: 1, status: 503 } } },
    });
    expect(await uploadStep(t.runOf(record, { freshLease: false }))).toEqual({ kind: 'done', outcome: 'issued' });
    expect(t.tenant.counters(id).uploads).toBe(1);
  });

  it('an unclear result that did not take effect is thrown for the policy to retry, not resent here', async () => {
    const { t, id, record } = await atUpload();
    t.tenant.faults = { burst503: 1, methods: ['uploadCertificate'] };
    const error = await uploadStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnclearResultError);
    expect(t.tenant.counters(id).uploads).toBe(0);
    expect(t.tenant.process(id).issuedCertificate).toBeUndefined();
  });

  it('a refusal because the process failed meanwhile (400 FAILED_PRECONDITION) ends it failed, not retried', async () => {
    const { t, id, record } = await atUpload();
    const run = t.runOf(record, { freshLease: false });
    await t.chrome.setFailure(run.ref, 'ended on the device', run.ctx);
    expect(await uploadStep(run)).toEqual({ kind: 'done', outcome: 'failed', reason: 'device_refused' });
    expect(t.tenant.counters(id).uploads).toBe(1);
  });

  it('a refusal of a process that has not finished is terminal (chrome_rejected)', async () => {
    const { t, record, pem } = await atUpload();
    // A process claimed by us whose device was never asked: Google refuses an upload without a signature.
    const bare = t.tenant.createProcess({ key: keys().next('ec-p256'), preClaimedBy: t.config.instanceId });
    const stray = await t.leased(bare, { step: 'upload', certificatePem: pem, caConnection: record.caConnection });
    const error = await uploadStep(t.runOf(stray, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({ reason: 'chrome_rejected' });
    expect(t.tenant.process(bare).failureMessage).toBeUndefined();
  });

  it('a process Google no longer has (404 NOT_FOUND) fails the step with ProcessNotFoundError', async () => {
    const { t, record, pem } = await atUpload();
    const gone = await t.leased('gone-process', {
      step: 'upload',
      certificatePem: pem,
      caConnection: record.caConnection,
    });
    const error = await uploadStep(t.runOf(gone, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessNotFoundError);
  });

  it('a 409 ABORTED (a conflict on Google’s side, nothing applied) is retryable and read nothing back', async () => {
    let gets = 0;
    const conflict = (real: ChromeApi): ChromeApi => ({
      claim: (ref, instanceId, ctx) => real.claim(ref, instanceId, ctx),
      signData: (ref, data, algorithm, ctx) => real.signData(ref, data, algorithm, ctx),
      getOperation: (name, ctx) => real.getOperation(name, ctx),
      setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
      get: (ref, ctx) => {
        gets += 1;
        return real.get(ref, ctx);
      },
      uploadCertificate: () =>
        Promise.reject(
          classifyChromeResponse({
            api: 'chrome',
            operation: 'uploadCertificate',
            status: 409,
            headers: new Headers(),
            bodyText: '{"error":{"code":409,"status":"ABORTED","message":"concurrent modification"}}',
            detail: { code: 'ABORTED', message: 'concurrent modification' },
            summary: 'chrome uploadCertificate → 409 ABORTED: concurrent modification',
            safeToRepeat: false,
            retryAfterMs: undefined,
          }),
        ),
    });
    const { t, id, record } = await atUpload({ wrapChrome: conflict });
    const before = gets;
    const error = await uploadStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).not.toBeInstanceOf(UnclearResultError);
    expect(gets).toBe(before);
    expect(t.tenant.process(id).issuedCertificate).toBeUndefined();
  });
});
