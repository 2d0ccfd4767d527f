/**
 * Chrome API requests per certificate for a device that signs at once, after a few seconds, or after hours with its
 * lid closed. Short waits run in real time; hours run on a simulated clock: the workflow (deadlines, due times) and
 * the memory store read `clock.t`, and whenever the adapter is idle the clock jumps to the next due record — the
 * scheduler then runs it at once. Everything else is real: the engine, the HTTP calls, the sandbox device's keys.
 * Shared by the integration test (asserts the targets) and `npm run bench` (reports them). No vitest imports.
 */
import { AdapterRig, type RawConfig } from './adapter-rig.ts';
import type { KeyPool } from '../../src/sandbox/index.ts';
import type { ProcessCounters } from '../../src/sandbox/simulated-process.ts';
import { MemoryProcessStore } from '../../src/store/memory.ts';

export interface SleepingDeviceResult {
  readonly issued: boolean;
  /** Every Chrome API request that reached the process (get, claim, signData, operations.get, upload, setFailure). */
  readonly requests: number;
  readonly signDataCalls: number;
  readonly counters: ProcessCounters;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The defaults that matter here (chrome.signatureTimeout, scheduler.signaturePoll*) stay the documented ones. */
const SETTINGS: RawConfig = {
  chrome: { signatureTimeout: '24h', requestTimeout: '30s' },
  scheduler: { signaturePollInitial: '200ms', signaturePollMax: '15m', pollInterval: '20ms' },
};

function total(c: ProcessCounters): number {
  return c.gets + c.claims + c.signDataCalls + c.operationGets + c.uploads + c.setFailures;
}

/** A device that signs `signAfterMs` (real time) after signData: the short cases. */
export async function deviceSigningSoon(pool: KeyPool, signAfterMs: number): Promise<SleepingDeviceResult> {
  const rig = await AdapterRig.start({ logLevel: 'warn', config: SETTINGS });
  try {
    const id = rig.tenant.createProcess({ key: pool.next('ec-p256'), signDelayMs: signAfterMs });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], signAfterMs + 60_000);
    return result(rig, id);
  } finally {
    await rig.stop();
  }
}

/** A device that signs after `sleepMs` of simulated time (its lid closed). */
export async function deviceSigningAfterSleep(pool: KeyPool, sleepMs: number): Promise<SleepingDeviceResult> {
  const clock = { t: Date.now() };
  const now = () => clock.t;
  const store = new MemoryProcessStore({ now });
  const rig = await AdapterRig.start({ logLevel: 'warn', config: SETTINGS, store, now });
  try {
    const id = rig.tenant.createProcess({ key: pool.next('ec-p256'), deviceOffline: true });
    await rig.notify(id);
    await until(() => Promise.resolve(rig.tenant.counters(id).signDataCalls === 1), 10_000, 'signData');
    const wakeAt = clock.t + sleepMs;
    let awake = false;
    for (let round = 0; round < 10_000; round += 1) {
      const record = await store.get(id);
      if (record === undefined || record.step === 'done') break;
      // Idle: nothing leased, the record waits for its due time. Wake the device when its time has come.
      if (record.lease !== undefined || rig.adapter.engine.inFlight > 0) {
        await sleep(2);
        continue;
      }
      if (!awake && record.dueAt >= wakeAt) {
        clock.t = Math.max(clock.t, wakeAt);
        rig.tenant.deviceComesOnline(id, 0);
        await until(() => Promise.resolve(rig.tenant.process(id).signature !== undefined), 10_000, 'the device signs');
        awake = true;
      }
      const version = record.version;
      clock.t = Math.max(clock.t, record.dueAt);
      // The scheduler picks the record up within its poll interval; wait until the step ran.
      await until(async () => ((await store.get(id))?.version ?? version + 1) > version, 10_000, 'the next check');
    }
    await rig.tenant.waitUntilFinished([id], 10_000);
    return result(rig, id);
  } finally {
    await rig.stop();
  }
}

/**
 * Runs the rig's adapter on a simulated clock until every process of `ids` has finished: whenever the adapter is
 * idle (nothing leased, nothing in flight, nothing due), `clock.t` jumps to the next due time and the scheduler runs
 * that record at once. Waits measured by the workflow (an unclear signData's 2 × requestTimeout, signature polls)
 * then cost scheduler rounds instead of real time; everything else (HTTP calls, the sandbox devices) stays real.
 * The rig must have been started with `now: () => clock.t` and `store` built on the same clock.
 */
export async function finishOnSimulatedClock(
  rig: AdapterRig,
  store: MemoryProcessStore,
  clock: { t: number },
  ids: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const finished = () =>
    ids.every(
      (id) =>
        rig.tenant.process(id).issuedCertificate !== undefined || rig.tenant.process(id).failureMessage !== undefined,
    );
  while (!finished()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${ids.length} processes`);
    const records = await Promise.all(ids.map((id) => store.get(id)));
    const next = await store.nextDueAt();
    const idle = rig.adapter.engine.inFlight === 0 && records.every((r) => r?.lease === undefined);
    if (idle && next !== undefined && next > clock.t) clock.t = next;
    await sleep(2);
  }
}

function result(rig: AdapterRig, id: string): SleepingDeviceResult {
  const counters = rig.tenant.counters(id);
  return {
    issued: rig.tenant.process(id).issuedCertificate !== undefined,
    requests: total(counters),
    signDataCalls: counters.signDataCalls,
    counters,
  };
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}
