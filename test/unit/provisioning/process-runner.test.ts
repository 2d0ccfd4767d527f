/**
 * The run of one process (src/provisioning/process-runner.ts) without the scheduler: it takes the lease, runs steps
 * until the process waits or is done, records each result, and carries out the failure policy's decisions (the
 * fault gate, readiness, a lost lease, a shutdown). The sandbox's Chrome API, the memory store and a local CA.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LeaseLostError, StoreBusyError, type Outcome } from '../../../src/store/types.ts';
import { ShutdownAbort } from '../../../src/provisioning/failure-policy.ts';
import { FaultGate } from '../../../src/provisioning/fault-gate.ts';
import { ProcessRunner } from '../../../src/provisioning/process-runner.ts';
import { REPLICA, stepTests, type StepHarness } from './steps/harness.ts';

const { keys, start } = stepTests();
const gates: FaultGate[] = [];
afterEach(() => {
  for (const gate of gates.splice(0)) gate.close();
});

/** A runner on the harness; `done` collects what it reports finished, `resumed` what the gate would launch. */
function runnerOn(t: StepHarness) {
  const done: { processId: string; outcome: Outcome | undefined }[] = [];
  const resumed: string[] = [];
  const deps = t.deps();
  const gate = new FaultGate({
    log: deps.log,
    backoff: { initialMs: t.config.scheduler.retryInitialMs, maxMs: t.config.scheduler.retryMaxMs },
    now: () => t.clock,
    resume: (ids) => resumed.push(...ids),
  });
  gates.push(gate);
  const runner = new ProcessRunner({
    deps,
    now: () => t.clock,
    faultGate: gate,
    onDone: (record) => done.push({ processId: record.processId, outcome: record.outcome }),
  });
  const run = (id: string, abort = new AbortController()) => runner.run(id, abort);
  return { run, gate, done, resumed };
}

async function newRecord(t: StepHarness, id: string): Promise<void> {
  await t.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-RUNNER', dueAt: t.clock });
}

