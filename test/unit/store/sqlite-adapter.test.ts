/**
 * The adapter on the sqlite store (in-process source, sandbox tenant, local CA): a message is acknowledged as soon
 * as its record is written, and a device that takes its time to sign holds neither a message nor a running step —
 * the same policy as Firestore, unlike the memory store, which holds each message until its process has finished.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { InProcessMessageSource } from '../../../src/pubsub/in-process-source.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('the adapter on the sqlite store', () => {
  it('acknowledges each message once recorded; slow devices hold no message and no step while they sign', async () => {
    rig = await AdapterRig.start({
      logLevel: 'warn',
      tenant: { signDelayMs: 5_000 },
      config: { store: { type: 'sqlite', path: 'state/certprov.db' } },
    });
    expect(rig.adapter.store.kind).toBe('sqlite');
    const pool = await testKeyPool();
    const ids = rig.tenant.createProcesses(20, { pool, ecShare: 0.5, userShare: 0.5 });
    for (const id of ids) await rig.notify(id);
    const source = rig.source as InProcessMessageSource;
    await expect.poll(() => source.acked, { timeout: 5_000 }).toBe(ids.length);
    // Acknowledged before any device signed: every process is waiting in the store, nothing in memory.
    expect(rig.tenant.stats().issued).toBe(0);
    expect(source.inFlight).toBe(0);
    await expect.poll(() => rig?.adapter.engine.inFlight, { timeout: 5_000 }).toBe(0);
    expect(rig.tenant.stats().issued).toBe(0);

    await rig.tenant.waitUntilFinished(ids, 30_000);
    expect(rig.tenant.stats()).toMatchObject({ issued: ids.length, doubleSignData: 0 });
  });
});
