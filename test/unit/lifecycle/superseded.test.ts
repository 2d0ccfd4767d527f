/**
 * Revoke-after-grace: a profile with `revokeSupersededAfter` has its superseded certificates revoked (reason
 * `superseded`) once the grace has passed — not before — and the connection's CRL lists them; a profile without the
 * setting keeps its superseded certificates; a replica without the lease does nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { createCertificateAuthorities } from '../../../src/adapter.ts';
import { revokeSupersededOnce, type SupersededDependencies } from '../../../src/lifecycle/superseded.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';

let rig: AdapterRig | undefined;
let work: string | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

const HOUR = 3_600_000;

describe('revoking superseded certificates after the grace period', () => {
  it('revokes them once the grace has passed, lists them on the CRL, and leaves other profiles alone', async () => {
    const store = new MemoryProcessStore();
    work = await mkdtemp(path.join(tmpdir(), 'certprov-grace-'));
    await initLocalCa({ directory: path.join(work, 'ca'), keyType: 'ec' });
    rig = await AdapterRig.start({
      store,
      logLevel: 'warn',
      caConnections: {
        default_ca_config: {
          type: 'local',
          directory: path.join(work, 'ca'),
          crl: { url: 'http://crl.example/c.crl' },
        },
      },
      profiles: {
        device_profile: {
          subject: 'CN={{device.serialNumber}},O=certprov test',
          validity: '30d',
          revokeSupersededAfter: '1h',
        },
        user_profile: { subject: 'CN={{user.userPrimaryEmail}},O=certprov test', validity: '30d' },
      },
    });
    const connections = await createCertificateAuthorities(
      rig.config,
      silentLogger(),
      new Metrics({ defaultMetrics: false }),
    );

    const pool = await testKeyPool();
    const device = { kind: 'device', serialNumber: 'SER-G', deviceDirectoryApiId: 'dir-g' } as const;
    const user = { kind: 'user', userPrimaryEmail: 'grace@example.com', userDirectoryApiId: 'u-g' } as const;
    for (const subject of [device, device, user, user]) {
      const id = rig.tenant.createProcess({ key: pool.next('ec-p256'), subject });
      await rig.notify(id);
      await rig.tenant.waitUntilFinished([id], 15_000);
    }
    const superseded = await store.findCertificates({ status: 'superseded' });
    expect(superseded.map((c) => c.profile).sort()).toEqual(['device_profile', 'user_profile']);
    const deviceOld = superseded.find((c) => c.profile === 'device_profile')!;

    const deps = (now: number, owner = 'replica-a'): SupersededDependencies => ({
      store,
      cas: connections,
      profiles: rig!.config.profiles,
      owner,
      log: silentLogger(),
      now: () => now,
      signal: new AbortController().signal,
    });
    expect(await revokeSupersededOnce(deps(Date.now() + HOUR / 2))).toEqual([]);
    expect((await store.getCertificate(deviceOld.caConnection, deviceOld.serial))?.status).toBe('superseded');

    await store.tryNamedLease('revoke-superseded', 'replica-b', 60_000);
    expect(await revokeSupersededOnce(deps(Date.now() + 2 * HOUR))).toEqual([]);
    await store.releaseNamedLease('revoke-superseded', 'replica-b');

    const reports = await revokeSupersededOnce(deps(Date.now() + 2 * HOUR));
    expect(reports).toEqual([{ caConnection: 'default_ca_config', serial: deviceOld.serial, outcome: 'listed' }]);
    expect(await store.getCertificate(deviceOld.caConnection, deviceOld.serial)).toMatchObject({
      status: 'revoked',
      revocation: { state: 'revoked', reason: 'superseded' },
    });
    // The user profile has no grace setting: its superseded certificate stays as it is.
    expect(await store.findCertificates({ profile: 'user_profile', status: 'superseded' })).toHaveLength(1);
    const crl = await store.getCrl('default_ca_config');
    expect(crl?.entries).toBe(1);
    // Nothing left to do in the next round.
    expect(await revokeSupersededOnce(deps(Date.now() + 3 * HOUR))).toEqual([]);
  });
});
