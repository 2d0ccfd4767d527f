/**
 * Workflow edges that need time control or odd remote behaviour: deadlines, exhausted retries, unclear results,
 * shutdown hand-back. In-process source (fast); the Pub/Sub path is covered in provisioning.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { testKeyPool } from '../support/keys.ts';
import { waitFor } from '../support/pubsub.ts';
import { AdapterRig, type RigOptions } from '../support/adapter-rig.ts';
import { MemoryProcessStore } from '../../src/store/memory.ts';
import { TerminalError } from '../../src/errors.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

async function start(options: RigOptions = {}): Promise<AdapterRig> {
  rig = await AdapterRig.start(options);
  return rig;
}

describe('deadlines and budgets', () => {
  it('a device that never signs is failed after chrome.signatureTimeout, with one signData', async () => {
    const r = await start({ config: { chrome: { signatureTimeout: '1s' } } });
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256'), deviceOffline: true });
    await r.notify(id);
    await r.tenant.waitUntilFinished([id], 10_000);
    expect(r.tenant.process(id)?.failureMessage).toMatch(
      /did not answer the certificate request in time\. .*\(reference CP-/,
    );
    expect(r.tenant.counters(id)).toMatchObject({ signDataCalls: 1, setFailures: 1 });
    await expect.poll(() => r.counter('certprov_processes_failed_total', { reason: 'signature_timeout' })).toBe(1);
  });

  it('a Chrome API that keeps failing exhausts scheduler.maxAttempts and the process is failed, not retried forever', async () => {
    const r = await start({ config: { scheduler: { maxAttempts: 3, retryInitial: '10ms', retryMax: '20ms' } } });
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256') });
    // Claimed and asked to sign, then every operations.get fails: only the adapter's budget can end it.
    r.tenant.faults = { rate503: 1, methods: ['getOperation'] };
    await r.notify(id);
    await waitFor(
      () => r.logs.entries().some((e) => e.message === 'retries exhausted' && e.processId === id),
      10_000,
      'exhaustion',
    );
    r.tenant.faults = {};
    await r.tenant.waitUntilFinished([id], 10_000);
    expect(r.tenant.process(id)?.failureMessage).toMatch(/could not complete the request/);
    expect(r.tenant.counters(id)).toMatchObject({ signDataCalls: 1, setFailures: 1 });
  });
  it('deployment faults never exhaust a process: more 403s than scheduler.maxAttempts, then the fix, then issued', async () => {
    const r = await start({ config: { scheduler: { maxAttempts: 3, retryInitial: '10ms', retryMax: '20ms' } } });
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256') });
    r.tenant.forbidden = true;
    await r.notify(id);
    await waitFor(
      () => r.logs.entries().filter((e) => e.processId === id && e.component === 'chrome').length >= 8,
      10_000,
      'eight deployment faults',
    );
    r.tenant.forbidden = false;
    // A transient error right after the fix must still have the whole retry budget.
    r.tenant.faults = { burst503: 5, methods: ['get'] };
    await r.tenant.waitUntilFinished([id], 10_000);
    expect(r.tenant.process(id)?.issuedCertificate).toBeDefined();
    expect(r.tenant.counters(id).setFailures).toBe(0);
  });
});

describe('claims', () => {
  it('a claim refused for any other reason is acknowledged without setFailure: only the claimant may fail a process', async () => {
    let refuse = '';
    const r = await start({
      wrapChrome: (real) => ({
        get: (ref, ctx) => real.get(ref, ctx),
        signData: (ref, data, algorithm, ctx) => real.signData(ref, data, algorithm, ctx),
        getOperation: (name, ctx) => real.getOperation(name, ctx),
        uploadCertificate: (ref, pem, ctx) => real.uploadCertificate(ref, pem, ctx),
        setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
        claim: (ref, id, ctx) =>
          ref.processId === refuse
            ? Promise.reject(
                new TerminalError('chrome claim → 400 FAILED_PRECONDITION: the process is not claimable', {
                  reason: 'chrome_rejected',
                  userMessage: 'not shown',
                }),
              )
            : real.claim(ref, id, ctx),
      }),
    });
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256') });
    refuse = id;
    await r.notify(id);
    await expect.poll(() => r.counter('certprov_processes_skipped_total', { reason: 'claim_refused' })).toBe(1);
    expect(r.tenant.counters(id)).toMatchObject({ signDataCalls: 0, setFailures: 0 });
    expect(r.tenant.process(id)?.failureMessage).toBeUndefined();
  });
});

describe('unsafe calls', () => {
  it('signData answered 503 after it took effect is not resent; the process completes from the resource', async () => {
    const r = await start();
    r.tenant.faults = { errorAfterApply: { method: 'signData', status: 503, count: 1 } };
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('rsa-2048') });
    await r.notify(id);
    await r.tenant.waitUntilFinished([id], 10_000);
    expect(r.tenant.process(id)?.issuedCertificate).toBeDefined();
    expect(r.tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0 });
    expect(
      r.logs
        .entries()
        .some((e) => e.message === 'signData result unclear; not resending, following the process resource'),
    ).toBe(true);
  });

  it('an upload whose response is lost is read back, not repeated blindly', async () => {
    const r = await start();
    r.tenant.faults = { dropResponse: { method: 'uploadCertificate', count: 1 } };
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256') });
    await r.notify(id);
    await r.tenant.waitUntilFinished([id], 10_000);
    await waitFor(() => r.logs.entries().some((e) => e.processId === id && e.outcome === 'issued'), 10_000, 'issued');
    expect(r.tenant.counters(id)).toMatchObject({ uploads: 1, rejectedUploads: 0 });
  });
});

describe('restarts and shutdown', () => {
  it('processes in flight at shutdown are handed back and finished by the next replica; nothing is lost', async () => {
    const r = await start({ config: { shutdown: { gracePeriod: '200ms' } } });
    const pool = await testKeyPool();
    const ids = Array.from({ length: 12 }, (_, i) =>
      r.tenant.createProcess({ key: pool.next(i % 2 ? 'ec-p256' : 'rsa-2048'), signDelayMs: 400 }),
    );
    for (const id of ids) await r.notify(id);
    await waitFor(() => ids.every((id) => r.tenant.counters(id).signDataCalls === 1), 10_000, 'all asked to sign');
    await r.restart();
    await r.tenant.waitUntilFinished(ids, 20_000);
    for (const id of ids) {
      expect(r.tenant.process(id)?.issuedCertificate, id).toBeDefined();
      expect(r.tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0, uploads: 1 });
    }
  });

  it('with a store that survives the restart, a process waiting for its signature resumes from its record', async () => {
    const store = new MemoryProcessStore();
    const r = await start({ store });
    const id = r.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256'), deviceOffline: true });
    await r.notify(id);
    await waitFor(() => r.tenant.counters(id).signDataCalls === 1, 10_000, 'signData');
    await r.restart(true);
    expect((await store.get(id))?.step).toBe('await_signature');
    r.tenant.deviceComesOnline(id);
    await r.tenant.waitUntilFinished([id], 10_000);
    expect(r.tenant.process(id)?.issuedCertificate).toBeDefined();
    expect(r.tenant.counters(id).signDataCalls).toBe(1);
    await expect.poll(async () => (await store.get(id))?.outcome).toBe('issued');
  });
});
