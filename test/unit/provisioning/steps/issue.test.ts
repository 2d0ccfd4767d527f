/**
 * Steps `issue` and `await_ca` (src/provisioning/steps/issue.ts): the local CA for the happy path (openssl checks the
 * leaf), a scripted CA for what a remote CA may answer — pending, refused, a certificate for another key — and the
 * order intent that keeps one process from ordering twice.
 */
import { describe, expect, it } from 'vitest';
import type { IssueResult } from '../../../../src/ca/types.ts';
import { RetryableError, TerminalError } from '../../../../src/errors.ts';
import { parseCertificate } from '../../../../src/pki/certificate.ts';
import { awaitCaStep, issueStep } from '../../../../src/provisioning/steps/issue.ts';
import { uploadStep } from '../../../../src/provisioning/steps/upload.ts';
import type { ProcessRecord } from '../../../../src/store/types.ts';
import { spkiDerOfCertificate } from '../../../support/openssl.ts';
import { ScriptedCa, stepTests, type ScriptedAnswer, type StepHarness } from './harness.ts';

const HOUR = 3_600_000;

const { keys, start } = stepTests();

/** A process at `issue` on a scripted CA that answers `answers` in order (or on the local CA without answers). */
async function atIssue(answers?: ScriptedAnswer[]) {
  const scripted = answers === undefined ? undefined : new ScriptedCa('scripted', answers);
  const t = await start({
    config: { scheduler: { caMaxWait: '72h' } },
    ...(scripted === undefined ? {} : { cas: new Map([['scripted', scripted.connection]]) }),
  });
  const { id, record } = await t.atIssue({ key: keys().next('ec-p256') }, scripted?.connection.name);
  return { t, id, record, ca: scripted };
}

const pending = (retryAfterMs: number): IssueResult => ({
  status: 'pending',
  ref: { order: 'ord-1' },
  retryAfterMs,
  lookupKey: 'ord-1',
});

