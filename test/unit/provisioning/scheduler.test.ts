/**
 * The scheduler loop (src/provisioning/engine.ts) on its own: which records it runs, when, how many at once, and how
 * it stops. The sandbox's Chrome API, the memory store, a local CA and the harness's clock (steps/harness.ts). A gate
 * in front of Chrome's `get` — the first call of every step — holds each step until the test lets it go, and
 * counts the steps inside at once.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { ChromeApi } from '../../../src/chrome/types.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { ProvisioningEngine } from '../../../src/provisioning/engine.ts';
import type { EngineDependencies } from '../../../src/provisioning/step.ts';
import { DEFAULT_SCAN_SPACING_MS, type Step } from '../../../src/store/types.ts';
import { deepMerge } from '../../support/adapter-rig.ts';
import { stepTests, type HarnessOptions, type StepHarness } from './steps/harness.ts';

const { keys, start } = stepTests();

/** Holds every step at its `get` while `holding`, until released or aborted; a step is inside from `get` to signData. */
class StepGate {
  /** Every step that began, in order, with the step its record was at. */
  readonly entries: { processId: string; step: Step | undefined }[] = [];
  inside = 0;
  maxInside = 0;
  holding = true;
  private readonly held = new Map<string, () => void>();
  private store: StepHarness['store'] | undefined;

  wrap = (real: ChromeApi): ChromeApi => ({
    get: async (ref, ctx) => {
      const record = await this.store?.get(ref.processId);
      this.entries.push({ processId: ref.processId, step: record?.step });
      this.inside += 1;
      this.maxInside = Math.max(this.maxInside, this.inside);
      if (this.holding && !ctx.signal.aborted) {
        await new Promise<void>((resolve) => {
          this.held.set(ref.processId, resolve);
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        this.held.delete(ref.processId);
      }
      try {
        // An aborted step's request fails the way the real client fails it.
        return await real.get(ref, ctx);
      } catch (error) {
        this.inside -= 1;
        throw error;
      }
    },
    claim: (ref, instanceId, ctx) => real.claim(ref, instanceId, ctx),
    signData: async (ref, data, algorithm, ctx) => {
      try {
        return await real.signData(ref, data, algorithm, ctx);
      } finally {
        this.inside -= 1;
      }
    },
    getOperation: (name, ctx) => real.getOperation(name, ctx),
    uploadCertificate: (ref, pem, ctx) => real.uploadCertificate(ref, pem, ctx),
    setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
  });

  attach(t: StepHarness): void {
    this.store = t.store;
  }

  /** Ids of the steps `start` that began, in order. */
  started(): string[] {
    return this.entries.filter((e) => e.step === 'start').map((e) => e.processId);
  }

  heldIds(): string[] {
    return [...this.held.keys()];
  }

  release(processId: string): void {
    const go = this.held.get(processId);
    if (go === undefined) throw new Error(`${processId} is not held`);
    go();
  }

  releaseAll(): void {
    this.holding = false;
    for (const go of this.held.values()) go();
  }
}

const engines: ProvisioningEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop(0)));
});

/**
 * A harness whose steps pass the gate; the device never signs and the signature is polled an hour later, so each
 * process runs `start` once and then waits.
 */
async function gated(options: HarnessOptions = {}, maxConcurrent = 64) {
  const gate = new StepGate();
  const t = await start({
    tenant: { signDelayMs: 'never' },
    ...options,
    config: deepMerge(
      { scheduler: { maxConcurrent, signaturePollInitial: '1h', signaturePollMax: '2h' } },
      options.config ?? {},
    ),
    wrapChrome: gate.wrap,
  });
  gate.attach(t);
  return { t, gate };
}

function engineOn(
  t: StepHarness,
  deps: Partial<EngineDependencies> = {},
  options: ConstructorParameters<typeof ProvisioningEngine>[1] = {},
): ProvisioningEngine {
  const engine = new ProvisioningEngine({ ...t.deps(), ...deps }, options);
  engines.push(engine);
  return engine;
}

