import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateProvisioningProcess, Operation, SignatureAlgorithm } from '../../../src/chrome/types.ts';
import { SandboxTenant, type KeyPool } from '../../../src/sandbox/index.ts';
import { testKeyPool } from '../../support/keys.ts';
import { claim, createTestCa, getOperation, getProcess, signData, uploadCertificate } from './sandbox-http.ts';

let pool: KeyPool;
let tenant: SandboxTenant;

beforeAll(async () => {
  pool = await testKeyPool();
  tenant = await SandboxTenant.start();
});
afterAll(() => tenant.close());

describe('createProcesses', () => {
  it('mixes RSA/EC keys and device/user subjects in exact shares, each key type with its share of users', () => {
    const ids = tenant.createProcesses(16, { pool });
    const combos = new Map<string, number>();
    let affiliated = 0;
    for (const id of ids) {
      const process = tenant.process(id);
      const keyType = createPublicKey({
        key: Buffer.from(process.subjectPublicKeyInfo ?? '', 'base64'),
        format: 'der',
        type: 'spki',
      }).asymmetricKeyType;
      const subject = process.chromeOsUserSession === undefined ? 'device' : 'user';
      if (process.chromeOsUserSession?.chromeOsDevice !== undefined) affiliated += 1;
      const combo = `${keyType}/${subject}`;
      combos.set(combo, (combos.get(combo) ?? 0) + 1);
      expect(process.genericProfile?.profileAdapterConfigReference).toBe(
        subject === 'user' ? 'user_profile' : 'device_profile',
      );
    }
    expect(Object.fromEntries(combos)).toEqual({ 'rsa/device': 4, 'rsa/user': 4, 'ec/device': 4, 'ec/user': 4 });
    expect(affiliated).toBe(4);
    expect(new Set(ids).size).toBe(16);
  });

  it('passes common options through and honours shares of 0 and 1', () => {
    const ids = tenant.createProcesses(4, { pool, ecShare: 1, userShare: 0, shape: 'flat', caConnection: 'trial_ca' });
    for (const id of ids) {
      const process = tenant.process(id);
      expect(process.caConnectionAdapterConfigReference).toBe('trial_ca');
      expect(process.chromeOsDevice?.serialNumber).toMatch(/^SBX/);
      expect(
        createPublicKey({ key: Buffer.from(process.subjectPublicKeyInfo ?? '', 'base64'), format: 'der', type: 'spki' })
          .asymmetricKeyType,
      ).toBe('ec');
    }
  });
});

describe('scale', () => {
  it('serves 1,000 processes end to end with 100 concurrent clients', async () => {
    const local = await SandboxTenant.start();
    try {
      const ca = await createTestCa();
      const ids = local.createProcesses(1_000, { pool });
      // One leaf per distinct pool key: processes share keys (src/sandbox/key-pool.ts).
      const leafBySpki = new Map<string, string>();
      for (const id of ids) {
        const spki = local.process(id).subjectPublicKeyInfo ?? '';
        if (!leafBySpki.has(spki)) leafBySpki.set(spki, await ca.issueLeaf(Buffer.from(spki, 'base64')));
      }
      const started = performance.now();
      const queue = [...ids];
      const client = async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
          const spki =
            ((await getProcess(local, id)).body as CertificateProvisioningProcess).subjectPublicKeyInfo ?? '';
          await claim(local, id);
          const started = await signData(local, id, Buffer.from(`info ${id}`), algorithmOfSpki(spki));
          let operation = started.body as Operation;
          while (operation.done !== true) {
            await new Promise((r) => setTimeout(r, 10));
            operation = (await getOperation(local, operation.name)).body as Operation;
          }
          await uploadCertificate(local, id, leafBySpki.get(spki) ?? '');
        }
      };
      await Promise.all(Array.from({ length: 100 }, client));
      await local.waitUntilFinished(ids, 10_000);
      const elapsedMs = performance.now() - started;
      expect(local.stats()).toMatchObject({
        processes: 1_000,
        issued: 1_000,
        failed: 0,
        rejectedUploads: 0,
        doubleSignData: 0,
      });
      const requests = Object.values(local.requests).reduce((a, b) => a + b, 0);
      console.log(`sandbox: 1,000 processes in ${Math.round(elapsedMs)} ms, ${requests} requests`);
    } finally {
      await local.close();
    }
  });
});

function algorithmOfSpki(spkiBase64: string): SignatureAlgorithm {
  const type = createPublicKey({
    key: Buffer.from(spkiBase64, 'base64'),
    format: 'der',
    type: 'spki',
  }).asymmetricKeyType;
  return type === 'ec' ? 'SIGNATURE_ALGORITHM_ECDSA_SHA256' : 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256';
}
