/**
 * Chrome API requests per certificate by how long the device takes to sign (issues 10 and 15): at once (the happy
 * path), within 5 s, and after 8 hours with its lid closed (simulated clock; test/support/sleeping-device.ts). The
 * documented defaults: first signature check 200 ms after signData, the gap doubling up to 15 min, 24 h timeout.
 */
import { KeyPool } from '../../src/sandbox/index.ts';
import { deviceSigningAfterSleep, deviceSigningSoon } from '../../test/support/sleeping-device.ts';
import type { BenchScenario } from '../scenario.ts';

const HOUR = 3_600_000;

const scenario: BenchScenario = {
  name: 'sleeping-devices',
  description: 'Chrome API requests per certificate: device signs at once, within 5 s, after 8 h asleep',
  async run({ quick }) {
    const pool = await KeyPool.generate({ 'ec-p256': 3 });
    const atOnce = await deviceSigningSoon(pool, 20);
    const withinFive = await deviceSigningSoon(pool, quick ? 1_000 : 4_900);
    const asleep = await deviceSigningAfterSleep(pool, quick ? HOUR : 8 * HOUR);
    return [
      {
        name: 'issued (of 3)',
        value: [atOnce, withinFive, asleep].filter((r) => r.issued).length,
        unit: '',
        target: '= 3',
      },
      {
        name: 'signData calls (all three)',
        value: atOnce.signDataCalls + withinFive.signDataCalls + asleep.signDataCalls,
        unit: '',
        target: '= 3',
      },
      { name: 'Chrome requests, device signs at once', value: atOnce.requests, unit: 'requests', target: '≤ 5' },
      {
        name: `Chrome requests, device signs after ${quick ? 1 : 4.9} s`,
        value: withinFive.requests,
        unit: 'requests',
        target: '≤ 10',
      },
      {
        name: `Chrome requests, device signs after ${quick ? 1 : 8} h`,
        value: asleep.requests,
        unit: 'requests',
        target: '≤ 50',
      },
    ];
  },
};
export default scenario;