describe('the run of one process', () => {
  it('runs steps under one lease until the process must wait, then releases it, due when the step said', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    await runnerOn(t).run(id);

    const record = await t.record(id);
    expect(record).toMatchObject({
      step: 'await_signature',
      dueAt: t.clock + t.config.scheduler.signaturePollInitialMs,
    });
    expect(record.lease).toBeUndefined();
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1 });
  });

  it('once signed, one hold runs await_signature, issue and upload back to back, and reports the process done once', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    const { run, done } = runnerOn(t);
    await run(id);
    await expect.poll(() => t.tenant.process(id).signature, { timeout: 5_000 }).toBeDefined();
    t.advance(t.config.scheduler.signaturePollInitialMs); // the first check is due
    await run(id);

    expect(t.tenant.process(id).issuedCertificate).toBeDefined();
    expect(await t.record(id)).toMatchObject({ step: 'done', outcome: 'issued' });
    expect(done).toEqual([{ processId: id, outcome: 'issued' }]);
    expect(
      t.logs
        .entries()
        .filter((e) => e.processId === id)
        .map((e) => e.message),
    ).toEqual(expect.arrayContaining(['process → issue', 'process → upload', 'process done: issued']));
  });

  it('the happy path costs at most 5 Chrome requests, even when the store takes over a second to record the claim', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    // Under load the write of claimedAt can take longer than start's fresh-read bound (1 s).
    const update = t.store.update.bind(t.store);
    vi.spyOn(t.store, 'update').mockImplementation(async (processId, owner, patch, options) => {
      if (patch.claimedAt !== undefined) await new Promise((resolve) => setTimeout(resolve, 1_100));
      return update(processId, owner, patch, options);
    });
    const { run, done } = runnerOn(t);
    await run(id);
    await expect.poll(() => t.tenant.process(id).signature, { timeout: 5_000 }).toBeDefined();
    t.advance(t.config.scheduler.signaturePollInitialMs);
    await run(id);

    expect(done).toEqual([{ processId: id, outcome: 'issued' }]);
    const c = t.tenant.counters(id);
    // get, claim, signData, one signature check, upload: no second get under the first lease.
    expect(c).toMatchObject({ gets: 1, claims: 1, signDataCalls: 1, operationGets: 1, uploads: 1, doubleSignData: 0 });
    expect(c.gets + c.claims + c.signDataCalls + c.operationGets + c.uploads + c.setFailures).toBeLessThanOrEqual(5);
  });

  it('a terminal error is reported with setFailure in the same hold, and the process ends failed with its reason', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256'), profile: 'wifi_profile' });
    await newRecord(t, id);
    const { run, done } = runnerOn(t);
    await run(id);

    expect(t.tenant.process(id).failureMessage).toBe(
      'The certificate service has no certificate profile named "wifi_profile". Ask your administrator. (reference CP-RUNNER)',
    );
    expect(await t.record(id)).toMatchObject({ step: 'done', outcome: 'failed', reason: 'unknown_profile' });
    expect(done).toEqual([{ processId: id, outcome: 'failed' }]);
  });

  it('a record not due yet is left alone (a scan another replica overtook), unless launched before its time on purpose', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await t.store.create({
      processId: id,
      customer: 'my_customer',
      correlationId: 'CP-RUNNER',
      dueAt: t.clock + 5_000,
    });
    const { run } = runnerOn(t);
    await run(id);
    expect(t.tenant.counters(id)).toMatchObject({ gets: 0, claims: 0, signDataCalls: 0 });
    expect(await t.record(id)).toMatchObject({ step: 'start', dueAt: t.clock + 5_000 });
    expect((await t.record(id)).lease).toBeUndefined();

    const runner = runnerOn(t);
    await runner.run(id); // still not due
    expect(t.tenant.counters(id).signDataCalls).toBe(0);
    t.advance(5_000);
    await runner.run(id);
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1 });
  });

  it('a step result the store did not take in time is recorded again under the lease, not left to be redone', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' } });
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    // The releasing write (the step's result) times out once; every other write goes through.
    const update = t.store.update.bind(t.store);
    let refused = 0;
    vi.spyOn(t.store, 'update').mockImplementation((processId, owner, patch, options) => {
      if (options?.release === true && refused === 0) {
        refused += 1;
        return Promise.reject(new StoreBusyError('Firestore did not answer within 10000 ms', 'timeout', {}));
      }
      return update(processId, owner, patch, options);
    });
    await runnerOn(t).run(id);

    expect(refused).toBe(1);
    const record = await t.record(id);
    expect(record.step).toBe('await_signature');
    expect(record.lease).toBeUndefined();
    // The device was asked once, and start does not run again: nothing is left for a lease expiry to redo.
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1 });
    expect(t.logs.text()).toContain('cannot record the step result; trying again');
  });

  it('a process another replica holds the lease on is left alone', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    await t.store.tryLease(id, 'another-replica', t.config.scheduler.leaseMs);
    await runnerOn(t).run(id);
    expect(t.tenant.counters(id).gets).toBe(0);
    expect((await t.record(id)).lease?.owner).toBe('another-replica');
  });

  it('a Chrome 403 trips the gate: the component is not ready and the next process is held without a request', async () => {
    const t = await start();
    const [first, second] = [0, 1].map(() => t.tenant.createProcess({ key: keys().next('ec-p256') }));
    if (first === undefined || second === undefined) throw new Error('two processes');
    await newRecord(t, first);
    await newRecord(t, second);
    const { run, gate } = runnerOn(t);
    t.tenant.forbidden = true;
    await run(first);

    expect(gate.isFaulted('chrome')).toBe(true);
    expect(t.health.notReadyReasons().join()).toContain('deployment fault (chrome)');
    expect(await t.record(first)).toMatchObject({
      step: 'start',
      faultAttempts: 1,
      dueAt: t.clock + t.config.scheduler.retryMaxMs,
    });

    const before = t.tenant.requests.get;
    await run(second);
    expect(t.tenant.requests.get).toBe(before);
    expect(gate.heldCount('chrome')).toBe(2); // the one that tripped it, and this one
    expect(await t.record(second)).toMatchObject({ step: 'start', dueAt: t.clock + t.config.scheduler.retryMaxMs });
    expect((await t.record(second)).lease).toBeUndefined();
  });

  it('a step aborted because the lease was lost records nothing, not even a retry', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    const abort = new AbortController();
    abort.abort(new LeaseLostError(id, REPLICA));
    const before = await t.record(id);
    await runnerOn(t).run(id, abort);

    const after = await t.record(id);
    expect(after).toMatchObject({ step: 'start', attempts: 0, dueAt: before.dueAt });
    expect(after.lease?.owner).toBe(REPLICA); // left to expire: another replica takes over after it
  });

  it('a step aborted by shutdown hands the process back: released and due now', async () => {
    const t = await start();
    const id = t.tenant.createProcess({ key: keys().next('ec-p256') });
    await newRecord(t, id);
    const abort = new AbortController();
    abort.abort(new ShutdownAbort());
    t.advance(5_000);
    await runnerOn(t).run(id, abort);

    const after = await t.record(id);
    expect(after).toMatchObject({ step: 'start', attempts: 0, dueAt: t.clock });
    expect(after.lease).toBeUndefined();
  });
});
