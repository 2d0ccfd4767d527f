/**
 * Expiry in metrics and logs: a local CA whose certificate ends in 20 days, a profile asking for 30 — each leaf is
 * shortened to the CA's end and logged at warn; the CA expiry gauge carries the CA's notAfter; the inventory count
 * of certificates expiring within 30 days (not 7) per connection follows the issued leaves.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { recordExpiringCertificates } from '../../../src/lifecycle/expiry.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';

let rig: AdapterRig | undefined;
let work: string | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function gauge(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = (await rig!.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((v) =>
    Object.entries(labels).every(([k, want]) => v.labels[k] === want),
  )?.value;
}

describe('expiry', () => {
  it('shortens leaves to a CA that ends sooner (warn), and exports the CA expiry and the expiring counts', async () => {
    work = await mkdtemp(path.join(tmpdir(), 'certprov-expiry-'));
    const ca = await initLocalCa({ directory: path.join(work, 'ca'), keyType: 'ec', validityDays: 20 });
    rig = await AdapterRig.start({
      logLevel: 'info',
      caConnections: { default_ca_config: { type: 'local', directory: path.join(work, 'ca') } },
    });
    const pool = await testKeyPool();
    const ids = rig.tenant.createProcesses(2, { pool, ecShare: 1, userShare: 0 });
    for (const id of ids) await rig.notify(id);
    await rig.tenant.waitUntilFinished(ids, 15_000);

    const warnings = rig.logs
      .entries()
      .filter((l) => l.level === 'warn' && String(l.message).includes('shortened the certificate'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({
      caConnection: 'default_ca_config',
      profile: 'device_profile',
      caNotAfter: ca.notAfter.toISOString(),
      profileValidityDays: 30,
    });
    const leaves = await rig.adapter.store.findCertificates({ caConnection: 'default_ca_config' });
    expect(leaves.every((l) => l.notAfter === ca.notAfter.getTime())).toBe(true);

    expect(
      await gauge('certprov_ca_certificate_expiry_timestamp_seconds', {
        ca_connection: 'default_ca_config',
        backend: 'local',
      }),
    ).toBe(Math.floor(ca.notAfter.getTime() / 1000));
    await recordExpiringCertificates({
      store: rig.adapter.store,
      connections: [{ name: 'default_ca_config' } as never],
      metrics: rig.metrics,
      log: silentLogger(),
      now: Date.now,
      signal: new AbortController().signal,
    });
    expect(await gauge('certprov_certificates_expiring', { ca_connection: 'default_ca_config', within: '30d' })).toBe(
      2,
    );
    expect(await gauge('certprov_certificates_expiring', { ca_connection: 'default_ca_config', within: '7d' })).toBe(0);
  });
});
