/**
 * With the memory store the intake holds each message until its process has finished (DESIGN.md §5): acked when the
 * certificate is issued, nacked at pubsub.maxExtension (the client stops extending the ack deadline then) and at
 * shutdown, so another replica or the redelivery takes over. Held messages share one deadline timer and no combined
 * AbortSignal: what is checked here is that each still ends the right way, in the right order.
 */
import { afterEach, expect, it } from 'vitest';
import type { InProcessMessageSource } from '../../../src/pubsub/in-process-source.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

async function sleepingDevices(r: AdapterRig, count: number): Promise<string[]> {
  const pool = await testKeyPool();
  return Array.from({ length: count }, () =>
    r.tenant.createProcess({ key: pool.next('ec-p256'), deviceOffline: true }),
  );
}

it('acks a message once its process is done, and holds it (unacked) while the device sleeps', async () => {
  rig = await AdapterRig.start();
  const source = rig.source as InProcessMessageSource;
  const pool = await testKeyPool();
  const quick = rig.tenant.createProcess({ key: pool.next('ec-p256') });
  const [asleep] = await sleepingDevices(rig, 1);
  await rig.notify(quick);
  await rig.notify(asleep as string);
  await expect.poll(() => rig?.counter('certprov_messages_acked_total'), { timeout: 10_000 }).toBe(1);
  expect(source.inFlight).toBe(1);
  expect(await rig.counter('certprov_messages_nacked_total')).toBe(0);
});

it('nacks held messages at pubsub.maxExtension, earliest first, and holds the redeliveries again', async () => {
  rig = await AdapterRig.start({ config: { pubsub: { maxExtension: '1s' } } });
  const source = rig.source as InProcessMessageSource;
  const first = await sleepingDevices(rig, 3);
  for (const id of first) await rig.notify(id);
  await expect.poll(() => source.inFlight, { timeout: 5_000 }).toBe(3);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const later = await sleepingDevices(rig, 2);
  for (const id of later) await rig.notify(id);
  await expect.poll(() => source.inFlight, { timeout: 5_000 }).toBe(5);
  // The first three reach their deadline about 0.5 s before the other two.
  await expect
    .poll(() => rig?.counter('certprov_messages_nacked_total', { reason: 'timeout' }), { timeout: 5_000, interval: 20 })
    .toBeGreaterThanOrEqual(3);
  expect(await rig.counter('certprov_messages_nacked_total', { reason: 'timeout' })).toBeLessThan(5);
  await expect
    .poll(() => rig?.counter('certprov_messages_nacked_total', { reason: 'timeout' }), { timeout: 5_000, interval: 20 })
    .toBeGreaterThanOrEqual(5);
  // Redelivered (the processes are known, so nothing is asked twice) and held again.
  await expect.poll(() => source.inFlight, { timeout: 5_000 }).toBe(5);
  expect(await rig.counter('certprov_messages_acked_total')).toBe(0);
  expect(rig.tenant.stats().signDataCalls).toBe(5);
});

it('nacks every held message at shutdown, promptly, however long their deadline', async () => {
  rig = await AdapterRig.start();
  const source = rig.source as InProcessMessageSource;
  const ids = await sleepingDevices(rig, 20);
  for (const id of ids) await rig.notify(id);
  await expect.poll(() => source.inFlight, { timeout: 10_000 }).toBe(20);
  await expect.poll(() => rig?.tenant.stats().signDataCalls, { timeout: 10_000 }).toBe(20);
  // A 60 min maxExtension must not hold shutdown up: the test's own timeout would end it.
  await rig.stopAdapter();
  expect(await rig.counter('certprov_messages_nacked_total', { reason: 'shutdown' })).toBe(20);
  expect(source.inFlight).toBe(0);
  expect(await rig.counter('certprov_messages_acked_total')).toBe(0);
});