function newProcess(t: StepHarness): string {
  return t.tenant.createProcess({ key: keys().next('ec-p256') });
}

async function record(t: StepHarness, id: string, dueAt: number): Promise<void> {
  await t.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-SCHED', dueAt });
}

/** When each scan of the store for due records began (performance.now()), from now on. */
function scansOf(t: StepHarness): number[] {
  const scans: number[] = [];
  const findDue = t.store.findDue.bind(t.store);
  vi.spyOn(t.store, 'findDue').mockImplementation((now, limit) => {
    scans.push(performance.now());
    return findDue(now, limit);
  });
  return scans;
}

const ref = (processId: string) => ({ customer: 'my_customer', processId });

/** A started engine with two submitted processes, both held inside their step `start`. */
async function twoHeld() {
  const { t, gate } = await gated();
  const engine = engineOn(t);
  engine.start();
  const [one, two] = [newProcess(t), newProcess(t)];
  await engine.submit(ref(one));
  await engine.submit(ref(two));
  await expect.poll(() => gate.heldIds().length).toBe(2);
  return { t, gate, engine, one, two };
}

describe('the scheduler loop', () => {
  it('a duplicate delivery of a process creates no second record and does not run its start again', async () => {
    const { t, gate } = await gated();
    const engine = engineOn(t);
    engine.start();
    const id = newProcess(t);

    const first = await engine.submit(ref(id));
    const again = await engine.submit(ref(id)); // while the first run is inside its step
    expect(first.created).toBe(true);
    expect(again).toMatchObject({ created: false, record: { correlationId: first.record.correlationId } });
    await expect.poll(() => gate.heldIds()).toEqual([id]);
    gate.releaseAll();
    await expect.poll(async () => (await t.record(id)).step).toBe('await_signature');
    expect((await engine.submit(ref(id))).created).toBe(false); // and once it waits

    await sleep(200);
    expect(gate.started()).toEqual([id]);
    expect(t.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 1 });
  });

  it('a duplicate delivery leaves a waiting process waiting: no check before its dueAt, no retry backoff skipped', async () => {
    const { t, gate } = await gated();
    gate.holding = false;
    const engine = engineOn(t);
    engine.start();
    const signing = newProcess(t);
    await engine.submit(ref(signing));
    await expect.poll(async () => (await t.record(signing)).step).toBe('await_signature');
    const waiting = await t.record(signing);
    expect(waiting.dueAt).toBeGreaterThan(t.clock); // the first check is an hour away (gated())

    // A process in a retry backoff: its record is at `start`, due in a minute.
    const backingOff = newProcess(t);
    await record(t, backingOff, t.clock + 60_000);

    const before = { signing: t.tenant.counters(signing), backingOff: t.tenant.counters(backingOff) };
    for (let i = 0; i < 3; i += 1) {
      expect((await engine.submit(ref(signing))).created).toBe(false);
      expect((await engine.submit(ref(backingOff))).created).toBe(false);
    }
    await sleep(300); // several poll intervals
    expect(t.tenant.counters(signing)).toEqual(before.signing);
    expect(t.tenant.counters(backingOff)).toEqual(before.backingOff);
    expect(await t.record(signing)).toMatchObject({ step: 'await_signature', dueAt: waiting.dueAt });

    t.advance(60_000); // the backoff is over: the scheduler runs it
    await expect.poll(() => t.tenant.counters(backingOff).signDataCalls).toBe(1);
    expect(t.tenant.counters(signing).operationGets).toBe(before.signing.operationGets);
  });

  it('runs at most scheduler.maxConcurrent processes at once; the rest start as slots free', async () => {
    const { t, gate } = await gated({}, 3);
    const ids = Array.from({ length: 7 }, () => newProcess(t));
    for (const id of ids.slice(0, 4)) await record(t, id, t.clock); // found by the scan
    const engine = engineOn(t);
    engine.start();
    for (const id of ids.slice(4)) await engine.submit(ref(id)); // submitted at capacity

    await expect.poll(() => gate.heldIds().length).toBe(3);
    await sleep(300); // several poll intervals: nobody else gets in
    expect(gate.started()).toHaveLength(3);
    expect(engine.inFlight).toBe(3);

    const [one] = gate.heldIds();
    gate.release(one ?? '');
    await expect.poll(() => gate.started().length).toBe(4);
    expect(gate.heldIds()).toHaveLength(3);

    gate.releaseAll();
    await expect.poll(() => gate.started().length).toBe(7);
    await expect.poll(() => engine.inFlight).toBe(0);
    expect(new Set(gate.started())).toEqual(new Set(ids));
    expect(gate.maxInside).toBe(3);
  });

  it('runs due records earliest dueAt first, and a record not yet due only once it is due', async () => {
    const { t, gate } = await gated({}, 1);
    const [a, b, c, later] = Array.from({ length: 4 }, () => newProcess(t));
    if (a === undefined || b === undefined || c === undefined || later === undefined) throw new Error('four');
    await record(t, b, t.clock - 1_000);
    await record(t, later, t.clock + 60_000);
    await record(t, c, t.clock - 500);
    await record(t, a, t.clock - 3_000);
    const engine = engineOn(t);
    engine.start();

    for (const next of [a, b, c]) {
      await expect.poll(() => gate.heldIds()).toEqual([next]);
      gate.release(next);
    }
    await expect.poll(() => engine.inFlight).toBe(0);
    await sleep(300); // several poll intervals
    expect(gate.started()).toEqual([a, b, c]);

    t.advance(60_000);
    await expect.poll(() => gate.heldIds()).toEqual([later]);
    expect(gate.started()).toEqual([a, b, c, later]);
  });

  it('leaves a process whose lease another owner holds, submitted or due, and runs it once released', async () => {
    const { t, gate } = await gated();
    gate.holding = false;
    const [taken, free] = [newProcess(t), newProcess(t)];
    await record(t, taken, t.clock);
    await record(t, free, t.clock);
    await t.store.tryLease(taken, 'another-replica', t.config.scheduler.leaseMs);
    const engine = engineOn(t);
    engine.start();
    expect((await engine.submit(ref(taken))).created).toBe(false);

    await expect.poll(() => gate.started()).toEqual([free]);
    await sleep(300);
    expect(t.tenant.counters(taken).gets).toBe(0);
    expect((await t.record(taken)).lease?.owner).toBe('another-replica');

    await t.store.update(taken, 'another-replica', {}, { release: true });
    await expect.poll(() => t.tenant.counters(taken).signDataCalls).toBe(1);
    expect(gate.started()).toEqual([free, taken]);
    expect(t.tenant.counters(taken).claims).toBe(1);
  });

  it('waitForOutcome resolves with the outcome of a process that finishes here, or at once for a finished one', async () => {
    const t = await start({ tenant: { signDelayMs: 0 } });
    const engine = engineOn(t);
    engine.start();
    const id = newProcess(t);
    const failing = t.tenant.createProcess({ key: keys().next('ec-p256'), profile: 'wifi_profile' });
    const waiting = new AbortController();

    const issued = engine.waitForOutcome(id, waiting.signal);
    const failed = engine.waitForOutcome(failing, waiting.signal);
    await engine.submit(ref(id));
    await engine.submit(ref(failing));
    await expect.poll(() => t.tenant.process(id).signature, { timeout: 5_000 }).toBeDefined();
    t.advance(t.config.scheduler.signaturePollInitialMs); // the signature poll comes due

    expect(await issued).toBe('issued');
    expect(await failed).toBe('failed');
    expect(t.tenant.process(id).issuedCertificate).toBeDefined();
    expect(await engine.waitForOutcome(id, waiting.signal)).toBe('issued');

    const other = newProcess(t);
    const pending = engine.waitForOutcome(other, waiting.signal);
    waiting.abort();
    expect(await pending).toBeUndefined();
  });

  it('stop() takes no more work and lets running steps finish within the grace period', async () => {
    const { t, gate, engine, one, two } = await twoHeld();

    const stopped = engine.stop(10_000);
    const late = newProcess(t);
    expect((await engine.submit(ref(late))).created).toBe(true); // recorded for whoever runs it
    await sleep(50);
    gate.releaseAll();
    await stopped;

    for (const id of [one, two]) {
      expect(await t.record(id)).toMatchObject({ step: 'await_signature' });
      expect(t.tenant.counters(id)).toMatchObject({ signDataCalls: 1, setFailures: 0 });
    }
    expect(gate.started()).toEqual([one, two]);
    expect(await t.record(late)).toMatchObject({ step: 'start' });
    expect((await t.record(late)).lease).toBeUndefined();
  });

  it('stop() aborts the steps still running after the grace period and hands their processes back', async () => {
    const { t, engine, one, two } = await twoHeld();
    t.advance(5_000);

    const began = performance.now();
    await engine.stop(200);
    expect(performance.now() - began).toBeGreaterThanOrEqual(190);
    expect(engine.inFlight).toBe(0);

    for (const id of [one, two]) {
      const after = await t.record(id);
      expect(after).toMatchObject({ step: 'start', attempts: 0, dueAt: t.clock });
      expect(after.lease).toBeUndefined();
      expect(t.tenant.counters(id)).toMatchObject({ claims: 0, signDataCalls: 0, setFailures: 0 });
    }
    expect(t.logs.text()).toContain('grace period over; handing back in-flight processes');
  });

  it('a quiet engine scans once per poll interval, and wakes for a record when it comes due', async () => {
    const { t, gate } = await gated({ config: { scheduler: { pollInterval: '10s' } } });
    gate.holding = false;
    const scans = scansOf(t);
    const id = newProcess(t);
    const clock = () => Date.now(); // this test is about real waiting
    await record(t, id, clock() + 400);
    const engine = engineOn(t, { now: clock });
    const began = performance.now();
    engine.start();

    await expect.poll(() => gate.started(), { timeout: 5_000 }).toEqual([id]);
    const ranAfter = performance.now() - began;
    expect(ranAfter).toBeGreaterThanOrEqual(390); // not early
    expect(ranAfter).toBeLessThan(5_000); // and not at the next poll (10 s)
    await sleep(500); // quiet: nothing is due for an hour, the next scan is the poll's
    expect(scans.length).toBeLessThanOrEqual(3); // the first, the one at dueAt, perhaps one more
  });

  it('a quiet engine asks only for the next due time each poll interval, and scans once a record is due', async () => {
    const { t, gate } = await gated({ config: { scheduler: { pollInterval: '100ms' } } });
    gate.holding = false;
    const scans = scansOf(t);
    const nextDue = vi.spyOn(t.store, 'nextDueAt');
    await record(t, newProcess(t), t.clock + 3_600_000); // waiting an hour
    const engine = engineOn(t);
    engine.start();
    await sleep(1_000); // about ten poll intervals
    // One scan (a query for continuing work and one for new work on a shared store), then one query per interval.
    expect(scans).toHaveLength(1);
    expect(nextDue.mock.calls.length).toBeGreaterThanOrEqual(5);

    // A record another replica created (or released) due now: the next interval's question finds it due, and a scan
    // runs it.
    const id = newProcess(t);
    await record(t, id, t.clock);
    await expect.poll(() => gate.started()).toEqual([id]);
    expect(scans).toHaveLength(2);
  });

  it.each([
    { store: 'a shared store (no spacing of its own)', spacing: undefined, least: DEFAULT_SCAN_SPACING_MS },
    { store: 'a store that sets its own', spacing: 30, least: 30 },
  ])('scans stay at least $least ms apart with $store, however fast processes finish at capacity', async (c) => {
    const { t, gate } = await gated({}, 1);
    Object.defineProperty(t.store, 'scanSpacingMs', { value: c.spacing });
    gate.holding = false;
    const scans = scansOf(t);
    const ids = Array.from({ length: 8 }, () => newProcess(t));
    for (const id of ids) await record(t, id, t.clock);
    const engine = engineOn(t);
    engine.start();

    await expect.poll(() => gate.started().length, { timeout: 10_000 }).toBe(8);
    const gaps = scans.slice(1).map((at, i) => at - (scans[i] ?? 0));
    // Less a timer's rounding.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(c.least - 2);
  });
});

