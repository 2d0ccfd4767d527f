import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateProvisioningProcess } from '../../../src/chrome/types.ts';
import { ALREADY_CLAIMED_MESSAGE, SandboxTenant, checkUploadedCertificate } from '../../../src/sandbox/index.ts';
import type { KeyPool } from '../../../src/sandbox/key-pool.ts';
import { testKeyPool } from '../../support/keys.ts';
import {
  call,
  claim,
  errorOf,
  getProcess,
  processPath,
  setFailure,
  signData,
  uploadCertificate,
} from './sandbox-http.ts';

let pool: KeyPool;
let tenant: SandboxTenant;

beforeAll(async () => {
  pool = await testKeyPool();
  tenant = await SandboxTenant.start();
});
afterAll(() => tenant.close());

describe('claim', () => {
  it('claims an unclaimed process, and the same callerInstanceId may claim it again', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const first = await claim(tenant, id, 'adapter-a');
    const again = await claim(tenant, id, 'adapter-a');
    expect([first.status, first.body]).toEqual([200, {}]);
    expect([again.status, again.body]).toEqual([200, {}]);
    expect(tenant.claimedBy(id)).toBe('adapter-a');
    expect(tenant.counters(id).claims).toBe(2);
  });

  it('refuses another callerInstanceId with 400 FAILED_PRECONDITION and the documented message', async () => {
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    await claim(tenant, id, 'adapter-a');
    const other = await claim(tenant, id, 'adapter-b');
    expect(other.status).toBe(400);
    expect(errorOf(other)).toEqual({ code: 400, status: 'FAILED_PRECONDITION', message: ALREADY_CLAIMED_MESSAGE });
    expect(tenant.claimedBy(id)).toBe('adapter-a');
  });

  it('refuses a process pre-claimed by another instance', async () => {
    const id = tenant.createProcess({ key: pool.next('ec-p256'), preClaimedBy: 'someone-else' });
    const response = await claim(tenant, id, 'adapter-a');
    expect(response.status).toBe(400);
    expect(errorOf(response).message).toBe(ALREADY_CLAIMED_MESSAGE);
  });

  it.each([
    ['no callerInstanceId', {}],
    ['an empty callerInstanceId', { callerInstanceId: '' }],
    ['a non-string callerInstanceId', { callerInstanceId: 7 }],
    ['an unknown field', { callerInstanceId: 'a', extra: 1 }],
    ['a body that is not JSON', 'not json'],
  ])('rejects a claim with %s as 400 INVALID_ARGUMENT', async (_what, body) => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const response = await call(`${processPath(tenant, id)}:claim`, { body });
    expect(response.status).toBe(400);
    expect(errorOf(response).status).toBe('INVALID_ARGUMENT');
    expect(tenant.claimedBy(id)).toBeUndefined();
  });

  it('accepts the proto field name caller_instance_id, as proto3 JSON does', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const response = await call(`${processPath(tenant, id)}:claim`, { body: { caller_instance_id: 'snake' } });
    expect(response.status).toBe(200);
    expect(tenant.claimedBy(id)).toBe('snake');
  });
});

