import { createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../../src/chrome/types.ts';
import {
  SIGN_DATA_METADATA_TYPE,
  SIGN_DATA_RESPONSE_TYPE,
  SandboxTenant,
  type DeviceKey,
  type KeyPool,
} from '../../../src/sandbox/index.ts';
import { testKeyPool } from '../../support/keys.ts';
import { algorithmOf, claim, claimAndSign, errorOf, getOperation, pollOperation, signData } from './sandbox-http.ts';

let pool: KeyPool;
let tenant: SandboxTenant;

beforeAll(async () => {
  pool = await testKeyPool();
  tenant = await SandboxTenant.start();
});
afterAll(() => tenant.close());

function verifies(key: DeviceKey, data: Buffer, signatureBase64: string, dsaEncoding?: 'der' | 'ieee-p1363'): boolean {
  const publicKey = createPublicKey({ key: key.spkiDer, format: 'der', type: 'spki' });
  const signature = Buffer.from(signatureBase64, 'base64');
  return verify('sha256', data, dsaEncoding === undefined ? publicKey : { key: publicKey, dsaEncoding }, signature);
}

async function claimed(options: Omit<Parameters<SandboxTenant['createProcess']>[0], 'key'>, key: DeviceKey) {
  const id = tenant.createProcess({ key, ...options });
  expect((await claim(tenant, id)).status).toBe(200);
  return id;
}

describe('signData', () => {
  it('returns a running Operation, then the device signs and the operation is done with the resource', async () => {
    const key = pool.next('rsa-2048');
    const id = await claimed({ signDelayMs: 60 }, key);
    const data = Buffer.from('0\x82certification request info');
    const started = await signData(tenant, id, data, 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256');
    expect(started.status).toBe(200);
    const operation = started.body as Operation;
    expect(operation.name).toMatch(
      new RegExp(`^customers/my_customer/certificateProvisioningProcesses/${id}/operations/[A-Za-z0-9_-]+$`),
    );
    expect(operation.metadata).toEqual({ '@type': SIGN_DATA_METADATA_TYPE, startTime: expect.any(String) as unknown });
    expect(operation.done).toBeUndefined();
    // signData is recorded on the resource at once, before the device answers (resume after a crash reads it).
    expect(tenant.process(id)).toMatchObject({
      signData: data.toString('base64'),
      signatureAlgorithm: 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256',
    });
    expect(tenant.process(id).signature).toBeUndefined();
    expect(((await getOperation(tenant, operation.name)).body as Operation).done).toBeUndefined();

    const done = await pollOperation(tenant, operation.name);
    expect(done.response?.['@type']).toBe(SIGN_DATA_RESPONSE_TYPE);
    const process = done.response?.certificateProvisioningProcess;
    expect(process?.signData).toBe(data.toString('base64'));
    expect(verifies(key, data, process?.signature ?? '')).toBe(true);
    expect(tenant.process(id).signature).toBe(process?.signature);
    expect(tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0 });
  });

  it.each([
    ['DER (default)', undefined, 'der'],
    ['raw r||s', 'ieee-p1363', 'ieee-p1363'],
  ] as const)('signs with ECDSA P-256 SHA-256, %s', async (_label, ecdsaEncoding, verifyAs) => {
    const key = pool.next('ec-p256');
    const data = Buffer.from('ec certification request info');
    const id = tenant.createProcess({ key, ...(ecdsaEncoding === undefined ? {} : { ecdsaEncoding }) });
    const process = await claimAndSign(tenant, id, key, data);
    const signature = Buffer.from(process.signature ?? '', 'base64');
    if (verifyAs === 'der') expect(signature[0]).toBe(0x30);
    else expect(signature.length).toBe(64);
    expect(verifies(key, data, process.signature ?? '', verifyAs)).toBe(true);
  });

  it('accepts URL-safe base64 without padding, as proto3 JSON does', async () => {
    const key = pool.next('ec-p256');
    const id = await claimed({}, key);
    const data = Buffer.from([0xfb, 0xff, 0xfe, 0x01]);
    const response = await signData(tenant, id, data.toString('base64url'), algorithmOf(key));
    expect(response.status).toBe(200);
    const done = await pollOperation(tenant, (response.body as Operation).name);
    expect(done.response?.certificateProvisioningProcess?.signData).toBe(data.toString('base64'));
    expect(verifies(key, data, done.response?.certificateProvisioningProcess?.signature ?? '')).toBe(true);
  });

  it.each([
    ['an ECDSA algorithm for an RSA key', 'rsa-2048', 'SIGNATURE_ALGORITHM_ECDSA_SHA256', 'AQID'],
    ['an RSA algorithm for an EC key', 'ec-p256', 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', 'AQID'],
    ['the UNSPECIFIED algorithm', 'ec-p256', 'SIGNATURE_ALGORITHM_UNSPECIFIED', 'AQID'],
    ['an unknown algorithm', 'rsa-2048', 'SIGNATURE_ALGORITHM_RSA_PSS', 'AQID'],
    ['bad base64', 'rsa-2048', 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', 'not base64!'],
    ['empty signData', 'rsa-2048', 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', ''],
  ] as const)(
    'rejects %s with 400 INVALID_ARGUMENT and leaves the process untouched',
    async (_what, type, algorithm, data) => {
      const id = await claimed({}, pool.next(type));
      const response = await signData(tenant, id, data, algorithm);
      expect(response.status).toBe(400);
      expect(errorOf(response).status).toBe('INVALID_ARGUMENT');
      expect(tenant.process(id).signData).toBeUndefined();
      expect(tenant.process(id).failureMessage).toBeUndefined();
    },
  );

  it('is one-shot: a second signData after the signature fails the process on the device and is counted', async () => {
    const key = pool.next('rsa-2048');
    const id = tenant.createProcess({ key });
    const signed = await claimAndSign(tenant, id, key);
    const second = await signData(tenant, id, Buffer.from('again'), algorithmOf(key));
    expect(second.status).toBe(200);
    const secondOp = await pollOperation(tenant, (second.body as Operation).name);
    expect(secondOp.error?.code).toBe(3);
    expect(secondOp.error?.message).toContain('CERTIFICATE_PROVISIONING_RESULT_ERROR');
    const process = tenant.process(id);
    expect(process.failureMessage).toBeTruthy();
    expect(process.signData).toBe(signed.signData);
    expect(tenant.counters(id)).toMatchObject({ signDataCalls: 2, doubleSignData: 1 });
  });

  it('is one-shot: a second signData while the device has not answered fails both operations', async () => {
    const key = pool.next('ec-p256');
    const id = await claimed({ deviceOffline: true }, key);
    const first = (await signData(tenant, id, Buffer.from('one'), algorithmOf(key))).body as Operation;
    const second = (await signData(tenant, id, Buffer.from('two'), algorithmOf(key))).body as Operation;
    for (const name of [first.name, second.name]) {
      const operation = await pollOperation(tenant, name);
      expect(operation.error).toEqual({
        code: 3,
        message: expect.stringContaining('CERTIFICATE_PROVISIONING_RESULT_ERROR') as unknown,
      });
    }
    expect(tenant.process(id).failureMessage).toBeTruthy();
    expect(tenant.process(id).signature).toBeUndefined();
    expect(tenant.counters(id).doubleSignData).toBe(1);
    // finished now: a third call is refused outright
    expect((await signData(tenant, id, Buffer.from('three'), algorithmOf(key))).status).toBe(400);
  });

  it('a refusing device ends the operation with error code 3 and fails the process', async () => {
    const key = pool.next('rsa-2048');
    const id = await claimed({ deviceRefuses: true }, key);
    const started = (await signData(tenant, id, Buffer.from('x'), algorithmOf(key))).body as Operation;
    const done = await pollOperation(tenant, started.name);
    expect(done.error?.code).toBe(3);
    expect(done.error?.message).toContain('CERTIFICATE_PROVISIONING_RESULT_ERROR_INVALID_SIGNATURE');
    expect(done.response).toBeUndefined();
    expect(tenant.process(id).failureMessage).toBeTruthy();
    await expect(tenant.waitUntilFinished([id], 1_000)).resolves.toBeUndefined();
  });

  it.each(['rsa-2048', 'ec-p256'] as const)(
    'a device with the badSignature fault returns a %s signature that does not verify',
    async (type) => {
      const key = pool.next(type);
      const data = Buffer.from('the real bytes');
      const id = tenant.createProcess({ key, badSignature: true });
      const process = await claimAndSign(tenant, id, key, data);
      expect(process.signature).toBeTruthy();
      expect(verifies(key, data, process.signature ?? '')).toBe(false);
    },
  );

  it('an offline device never signs until it comes online', async () => {
    const key = pool.next('ec-p256');
    const id = await claimed({ signDelayMs: 'never' }, key);
    const started = (await signData(tenant, id, Buffer.from('wait'), algorithmOf(key))).body as Operation;
    await new Promise((r) => setTimeout(r, 100));
    expect(((await getOperation(tenant, started.name)).body as Operation).done).toBeUndefined();
    tenant.deviceComesOnline(id);
    const done = await pollOperation(tenant, started.name);
    expect(verifies(key, Buffer.from('wait'), done.response?.certificateProvisioningProcess?.signature ?? '')).toBe(
      true,
    );
  });

  it('answers 404 for an unknown operation', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const response = await getOperation(tenant, `${tenant.process(id).name}/operations/unknown`);
    expect([response.status, errorOf(response).status]).toEqual([404, 'NOT_FOUND']);
  });
});