describe('the scheduler under a slow store', () => {
  it('runs fewer processes at once while the store answers slowly, and the configured number once it is quick again', async () => {
    const { t, gate } = await gated({}, 8);
    // A store like Firestore's: a call slower than 50 ms signals congestion; every call takes `delayMs` first.
    Object.defineProperty(t.store, 'slowCallMs', { value: 50 });
    let delayMs = 80;
    const creates = { inside: 0, most: 0 };
    for (const method of ['create', 'get', 'tryLease', 'update', 'renewLease', 'findDue', 'nextDueAt'] as const) {
      const real = (t.store[method] as (...args: unknown[]) => Promise<unknown>).bind(t.store);
      vi.spyOn(t.store, method).mockImplementation((async (...args: unknown[]) => {
        if (method === 'create') creates.most = Math.max(creates.most, ++creates.inside);
        try {
          if (delayMs > 0) await sleep(delayMs);
          return await real(...args);
        } finally {
          if (method === 'create') creates.inside -= 1;
        }
      }) as never);
    }
    // A congestion episode ends 300 ms (real time) after the last slow call, back at the configured concurrency.
    const engine = engineOn(t, {}, { congestionQuietMs: 300 });
    engine.start();
    const ids = Array.from({ length: 8 }, () => newProcess(t));
    for (const id of ids) await engine.submit(ref(id));
    await expect.poll(() => engine.storeLoad.limit).toBe(1);
    await sleep(500); // several slow calls and scans: the old scheduler had all eight inside by now
    expect(gate.heldIds().length).toBeLessThanOrEqual(2);
    // 8 → 4 → 2 → 1: three halvings, one period of congestion, one line.
    expect(t.logs.text().match(/store congested: running fewer processes at once/g)).toHaveLength(1);
    expect((await t.metrics.storeConcurrencyLimit.get()).values[0]?.value).toBe(1);
    // The waiting-process gauges (a count query per step) are not refreshed every 5 s while congested.
    const counts = vi.spyOn(t.store, 'countActive');
    t.advance(6_000);
    await sleep(1_500); // several loop turns, each at least the (grown) scan spacing apart
    expect(counts).not.toHaveBeenCalled();
    // A burst of notifications while congested: their creates go one at a time, not all at once.
    creates.most = 0;
    const burst = Array.from({ length: 4 }, () => newProcess(t));
    await Promise.all(burst.map((id) => engine.submit(ref(id))));
    expect(creates.most).toBe(1);

    // The store is quick again: answers in time bring the limit back one step per window of calls, and all run.
    delayMs = 0;
    gate.releaseAll();
    await expect.poll(() => new Set(gate.started()).size, { timeout: 10_000 }).toBe(12);
    const more = Array.from({ length: 8 }, () => newProcess(t));
    for (const id of more) await engine.submit(ref(id));
    await expect.poll(() => engine.storeLoad.limit, { timeout: 10_000 }).toBe(8);
    await expect.poll(() => engine.storeLoad.state, { timeout: 10_000 }).toBe('healthy');
    expect(t.logs.text()).toContain('store answers in time again: back to the configured concurrency');
    const changes = (await t.metrics.storeCongestion.get()).values.map((v) => `${v.labels.state}/${v.labels.reason}`);
    expect(changes).toEqual(expect.arrayContaining(['congested/slow', 'healthy/recovered']));
  });

  it('spaces scans out after slow ones: the next begins no sooner than five scan durations after the last', async () => {
    const { t, gate } = await gated({}, 4);
    gate.holding = false;
    Object.defineProperty(t.store, 'slowCallMs', { value: 50 });
    const findDue = t.store.findDue.bind(t.store);
    const scans: { began: number; took: number }[] = [];
    vi.spyOn(t.store, 'findDue').mockImplementation(async (now, limit) => {
      const began = performance.now();
      await sleep(60); // a store slowed down
      const due = await findDue(now, limit);
      scans.push({ began, took: performance.now() - began });
      return due;
    });
    // Something is always coming due (a record another replica still leases): the engine keeps scanning.
    vi.spyOn(t.store, 'nextDueAt').mockImplementation(() => Promise.resolve(t.clock));
    const engine = engineOn(t);
    engine.start();
    await expect.poll(() => scans.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
    await engine.stop(0);
    const gaps = scans.slice(1).map((scan, i) => ({ gap: scan.began - scans[i]!.began, took: scans[i]!.took }));
    // The old scheduler began the next scan 100 ms (the poll interval) after a 60 ms one; less a timer's rounding.
    for (const { gap, took } of gaps) expect(gap).toBeGreaterThanOrEqual(5 * took - 2);
    // A scan's duration grows with the collection, not with how many processes run: it spaces scans out and leaves
    // the concurrency alone.
    expect(engine.storeLoad.limit).toBe(4);
    expect((await t.metrics.scanSpacing.get()).values[0]!.value).toBeGreaterThanOrEqual(0.25);
  });
});

describe('the waiting-process gauges', () => {
  /** Series of `certprov_processes_waiting` a replica's metrics report. */
  const waitingSeries = async (metrics: Metrics) => (await metrics.processesWaiting.get()).values.length;

  it('are counted by one replica of several on one store; the others report none, and take over when it stops', async () => {
    const { t, gate } = await gated({ config: { scheduler: { pollInterval: '100ms' } } });
    gate.holding = false;
    const counts = vi.spyOn(t.store, 'countActive');
    const replicas = [t.metrics, new Metrics({ defaultMetrics: false })].map((metrics, i) => ({
      metrics,
      engine: engineOn(t, { metrics, replicaId: `replica-${i}` }),
    }));
    for (const { engine } of replicas) engine.start();
    await expect.poll(() => counts.mock.calls.length).toBe(1);
    for (let round = 2; round <= 4; round += 1) {
      t.advance(6_000); // past the 5 s interval of both replicas
      await expect.poll(() => counts.mock.calls.length).toBe(round);
      await sleep(300); // several loop turns of both: the old scheduler counted on each replica
      expect(counts).toHaveBeenCalledTimes(round);
    }
    const series = await Promise.all(replicas.map(({ metrics }) => waitingSeries(metrics)));
    expect(series.toSorted()).toEqual([0, 6]); // one replica reports every active step, the other nothing
    const counting = replicas[series.indexOf(6)]!;
    const other = replicas[series.indexOf(0)]!;

    await counting.engine.stop(0);
    t.advance(6_000);
    await expect.poll(() => waitingSeries(other.metrics)).toBe(6);
  });

  it('a large count spaces the next one out by a millisecond per record counted, up to a minute', async () => {
    const { t, gate } = await gated({ config: { scheduler: { pollInterval: '100ms' } } });
    gate.holding = false;
    let waiting = 20_000; // on Firestore a count of 20,000 records is billed 20 reads
    const counts = vi
      .spyOn(t.store, 'countActive')
      .mockImplementation(() => Promise.resolve({ start: waiting - 100, await_signature: 100 }));
    engineOn(t).start();
    await expect.poll(() => counts.mock.calls.length).toBe(1);
    t.advance(6_000); // past the 5 s interval, not 20 s
    await sleep(500);
    expect(counts).toHaveBeenCalledTimes(1);
    waiting = 500_000;
    t.advance(14_100);
    await expect.poll(() => counts.mock.calls.length).toBe(2);
    t.advance(59_000); // 500,000 records: a minute at most, not 500 s
    await sleep(500);
    expect(counts).toHaveBeenCalledTimes(2);
    t.advance(1_100);
    await expect.poll(() => counts.mock.calls.length).toBe(3);
  });

  it('a slow count spaces the next one out to ten times its duration', async () => {
    const { t, gate } = await gated({ config: { scheduler: { pollInterval: '100ms' } } });
    gate.holding = false;
    const countActive = t.store.countActive.bind(t.store);
    const counts = vi.spyOn(t.store, 'countActive').mockImplementation(() => {
      t.advance(2_000); // a store that scans takes 2 s to count
      return countActive();
    });
    engineOn(t).start();
    await expect.poll(() => counts.mock.calls.length).toBe(1);
    t.advance(6_000); // 8 s after the count began: past the 5 s interval, not 10 × 2 s
    await sleep(500);
    expect(counts).toHaveBeenCalledTimes(1);
    t.advance(13_000); // 21 s after
    await expect.poll(() => counts.mock.calls.length).toBe(2);
  });
});

/**
 * `count` processes that asked their devices (which never sign) and now wait for their signature check, run by an
 * engine of their own that is stopped again: the records are released, at `await_signature`.
 */
async function waitingForDevices(t: StepHarness, count: number): Promise<string[]> {
  const waiting = Array.from({ length: count }, () => newProcess(t));
  const engine = engineOn(t);
  engine.start();
  for (const id of waiting) await engine.submit(ref(id));
  await expect
    .poll(async () => {
      const records = await Promise.all(waiting.map((id) => t.record(id)));
      return records.every((r) => r.step === 'await_signature' && r.lease === undefined);
    })
    .toBe(true);
  await engine.stop(1_000);
  return waiting;
}

/** The processes `t`'s store is asked to lease, in order: what the engine launched. */
function launchesOf(t: StepHarness): string[] {
  const launched: string[] = [];
  const tryLease = t.store.tryLease.bind(t.store);
  vi.spyOn(t.store, 'tryLease').mockImplementation((id, owner, ttlMs) => {
    launched.push(id);
    return tryLease(id, owner, ttlMs);
  });
  return launched;
}

describe('the order of work: processes already started before new ones', () => {
  it('in a burst of new processes, signature checks and uploads of started ones run between the starts', async () => {
    const events: ('start' | 'upload')[] = [];
    const t = await start({
      tenant: { signDelayMs: 0 },
      config: { scheduler: { maxConcurrent: 2 } },
      // Each start takes at least 20 ms (its claim), so the burst's starts alone take about 600 ms; the first
      // signature check is due 30 ms after the first signData.
      wrapChrome: (real) => ({
        get: (ref, ctx) => real.get(ref, ctx),
        claim: async (ref, instanceId, ctx) => {
          await sleep(20);
          return real.claim(ref, instanceId, ctx);
        },
        signData: async (ref, data, algorithm, ctx) => {
          const operation = await real.signData(ref, data, algorithm, ctx);
          events.push('start');
          return operation;
        },
        getOperation: (name, ctx) => real.getOperation(name, ctx),
        uploadCertificate: async (ref, pem, ctx) => {
          await real.uploadCertificate(ref, pem, ctx);
          events.push('upload');
        },
        setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
      }),
    });
    // The burst as a store that acknowledges at once holds it: every record written, all due, oldest first.
    const clock = () => Date.now();
    const ids = Array.from({ length: 60 }, () => newProcess(t));
    for (const [i, id] of ids.entries()) await record(t, id, clock() - 1_000 + i);
    const engine = engineOn(t, { now: clock });
    engine.start();

    await expect.poll(() => events.filter((e) => e === 'upload').length, { timeout: 30_000 }).toBe(60);
    const lastStart = events.lastIndexOf('start');
    const uploadsBeforeLastStart = events.slice(0, lastStart).filter((e) => e === 'upload').length;
    // Oldest-due-first ran all 60 starts before the first upload; now certificates come out all through the burst.
    expect(events.indexOf('upload')).toBeLessThan(30);
    expect(uploadsBeforeLastStart).toBeGreaterThanOrEqual(10);
  });

  it('a process submitted while due work waits for a slot queues behind it instead of taking the slot', async () => {
    let holdNextCheck = false;
    let releaseHeld: () => void = () => undefined;
    const t = await start({
      tenant: { signDelayMs: 'never' },
      config: { scheduler: { maxConcurrent: 2 } },
      // The first signature check of the second engine is held, so one slot stays taken.
      wrapChrome: (real) => ({
        get: (ref, ctx) => real.get(ref, ctx),
        claim: (ref, instanceId, ctx) => real.claim(ref, instanceId, ctx),
        signData: (ref, data, algorithm, ctx) => real.signData(ref, data, algorithm, ctx),
        getOperation: async (name, ctx) => {
          if (holdNextCheck) {
            holdNextCheck = false;
            await new Promise<void>((resolve) => (releaseHeld = resolve));
          }
          return real.getOperation(name, ctx);
        },
        uploadCertificate: (ref, pem, ctx) => real.uploadCertificate(ref, pem, ctx),
        setFailure: (ref, message, ctx) => real.setFailure(ref, message, ctx),
      }),
    });
    // Three processes waiting for their device, then all three checks due (the clock stands still from here).
    const waiting = await waitingForDevices(t, 3);
    t.advance(60_000);
    const launched = launchesOf(t);
    // The second scan (a slot freed) waits until the test lets it go: a submit arrives between slot and scan.
    let scans = 0;
    let letScanGo: () => void = () => undefined;
    const scanMayGo = new Promise<void>((resolve) => (letScanGo = resolve));
    const findDue = t.store.findDue.bind(t.store);
    vi.spyOn(t.store, 'findDue').mockImplementation(async (now, limit, options) => {
      scans += 1;
      if (scans === 2) await scanMayGo;
      return findDue(now, limit, options);
    });
    holdNextCheck = true;
    const second = engineOn(t);
    second.start();

    // The first scan filled both slots with checks; one is held, the other finished and freed its slot.
    await expect.poll(() => scans, { timeout: 5_000 }).toBe(2);
    expect(launched).toHaveLength(2);
    const fresh = newProcess(t);
    await second.submit(ref(fresh));
    letScanGo();
    await expect.poll(() => launched.length).toBe(3);
    // The free slot went to the third due check, not to the process submitted meanwhile.
    const checks = [...launched];
    expect(new Set(checks)).toEqual(new Set(waiting));
    releaseHeld();
    await expect.poll(() => launched).toEqual([...checks, fresh]);
  });

  it('gives new work one launch in four while continuing work is due all along, and continuing work the rest', async () => {
    const t = await start({ tenant: { signDelayMs: 'never' }, config: { scheduler: { maxConcurrent: 1 } } });
    // Twelve processes that asked their devices (which never sign) and wait for their check.
    const waiting = await waitingForDevices(t, 12);
    // Four new processes, due long before any check; then every check comes due. The clock stands still from here,
    // so each record runs once: a check finds no signature and waits, a start asks its device and waits.
    const fresh = Array.from({ length: 4 }, () => newProcess(t));
    for (const id of fresh) await record(t, id, t.clock - 60_000);
    t.advance(60_000);
    const launched = launchesOf(t);
    const second = engineOn(t);
    second.start();

    await expect.poll(() => launched.length, { timeout: 10_000 }).toBe(16);
    await sleep(200); // several scans: nothing else is due
    expect(launched).toHaveLength(16);
    const kinds = launched.map((id) => (fresh.includes(id) ? 'S' : 'C')).join('');
    expect(kinds).toBe('CCCSCCCSCCCSCCCS');
    expect(new Set(launched)).toEqual(new Set([...waiting, ...fresh]));
  });
});
