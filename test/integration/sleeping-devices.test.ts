/**
 * Devices sleep: a Chromebook with its lid closed signs hours later, and a signData whose answer was a 503 may never
 * have reached it. The wait must not fail devices that were never asked, and polling must not scale with the wait.
 * (Request counts are asserted here; times are the benchmark's business: `npm run bench sleeping-devices`.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AdapterRig } from '../support/adapter-rig.ts';
import { configWarnings } from '../../src/config/warnings.ts';
import { testKeyPool } from '../support/keys.ts';
import { deviceSigningAfterSleep, deviceSigningSoon, finishOnSimulatedClock } from '../support/sleeping-device.ts';
import { MemoryProcessStore } from '../../src/store/memory.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('a device that signs after a long sleep', () => {
  it('signing at once costs 5 Chrome requests: get, claim, signData, one signature check, upload', async () => {
    const result = await deviceSigningSoon(await testKeyPool(), 20);
    expect(result.issued).toBe(true);
    expect(result.counters).toMatchObject({ gets: 1, claims: 1, signDataCalls: 1, operationGets: 1, uploads: 1 });
    expect(result.requests).toBe(5);
  });

  it('signing after 8 hours asleep (simulated clock) is issued with one signData and at most 50 requests', async () => {
    const result = await deviceSigningAfterSleep(await testKeyPool(), 8 * 3_600_000);
    expect(result.issued).toBe(true);
    expect(result.signDataCalls).toBe(1);
    expect(result.requests).toBeLessThanOrEqual(50);
    // Not scaling with the wait: one check per 15 minutes at most once the backoff reached its ceiling.
    expect(result.requests).toBeGreaterThanOrEqual(8 * 4);
  }, 120_000);
});

describe('an unclear signData that never reached the device', () => {
  it('a burst of 503s on 15 % of signData calls, signatureTimeout 60s, default request timeouts: every device is issued, none asked twice', async () => {
    // The workflow's clock is simulated: the 2 × requestTimeout (60 s) an unclear signData is waited out before the
    // device is asked again passes in scheduler rounds, not in real time (finishOnSimulatedClock).
    const clock = { t: Date.now() };
    const now = () => clock.t;
    const store = new MemoryProcessStore({ now });
    rig = await AdapterRig.start({
      logLevel: 'info',
      store,
      now,
      // The defaults that matter: requestTimeout 30s (an unclear signData is known not to have arrived 60 s later),
      // and the documented signature polling (200 ms doubling up to 15 min, capped by that 60 s).
      config: {
        chrome: { signatureTimeout: '60s', requestTimeout: '30s' },
        scheduler: { signaturePollInitial: '200ms', signaturePollMax: '15m', pollInterval: '20ms' },
      },
    });
    expect(configWarnings(rig.config)).toEqual([
      expect.stringMatching(/^chrome\.signatureTimeout \(1m\) leaves no room/),
    ]);
    const pool = await testKeyPool();
    const ids = rig.tenant.createProcesses(20, { pool });
    rig.tenant.faults = { burst503: 3, methods: ['signData'] };
    const startedAt = clock.t;
    for (const id of ids) await rig.notify(id);
    await finishOnSimulatedClock(rig, store, clock, ids, 60_000);
    const asked = ids.map((id) => rig?.tenant.counters(id));
    expect(ids.filter((id) => rig?.tenant.process(id).issuedCertificate === undefined)).toEqual([]);
    expect(asked.filter((c) => (c?.doubleSignData ?? 0) > 0)).toEqual([]);
    // Each device was asked once; three signData requests were refused before they were applied (503) and sent
    // again with a full deadline once the process showed, 2 × requestTimeout later, that they never arrived.
    expect(asked.every((c) => c?.signDataCalls === 1)).toBe(true);
    expect(rig.tenant.requests.signData).toBe(23);
    const askedAgain = rig.logs
      .entries()
      .filter((e) => e.message === 'the unclear signData request never reached the process; asking the device again');
    expect(askedAgain).toHaveLength(3);
    // Not before the 60 s had passed on the workflow's clock.
    for (const line of askedAgain) expect(line.waitedMs).toBeGreaterThanOrEqual(60_000);
    expect(clock.t - startedAt).toBeGreaterThanOrEqual(60_000);
  }, 120_000);
});