describe('step issue', () => {
  it('the local CA issues a leaf for the device key; the result and the order intent are recorded', async () => {
    const { t, id, record } = await atIssue();
    const result = await issueStep(t.runOf(record, { freshLease: false }));

    expect(result).toMatchObject({
      kind: 'next',
      step: 'upload',
      patch: { attempts: 0, issueAttempts: 1, issueResults: 1 },
    });
    const pem = result.kind === 'next' ? (result.patch?.certificatePem ?? '') : '';
    expect(await spkiDerOfCertificate(pem)).toEqual(
      Buffer.from(t.tenant.process(id).subjectPublicKeyInfo ?? '', 'base64'),
    );
  });

  it('the order intent is durable before the CA is called: the retry tells the CA it may have ordered already', async () => {
    const { t, id, ca } = await atIssue([new RetryableError('CA answered 503'), pending(1_000)]);
    const error = await issueStep(t.runOf(await t.record(id))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect(await t.record(id)).toMatchObject({ issueAttempts: 1, issueResults: 0 });

    await issueStep(t.runOf(await t.record(id)));
    expect(ca?.issued.map((r) => r.priorAttempts)).toEqual([0, 1]);
  });

  it('resumed on a process that failed meanwhile, it orders nothing', async () => {
    const { t, id, ca } = await atIssue([pending(1_000)]);
    const run = t.runOf(await t.record(id));
    await t.chrome.setFailure(run.ref, 'ended on the device', run.ctx);
    expect(await issueStep(run)).toEqual({
      kind: 'done',
      outcome: 'failed',
      reason: 'device_refused',
    });
    expect(ca?.issued).toHaveLength(0);
  });

  it('a pending order waits on await_ca for the time the CA asked, with the deadline scheduler.caMaxWait', async () => {
    const { t, record } = await atIssue([pending(90_000)]);
    const result = await issueStep(t.runOf(record, { freshLease: false }));
    expect(result).toEqual({
      kind: 'wait',
      step: 'await_ca',
      delayMs: 90_000,
      patch: {
        pendingRef: { order: 'ord-1' },
        lookupKey: 'ord-1',
        caDeadline: t.clock + 72 * HOUR,
        attempts: 0,
        issueAttempts: 1,
        issueResults: 1,
      },
    });
  });

  it("a CA refusal is terminal (ca_rejected) with the backend's own words for the user", async () => {
    const { t, record } = await atIssue([
      { status: 'failed', detail: 'order 77 rejected', userMessage: 'The domain is not validated.' },
    ]);
    const error = await issueStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({ reason: 'ca_rejected', userMessage: 'The domain is not validated.' });
  });

  it('a certificate for another public key is never passed on: ca_misbehaved', async () => {
    const other = (await start()).tenant;
    const foreign = other.process(other.createProcess({ key: keys().next('ec-p256'), finished: 'issued' }));
    const { t, record } = await atIssue([{ status: 'issued', certificatePem: foreign.issuedCertificate ?? '' }]);
    const error = await issueStep(t.runOf(record, { freshLease: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({
      reason: 'ca_misbehaved',
      userMessage: 'The certificate authority returned an unusable certificate. Ask your administrator.',
    });
  });

  it('a CA that links renewals is told which active certificate of the same holder and profile this one replaces', async () => {
    const ca = new ScriptedCa('scripted', [], { linksRenewals: true });
    const t = await start({ cas: new Map([['scripted', ca.connection]]) });
    const local = t.cas.get('default_ca_config')?.ca;
    if (local === undefined) throw new Error('no local CA');
    ca.script.push(
      (request, ctx) => local.issue(request, ctx),
      (request, ctx) => local.issue(request, ctx),
    );
    const device = { kind: 'device', serialNumber: 'SER-R', deviceDirectoryApiId: 'dir-R' } as const;

    // The first certificate is issued and uploaded: the inventory holds it as the device's active one.
    const first = await t.atIssue({ key: keys().next('ec-p256'), subject: device }, 'scripted');
    const issued = await issueStep(t.runOf(first.record, { freshLease: false }));
    const atUpload = await t.write(first.id, { ...(issued.kind === 'next' ? issued.patch : {}), step: 'upload' });
    await uploadStep(t.runOf(atUpload, { freshLease: false }));
    const leaf = parseCertificate(atUpload.certificatePem ?? '');

    const second = await t.atIssue({ key: keys().next('ec-p256'), subject: device }, 'scripted');
    await issueStep(t.runOf(second.record, { freshLease: false }));
    expect(ca.issued[0]?.renews).toBeUndefined();
    expect(ca.issued[1]?.renews).toEqual({ serial: leaf.serialHex, notAfter: leaf.notAfter.getTime() });
  });

  it('a CA connection gone from the configuration is terminal, naming the connection', async () => {
    const { t, id } = await atIssue();
    const record = await t.write(id, { caConnection: 'retired_ca' });
    const error = await issueStep(t.runOf(record)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({
      reason: 'unknown_ca_connection',
      userMessage: 'The certificate service has no CA connection named "retired_ca". Ask your administrator.',
    });
  });
});

describe('step await_ca', () => {
  /** A process whose order is pending: issue ran and its result is recorded at await_ca. */
  async function atAwaitCa(
    answers: ScriptedAnswer[],
  ): Promise<{ t: StepHarness; record: ProcessRecord; ca: ScriptedCa }> {
    const { t, id, record, ca } = await atIssue([pending(60_000), ...answers]);
    const issued = await issueStep(t.runOf(record, { freshLease: false }));
    if (issued.kind !== 'wait' || ca === undefined) throw new Error('issue did not wait');
    return { t, record: await t.write(id, { ...issued.patch, step: 'await_ca' }), ca };
  }

  it('polls the pending order; once issued, the leaf goes to upload', async () => {
    const { t, record, ca } = await atAwaitCa([]);
    const local = t.cas.get('default_ca_config')?.ca;
    if (local === undefined) throw new Error('no local CA');
    ca.script.push((request, ctx) => local.issue(request, ctx));
    const result = await awaitCaStep(t.runOf(record));
    expect(result).toMatchObject({ kind: 'next', step: 'upload', patch: { attempts: 0 } });
    expect(ca.polled).toEqual([{ order: 'ord-1' }]);
  });

  it('still pending: waits again, never past the deadline', async () => {
    const { t, record } = await atAwaitCa([pending(HOUR)]);
    t.advance(72 * HOUR - 10 * 60_000);
    expect(await awaitCaStep(t.runOf(record))).toMatchObject({ kind: 'wait', step: 'await_ca', delayMs: 10 * 60_000 });
  });

  it('past scheduler.caMaxWait the order is cancelled and the process fails with ca_timeout', async () => {
    const { t, record, ca } = await atAwaitCa([]);
    t.advance(72 * HOUR);
    const error = await awaitCaStep(t.runOf(record)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(error).toMatchObject({ reason: 'ca_timeout' });
    expect(ca.cancelled).toEqual([
      { ref: { order: 'ord-1' }, reason: 'the CA request stayed pending longer than scheduler.caMaxWait' },
    ]);
    expect(ca.polled).toHaveLength(0);
  });

  it('a Chrome process that failed while the order was pending: the order is cancelled, nobody pays for it', async () => {
    const { t, record, ca } = await atAwaitCa([]);
    await t.chrome.setFailure(t.runOf(record).ref, 'ended on the device', t.runOf(record).ctx);
    expect(await awaitCaStep(t.runOf(record))).toEqual({ kind: 'done', outcome: 'failed', reason: 'device_refused' });
    expect(ca.cancelled.map((c) => c.reason)).toEqual(['the Chrome process failed while the CA request was pending']);
  });
});
