/**
 * The lease-free signature check (src/provisioning/signature-check.ts) through the run of one process: a further
 * check of a sleeping device costs one store write (the compare-and-set that claims it) and one Chrome request; a
 * check that finds the signature takes the lease and acts on what it read; two replicas never check at once; an
 * error goes through the failure policy under the lease. The sandbox's Chrome API, the memory store, a local CA.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChromeApi } from '../../../src/chrome/types.ts';
import { RetryableError } from '../../../src/errors.ts';
import { FaultGate } from '../../../src/provisioning/fault-gate.ts';
import { ProcessRunner } from '../../../src/provisioning/process-runner.ts';
import type { ProcessRecord } from '../../../src/store/types.ts';
import { stepTests, type StepHarness } from './steps/harness.ts';

const { keys, start } = stepTests();
const gates: FaultGate[] = [];
afterEach(() => {
  for (const gate of gates.splice(0)) gate.close();
});

function runnerOn(t: StepHarness, replicaId = 'replica-a'): ProcessRunner {
  const deps = { ...t.deps(), replicaId };
  const gate = new FaultGate({
    log: deps.log,
    backoff: { initialMs: t.config.scheduler.retryInitialMs, maxMs: t.config.scheduler.retryMaxMs },
    now: () => t.clock,
    resume: () => undefined,
  });
  gates.push(gate);
  return new ProcessRunner({ deps, now: () => t.clock, faultGate: gate, onDone: () => undefined });
}

/** The real client with its getOperation replaced. */
function withGetOperation(real: ChromeApi, getOperation: ChromeApi['getOperation']): ChromeApi {
  return {
    get: (ref, ctx) => real.get(ref, ctx),
    claim: (ref, instanceId, ctx) => real.claim(ref, instanceId, ctx),
    signData: (ref, data, algorithm, ctx) => real.signData(ref, data, algorithm, ctx),
    uploadCertificate: (ref, pem, ctx) => real.uploadCertificate(ref, pem, ctx),
    setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
    getOperation,
  };
}

/** Store writes by method, from now on. */
function writesOf(t: StepHarness): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const method of ['tryLease', 'update', 'reschedule', 'renewLease'] as const) {
    const real = t.store[method].bind(t.store) as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(t.store, method).mockImplementation(((...args: unknown[]) => {
      counts[method] = (counts[method] ?? 0) + 1;
      return real(...args);
    }) as never);
  }
  return counts;
}

/** What the scheduler's scan hands the runner: the record, once due. */
async function scanned(t: StepHarness, id: string): Promise<ProcessRecord> {
  const record = await t.record(id);
  t.advance(Math.max(0, record.dueAt - t.clock));
  const due = (await t.store.findDue(t.clock, 10)).find((r) => r.processId === id);
  if (due === undefined) throw new Error(`${id} is not due`);
  return due;
}

/** A sleeping device's process after signData and its first check (made under the lease, as before). */
async function sleeping(t: StepHarness, runner: ProcessRunner): Promise<string> {
  const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
  await t.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-CHECK', dueAt: t.clock });
  await runner.run(id, new AbortController(), { record: await scanned(t, id) }); // start: claim, signData
  await runner.run(id, new AbortController(), { record: await scanned(t, id) }); // the first check
  expect(await t.record(id)).toMatchObject({ step: 'await_signature' });
  expect(t.tenant.counters(id)).toMatchObject({ signDataCalls: 1, operationGets: 1 });
  return id;
}

