/**
 * Revocation of inventory certificates (src/lifecycle/revoke.ts): certificates issued by the workflow (local CA,
 * memory store) are revoked by device; a connection without the ability is reported per certificate and the batch
 * goes on; the inventory and the audit lines record it; a second revocation reports "already revoked".
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { revokeCertificates } from '../../../src/lifecycle/revoke.ts';
import { createCertificateAuthorities } from '../../../src/adapter.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import type { CaConnection } from '../../../src/ca/connection.ts';
import { queryOf } from '../../../src/cli/certs.ts';
import type { Logger } from '../../../src/observability/logger.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('revoking inventory certificates', () => {
  it('revokes a device’s certificates on a local CA (listed on its CRL), reports a connection that cannot revoke, and records both', async () => {
    const store = new MemoryProcessStore();
    rig = await AdapterRig.start({ store });
    const pool = await testKeyPool();
    const device = { kind: 'device', serialNumber: 'SER-9', deviceDirectoryApiId: 'dir-9' } as const;
    const ids = [
      rig.tenant.createProcess({ key: pool.next('ec-p256'), subject: device }),
      rig.tenant.createProcess({ key: pool.next('ec-p256'), subject: device }),
    ];
    for (const id of ids) await rig.notify(id);
    await rig.tenant.waitUntilFinished(ids, 15_000);

    const targets = await store.findCertificates(queryOf({ device: 'SER-9' }, Date.now()));
    expect(targets).toHaveLength(2);
    const real = await createCertificateAuthorities(
      rig.config,
      rig.adapter.engine['deps'].log,
      new Metrics({ defaultMetrics: false }),
    );
    const local = real.get('default_ca_config')!;
    const lines: Record<string, unknown>[] = [];
    const capture = { info: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger;
    const ctx = { signal: new AbortController().signal, log: capture };

    // The first certificate's connection cannot revoke (a backend without the ability); the second can.
    const cannot: CaConnection = { ...local, type: 'scep-like', abilities: {} };
    const [first, second] = targets as [(typeof targets)[0], (typeof targets)[0]];
    const mixed = await revokeCertificates(
      { store, cas: new Map([['default_ca_config', cannot]]), ctx, now: () => 1_000 },
      [first],
      'keyCompromise',
      'lost device',
    );
    expect(mixed).toEqual([expect.objectContaining({ serial: first.serial, outcome: 'unsupported' })]);
    const reports = await revokeCertificates(
      { store, cas: real, ctx, now: () => 2_000 },
      [first, second],
      'keyCompromise',
      'lost device',
    );
    expect(reports.map((r) => r.outcome)).toEqual(['listed', 'listed']);
    for (const t of [first, second]) {
      expect(await store.getCertificate(t.caConnection, t.serial)).toMatchObject({
        status: 'revoked',
        revocation: { state: 'revoked', at: 2_000, reason: 'keyCompromise' },
      });
    }
    expect(lines.filter((l) => l.audit === 'certificate_revoked').map((l) => l.serial)).toEqual([
      first.serial,
      second.serial,
    ]);
    expect(JSON.stringify(lines)).not.toContain('SER-9');
    const again = await revokeCertificates(
      { store, cas: real, ctx, now: () => 3_000 },
      [(await store.getCertificate(first.caConnection, first.serial))!],
      'unspecified',
      'again',
    );
    expect(again[0]?.outcome).toBe('already_revoked');
  });
});
