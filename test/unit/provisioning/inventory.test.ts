/**
 * The workflow writes the inventory: every uploaded certificate is a record with the process's identity, a renewal
 * supersedes the earlier certificate of the same holder and profile, and each issuance logs one audit line whose
 * identity is hashed. In-process source, sandbox tenant, local CA, memory store (inspected directly).
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { toHex } from '../../../src/pki/der.ts';

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

describe('inventory written by the workflow', () => {
  it('records each issued certificate, supersedes the earlier one of a device on renewal, and logs hashed audit lines', async () => {
    const store = new MemoryProcessStore();
    rig = await AdapterRig.start({ store });
    const pool = await testKeyPool();
    const device = { kind: 'device', serialNumber: 'SER-77', deviceDirectoryApiId: 'dir-77' } as const;
    const user = {
      kind: 'user',
      userPrimaryEmail: 'grace@example.com',
      userDirectoryApiId: 'udir-1',
      device: { serialNumber: 'SER-77', deviceDirectoryApiId: 'dir-77' },
    } as const;

    const first = rig.tenant.createProcess({ key: pool.next('ec-p256'), subject: device });
    const forUser = rig.tenant.createProcess({ key: pool.next('rsa-2048'), subject: user });
    await rig.notify(first);
    await rig.notify(forUser);
    await rig.tenant.waitUntilFinished([first, forUser], 15_000);
    const second = rig.tenant.createProcess({ key: pool.next('ec-p256'), subject: device });
    await rig.notify(second);
    await rig.tenant.waitUntilFinished([second], 15_000);

    const leafOf = (id: string) => parseCertificate(rig?.tenant.process(id).issuedCertificate ?? '');
    const [a, u, b] = [leafOf(first), leafOf(forUser), leafOf(second)];
    const firstRecord = await store.findByCorrelationId((await store.get(first))?.correlationId ?? '');
    expect(await store.getCertificate('default_ca_config', a.serialHex)).toMatchObject({
      serial: a.serialHex,
      caConnection: 'default_ca_config',
      issuer: 'CN=certprov test CA',
      notBefore: a.notBefore.getTime(),
      notAfter: a.notAfter.getTime(),
      spkiSha256: createHash('sha256').update(a.spkiDer).digest('hex'),
      profile: 'device_profile',
      processId: first,
      correlationId: firstRecord?.correlationId,
      customer: 'my_customer',
      holder: { device: { directoryId: 'dir-77', serialNumber: 'SER-77' } },
      status: 'superseded',
      supersededBy: b.serialHex,
    });
    expect((await store.getCertificate('default_ca_config', b.serialHex))?.status).toBe('active');
    expect(await store.getCertificate('default_ca_config', u.serialHex)).toMatchObject({
      status: 'active', // another holder (the user), another profile: not superseded by the device's renewal
      profile: 'user_profile',
      holder: {
        user: { directoryId: 'udir-1', email: 'grace@example.com' },
        device: { directoryId: 'dir-77', serialNumber: 'SER-77' },
      },
    });
    expect((await store.findCertificates({ user: 'GRACE@example.com' })).map((r) => r.serial)).toEqual([u.serialHex]);

    const audit = rig.logs.entries().filter((e) => typeof e.audit === 'string');
    expect(audit.filter((e) => e.audit === 'certificate_issued').map((e) => e.serial)).toEqual(
      expect.arrayContaining([a.serialHex, u.serialHex, b.serialHex]),
    );
    expect(audit.filter((e) => e.audit === 'certificate_issued')).toHaveLength(3);
    const issuedB = audit.find((e) => e.audit === 'certificate_issued' && e.serial === b.serialHex);
    expect(issuedB).toMatchObject({
      caConnection: 'default_ca_config',
      caKeyId: toHex(b.authorityKeyIdentifier ?? new Uint8Array()),
      profile: 'device_profile',
      processId: second,
    });
    expect(String(issuedB?.device)).toMatch(/^(sha256|hmac):[0-9a-f]{16}$/);
    expect(audit.find((e) => e.audit === 'certificate_superseded')).toMatchObject({
      serial: a.serialHex,
      supersededBy: b.serialHex,
    });
    // Clear identities stay out of the audit lines.
    const auditText = JSON.stringify(audit);
    for (const secret of ['grace@example.com', 'SER-77', 'dir-77', 'udir-1']) expect(auditText).not.toContain(secret);
  });
});