describe('a further signature check without the lease', () => {
  it('costs one store write and one Chrome request while the device sleeps; the record is due at the next check', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const runner = runnerOn(t);
    const id = await sleeping(t, runner);
    const writes = writesOf(t);
    for (let check = 2; check <= 5; check += 1) {
      const record = await scanned(t, id);
      const sentAt = record.signDataAt ?? 0;
      await runner.run(id, new AbortController(), { record });
      const after = await t.record(id);
      expect(t.tenant.counters(id).operationGets).toBe(check);
      // The step's own schedule: the gap doubles with the time waited, up to scheduler.signaturePollMax.
      const gap = Math.min(t.config.scheduler.signaturePollMaxMs, Math.max(t.clock - sentAt, 0));
      expect(after).toMatchObject({
        step: 'await_signature',
        dueAt: t.clock + Math.max(gap, t.config.scheduler.signaturePollInitialMs),
      });
      expect(after.lease).toBeUndefined();
      expect(after.version).toBe(record.version + 1);
    }
    expect(writes).toEqual({ reschedule: 4 });
    expect(t.tenant.counters(id).signDataCalls).toBe(1);
  });

  it('once the device signed, the check takes the lease and the process runs to its certificate on what it read', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const runner = runnerOn(t);
    const id = await sleeping(t, runner);
    t.tenant.deviceComesOnline(id);
    await expect.poll(() => t.tenant.process(id).signature).toBeDefined();
    const writes = writesOf(t);
    const before = t.tenant.counters(id);

    await runner.run(id, new AbortController(), { record: await scanned(t, id) });

    expect(await t.record(id)).toMatchObject({ step: 'done', outcome: 'issued' });
    expect(t.tenant.process(id).issuedCertificate).toBeDefined();
    const after = t.tenant.counters(id);
    expect(after.operationGets - before.operationGets).toBe(1); // read once, not again under the lease
    expect(after).toMatchObject({ signDataCalls: 1, uploads: 1 });
    expect(writes.reschedule).toBe(1);
    expect(writes.tryLease).toBe(1);
  });

  it('two replicas that found the record due in the same scan: one checks, the other sends nothing', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = await sleeping(t, runnerOn(t));
    const record = await scanned(t, id);
    await Promise.all(
      ['replica-a', 'replica-b', 'replica-c'].map((replica) =>
        runnerOn(t, replica).run(id, new AbortController(), { record }),
      ),
    );
    expect(t.tenant.counters(id).operationGets).toBe(2); // the first check, and one of these three
    expect((await t.record(id)).version).toBe(record.version + 1);
  });

  it('a record that changed since the scan is left to whoever changed it: nothing sent, nothing written', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const runner = runnerOn(t);
    const id = await sleeping(t, runner);
    const stale = await scanned(t, id);
    await t.store.tryLease(id, 'replica-b', t.config.scheduler.leaseMs); // another replica took it since
    const writes = writesOf(t);
    await runner.run(id, new AbortController(), { record: stale });
    expect(t.tenant.counters(id).operationGets).toBe(1);
    expect(writes).toEqual({ reschedule: 1 }); // refused: no write
    expect((await t.record(id)).lease?.owner).toBe('replica-b');
  });

  it('a failed check goes through the failure policy under the lease: one request, a retry counted', async () => {
    let failing = false;
    const t = await start({
      tenant: { signDelayMs: 'never' },
      wrapChrome: (real) =>
        withGetOperation(real, (name, ctx) =>
          failing
            ? Promise.reject(new RetryableError('chrome: operations.get → 503 (test)'))
            : real.getOperation(name, ctx),
        ),
    });
    const runner = runnerOn(t);
    const id = await sleeping(t, runner);
    failing = true;
    const record = await scanned(t, id);
    const writes = writesOf(t);
    await runner.run(id, new AbortController(), { record });
    const after = await t.record(id);
    expect(after).toMatchObject({ step: 'await_signature', attempts: record.attempts + 1 });
    expect(after.lastError).toContain('503');
    expect(after.lease).toBeUndefined();
    expect(writes).toMatchObject({ reschedule: 1, tryLease: 1, update: 1 });
  });

  it('a shutdown during the check hands it back: due when it was, nothing else written', async () => {
    const t = await start({
      tenant: { signDelayMs: 'never' },
      wrapChrome: (real) =>
        withGetOperation(real, async (name, ctx) => {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          return real.getOperation(name, ctx);
        }),
    });
    const runner = runnerOn(t);
    const id = await sleeping(t, runner);
    const record = await scanned(t, id);
    const abort = new AbortController();
    abort.abort(new Error('shutdown'));
    await runner.run(id, abort, { record });
    const after = await t.record(id);
    expect(after).toMatchObject({ step: 'await_signature', dueAt: record.dueAt, attempts: record.attempts });
    expect(after.lease).toBeUndefined();
  });

  it('the first check after signData keeps the lease path (most devices signed by then: no extra write)', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const runner = runnerOn(t);
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await t.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-CHECK', dueAt: t.clock });
    await runner.run(id, new AbortController(), { record: await scanned(t, id) });
    const writes = writesOf(t);
    await runner.run(id, new AbortController(), { record: await scanned(t, id) });
    expect(writes).toEqual({ tryLease: 1, update: 1 });
  });
});
