/**
 * The case: DigiCert refuses the account (403 on orders) while users wait. The connection is paused as a
 * whole — per backoff interval one probe (its few DigiCert requests) and one ERROR line with the count of processes
 * held, not one per process — no user gets a failure, and once the permission is back every held process is
 * ordered exactly once. The whole adapter against the fake CertCentral, which answers 403 as DigiCert does.
 */
import { afterEach, expect, it } from 'vitest';
import { DigicertAdapterHarness } from '../../fakes/digicert/adapter-harness.ts';
import { testKeyPool } from '../../support/keys.ts';

const GATE_KEY = 'digicert:default_ca_config';

let harness: DigicertAdapterHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

it('DigiCert 403: one probe and one ERROR line per interval for ten waiting users; all ordered once after the fix', async () => {
  harness = await DigicertAdapterHarness.start({ scheduler: { retryInitial: '100ms', retryMax: '400ms' } });
  const h = harness;
  const gate = h.rig.adapter.engine.faultGate;
  const pool = await testKeyPool();
  const user = (n: number) =>
    h.tenant.createProcess({
      key: pool.next('ec-p256'),
      subject: { kind: 'user', userPrimaryEmail: `u${n}@example.com`, userDirectoryApiId: `udir-${n}` },
    });
  const faultLines = () =>
    h.log.entries().filter((e) => e.severity === 'ERROR' && String(e.message).startsWith('deployment fault'));

  h.fake.deniedOperations = new Set(['order']);
  const first = user(0);
  await h.notify(first);
  await expect.poll(() => gate.isFaulted(GATE_KEY), { timeout: 10_000 }).toBe(true);
  const others = Array.from({ length: 9 }, (_, i) => user(i + 1));
  for (const id of others) await h.notify(id);
  await expect.poll(() => gate.heldCount(GATE_KEY), { timeout: 10_000 }).toBeGreaterThanOrEqual(9);

  // Three more intervals with ten users waiting.
  // Per-process requests: orders and the reconciling look-ups before them (not the connection's background
  // status-changes poll, which runs on its own schedule whatever the number of processes).
  const perProcess = () => h.requests('order') + h.requests('list-orders') + h.requests('order-info');
  const [requestsBefore, linesBefore] = [perProcess(), faultLines().length];
  await expect.poll(() => faultLines().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(linesBefore + 3);
  const [requests, lines] = [perProcess() - requestsBefore, faultLines().length - linesBefore];
  // One probe per interval — a refused order, plus at most the look-up before it (and one probe in flight) — where
  // ten users retrying on their own would have sent at least ten per interval.
  expect(requests).toBeLessThanOrEqual(2 * (lines + 1));
  expect(Math.max(...faultLines().map((e) => Number(e.held)))).toBeGreaterThanOrEqual(9);

  h.fake.deniedOperations = new Set();
  await h.tenant.waitUntilFinished([first, ...others], 20_000);
  for (const id of [first, ...others]) {
    expect(h.tenant.counters(id).setFailures).toBe(0);
    expect(h.tenant.process(id).issuedCertificate).toBeDefined();
    expect(h.fake.ordersForProcess(id)).toHaveLength(1);
  }
  expect(gate.isFaulted(GATE_KEY)).toBe(false);
});