describe('calls that need a claimed, unfinished process', () => {
  const calls = {
    signData: (id: string) => signData(tenant, id, Buffer.from('x'), 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256'),
    uploadCertificate: (id: string) =>
      uploadCertificate(tenant, id, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----'),
    setFailure: (id: string) => setFailure(tenant, id, 'The CA could not issue the certificate.'),
  };

  it.each(Object.keys(calls) as (keyof typeof calls)[])(
    '%s on an unclaimed process is 400 FAILED_PRECONDITION',
    async (method) => {
      const id = tenant.createProcess({ key: pool.next('rsa-2048') });
      const before = tenant.process(id);
      const response = await calls[method](id);
      expect(response.status).toBe(400);
      expect(errorOf(response).status).toBe('FAILED_PRECONDITION');
      expect(tenant.process(id)).toEqual(before);
    },
  );

  it.each([
    ['signData', 'issued'],
    ['uploadCertificate', 'issued'],
    ['setFailure', 'issued'],
    ['signData', 'failed'],
    ['setFailure', 'failed'],
  ] as const)('%s on a process already %s is 400 FAILED_PRECONDITION', async (method, finished) => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048'), finished, preClaimedBy: 'adapter-1' });
    const before = tenant.process(id);
    const response = await calls[method](id);
    expect(response.status).toBe(400);
    expect(errorOf(response).status).toBe('FAILED_PRECONDITION');
    expect(tenant.process(id)).toEqual(before);
  });
});

describe('get', () => {
  it('serves the nested shape for a device', async () => {
    const key = pool.next('rsa-2048');
    const id = tenant.createProcess({
      key,
      subject: { kind: 'device', serialNumber: 'SN-1', deviceDirectoryApiId: 'dev-1' },
      caConnection: 'kv_private_ca',
      profile: 'device_profile',
    });
    const response = await getProcess(tenant, id);
    expect(response.status).toBe(200);
    const process = response.body as CertificateProvisioningProcess;
    expect(process).toEqual({
      name: `customers/my_customer/certificateProvisioningProcesses/${id}`,
      provisioningProfileId: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      subjectPublicKeyInfo: key.spkiDer.toString('base64'),
      chromeOsDevice: { serialNumber: 'SN-1', deviceDirectoryApiId: 'dev-1' },
      startTime: expect.any(String) as unknown,
      genericCaConnection: { caConnectionAdapterConfigReference: 'kv_private_ca' },
      genericProfile: { profileAdapterConfigReference: 'device_profile' },
    });
    expect(new Date(process.startTime ?? '').toISOString()).toBe(process.startTime);
    expect(tenant.counters(id).gets).toBe(1);
  });

  it('serves the older flat shape for an affiliated user', async () => {
    const id = tenant.createProcess({
      key: pool.next('ec-p256'),
      shape: 'flat',
      subject: {
        kind: 'user',
        userPrimaryEmail: 'a+b,c@example.com',
        userDirectoryApiId: '1234',
        device: { serialNumber: 'SN-2', deviceDirectoryApiId: 'dev-2' },
      },
    });
    const process = (await getProcess(tenant, id)).body as CertificateProvisioningProcess;
    expect(process.caConnectionAdapterConfigReference).toBe('default_ca_config');
    expect(process.profileAdapterConfigReference).toBe('user_profile');
    expect(process.genericCaConnection).toBeUndefined();
    expect(process.genericProfile).toBeUndefined();
    expect(process.chromeOsDevice).toBeUndefined();
    expect(process.chromeOsUserSession).toEqual({
      userPrimaryEmail: 'a+b,c@example.com',
      userDirectoryApiId: '1234',
      chromeOsDevice: { serialNumber: 'SN-2', deviceDirectoryApiId: 'dev-2' },
    });
  });

  it('leaves out what the subject lacks (unaffiliated user, device without serial)', async () => {
    const user = tenant.createProcess({
      key: pool.next('ec-p256'),
      subject: { kind: 'user', userPrimaryEmail: 'u@example.com' },
    });
    const device = tenant.createProcess({
      key: pool.next('ec-p256'),
      subject: { kind: 'device', deviceDirectoryApiId: 'd' },
    });
    const served = (await getProcess(tenant, user)).body as CertificateProvisioningProcess;
    expect(served.chromeOsUserSession).toEqual({ userPrimaryEmail: 'u@example.com' });
    expect(served.chromeOsDevice).toBeUndefined();
    expect(tenant.process(device).chromeOsDevice).toEqual({ deviceDirectoryApiId: 'd' });
  });

  it('serves SCEP processes with SCEP unions only; the SCEP connection names its configuration too', () => {
    const process = tenant.process(
      tenant.createProcess({ key: pool.next('rsa-2048'), shape: 'scep', caConnection: 'scep_connector_ca' }),
    );
    expect(process.scepCaConnection).toEqual({ caConnectionAdapterConfigReference: 'scep_connector_ca' });
    expect(process.scepProfile).toBeDefined();
    expect(process.genericCaConnection ?? process.caConnectionAdapterConfigReference).toBeUndefined();
  });

  it('answers my_customer for a process of a named customer, and 404 for another customer', async () => {
    const id = tenant.createProcess({ key: pool.next('rsa-2048'), customer: 'C01abcd' });
    expect((await getProcess(tenant, id)).status).toBe(200);
    expect((await call(processPath(tenant, id, 'my_customer'))).status).toBe(200);
    const wrong = await call(processPath(tenant, id, 'C09other'));
    expect(wrong.status).toBe(404);
    expect(errorOf(wrong).status).toBe('NOT_FOUND');
  });

  it('answers 404 NOT_FOUND for an unknown process and an unknown route', async () => {
    const unknown = await call(`${tenant.endpoint}/v1/customers/my_customer/certificateProvisioningProcesses/nope`);
    expect([unknown.status, errorOf(unknown).status]).toEqual([404, 'NOT_FOUND']);
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const badVerb = await call(`${processPath(tenant, id)}:delete`, { body: {} });
    expect(badVerb.status).toBe(404);
    const getOnVerb = await call(`${processPath(tenant, id)}:claim`);
    expect(getOnVerb.status).toBe(404);
  });

  it('serves a process created as issued with a certificate for the device key', () => {
    const key = pool.next('ec-p256');
    const process = tenant.process(tenant.createProcess({ key, finished: 'issued' }));
    expect(checkUploadedCertificate(process.issuedCertificate ?? '', key.spkiDer)).toBeUndefined();
    const rsaKey = pool.next('rsa-2048');
    const rsaProcess = tenant.process(tenant.createProcess({ key: rsaKey, finished: 'issued' }));
    expect(checkUploadedCertificate(rsaProcess.issuedCertificate ?? '', rsaKey.spkiDer)).toBeUndefined();
  });
});

describe('authentication and authorisation', () => {
  let secured: SandboxTenant;
  beforeAll(async () => {
    secured = await SandboxTenant.start({ expectedToken: 'token-123' });
  });
  afterAll(() => secured.close());

  it('answers 401 UNAUTHENTICATED without the expected bearer token', async () => {
    const id = secured.createProcess({ key: pool.next('rsa-2048') });
    const url = processPath(secured, id);
    const missing = await call(url);
    const wrong = await call(url, { token: 'token-999' });
    const right = await call(url, { token: 'token-123' });
    expect([missing.status, errorOf(missing).status]).toEqual([401, 'UNAUTHENTICATED']);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(wrong.status).toBe(401);
    expect(right.status).toBe(200);
    expect(secured.counters(id).gets).toBe(1);
  });

  it('answers 403 PERMISSION_DENIED to every call in forbidden mode, switchable at runtime', async () => {
    const id = secured.createProcess({ key: pool.next('rsa-2048') });
    secured.forbidden = true;
    const get = await call(processPath(secured, id), { token: 'token-123' });
    const claimed = await call(`${processPath(secured, id)}:claim`, {
      token: 'token-123',
      body: { callerInstanceId: 'a' },
    });
    expect([get.status, errorOf(get).status]).toEqual([403, 'PERMISSION_DENIED']);
    expect(claimed.status).toBe(403);
    expect(secured.claimedBy(id)).toBeUndefined();
    secured.forbidden = false;
    expect((await call(processPath(secured, id), { token: 'token-123' })).status).toBe(200);
  });
});
