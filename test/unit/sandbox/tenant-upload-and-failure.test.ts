import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxTenant, type KeyPool } from '../../../src/sandbox/index.ts';
import { testKeyPool } from '../../support/keys.ts';
import {
  call,
  claim,
  claimAndSign,
  createTestCa,
  errorOf,
  processPath,
  setFailure,
  uploadCertificate,
  type TestCa,
} from './sandbox-http.ts';

let pool: KeyPool;
let tenant: SandboxTenant;
let ca: TestCa;

beforeAll(async () => {
  [pool, tenant, ca] = await Promise.all([testKeyPool(), SandboxTenant.start(), createTestCa()]);
});
afterAll(() => tenant.close());

async function signedProcess(type: 'rsa-2048' | 'ec-p256') {
  const key = pool.next(type);
  const id = tenant.createProcess({ key });
  await claimAndSign(tenant, id, key);
  return { id, key };
}

describe('uploadCertificate', () => {
  it.each(['rsa-2048', 'ec-p256'] as const)(
    'accepts one %s leaf carrying the device SPKI and finishes the process',
    async (type) => {
      const { id, key } = await signedProcess(type);
      const leaf = await ca.issueLeaf(key.spkiDer);
      const response = await uploadCertificate(tenant, id, leaf);
      expect([response.status, response.body]).toEqual([200, {}]);
      expect(tenant.process(id).issuedCertificate).toBe(leaf);
      expect(tenant.process(id).failureMessage).toBeUndefined();
      expect(tenant.counters(id)).toMatchObject({ uploads: 1, rejectedUploads: 0 });
      await expect(tenant.waitUntilFinished([id], 100)).resolves.toBeUndefined();
    },
  );

  it.each([
    ['a chain (leaf + CA)', async (spki: Uint8Array) => (await ca.issueLeaf(spki)) + ca.certificatePem],
    // the process holds an RSA key, so any EC key of the pool is another key
    ['a leaf for another key', () => ca.issueLeaf(pool.next('ec-p256').spkiDer)],
    [
      'a PEM block that does not parse',
      () => Promise.resolve('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
    ],
    ['no certificate at all', () => Promise.resolve('hello')],
  ])('the device refuses %s: 200, failureMessage set, counted as rejected', async (_what, makePem) => {
    const { id, key } = await signedProcess('rsa-2048');
    const response = await uploadCertificate(tenant, id, await makePem(key.spkiDer));
    expect([response.status, response.body]).toEqual([200, {}]);
    const process = tenant.process(id);
    expect(process.issuedCertificate).toBeUndefined();
    expect(process.failureMessage).toMatch(/rejected the certificate/);
    expect(tenant.counters(id)).toMatchObject({ uploads: 1, rejectedUploads: 1 });
    // finished: a retry is refused
    expect((await uploadCertificate(tenant, id, await ca.issueLeaf(key.spkiDer))).status).toBe(400);
  });

  it('refuses an upload before the device signed with 400 FAILED_PRECONDITION', async () => {
    const key = pool.next('ec-p256');
    const id = tenant.createProcess({ key });
    await claim(tenant, id);
    const response = await uploadCertificate(tenant, id, await ca.issueLeaf(key.spkiDer));
    expect([response.status, errorOf(response).status]).toEqual([400, 'FAILED_PRECONDITION']);
    expect(tenant.process(id).issuedCertificate).toBeUndefined();
  });

  it('rejects a missing certificatePem with 400 INVALID_ARGUMENT', async () => {
    const { id } = await signedProcess('ec-p256');
    const response = await call(`${processPath(tenant, id)}:uploadCertificate`, { body: {} });
    expect([response.status, errorOf(response).status]).toEqual([400, 'INVALID_ARGUMENT']);
  });
});

describe('setFailure', () => {
  it('marks a claimed process failed with the message', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    await claim(tenant, id);
    const response = await setFailure(tenant, id, 'The CA could not issue the certificate. (ref abc123)');
    expect([response.status, response.body]).toEqual([200, {}]);
    expect(tenant.process(id).failureMessage).toBe('The CA could not issue the certificate. (ref abc123)');
    expect(tenant.counters(id).setFailures).toBe(1);
    const again = await setFailure(tenant, id, 'again');
    expect([again.status, errorOf(again).status]).toEqual([400, 'FAILED_PRECONDITION']);
  });

  it('rejects an empty errorMessage with 400 INVALID_ARGUMENT', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    await claim(tenant, id);
    const response = await setFailure(tenant, id, '');
    expect([response.status, errorOf(response).status]).toEqual([400, 'INVALID_ARGUMENT']);
    expect(tenant.process(id).failureMessage).toBeUndefined();
  });
});

describe('observation', () => {
  it('waitUntilFinished rejects after its timeout while a process is unfinished', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    await expect(tenant.waitUntilFinished([id], 50)).rejects.toThrow(/1 of 1 sandbox processes not finished/);
  });

  it('waitUntilFinished resolves once every listed process finished, in any order', async () => {
    const ids = [0, 1, 2].map(() => tenant.createProcess({ key: pool.next('rsa-2048'), preClaimedBy: 'adapter-1' }));
    const waiting = tenant.waitUntilFinished(ids, 2_000);
    for (const id of [...ids].reverse()) await setFailure(tenant, id, 'stop');
    await expect(waiting).resolves.toBeUndefined();
  });

  it('stats() sums the counters and outcomes of every process', async () => {
    const local = await SandboxTenant.start();
    try {
      const key = pool.next('ec-p256');
      const issued = local.createProcess({ key });
      await claimAndSign(local, issued, key);
      await uploadCertificate(local, issued, await ca.issueLeaf(key.spkiDer));
      const failed = local.createProcess({ key, preClaimedBy: 'adapter-1' });
      await setFailure(local, failed, 'no');
      local.createProcess({ key });
      expect(local.stats()).toMatchObject({
        processes: 3,
        claimed: 2,
        issued: 1,
        failed: 1,
        unfinished: 1,
        claims: 1,
        signDataCalls: 1,
        uploads: 1,
        setFailures: 1,
      });
      expect(local.requests).toMatchObject({ claim: 1, signData: 1, uploadCertificate: 1, setFailure: 1 });
    } finally {
      await local.close();
    }
  });
});
