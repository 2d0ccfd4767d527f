/**
 * The Cloud KMS-held CA against the fake KMS, one behaviour per test: one AsymmetricSign per certificate, the
 * CRC32C integrity fields checked both ways, the CA certificate checked against the pinned key version at load,
 * KMS refusals mapped to the outcome classes (DESIGN.md §5), and `certprov kms-ca csr` through Application Default
 * Credentials (the fake metadata server, as on GKE) with a CSR openssl verifies and the parent CA signs.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { crc32c } from '../../../src/ca/google-kms/crc32c.ts';
import { kmsCaConfigSchema } from '../../../src/ca/google-kms/config.ts';
import { KmsCa } from '../../../src/ca/google-kms/kms-ca.ts';
import { kmsCaCommand } from '../../../src/cli/kms-ca.ts';
import { DeploymentFaultError, RetryableError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { FakeKms } from '../../fakes/google-kms/fake-kms.ts';
import { createKmsIssuingCa, fakeGoogleAuth, type KmsCaFixture } from '../../fakes/google-kms/kms-ca-fixture.ts';
import { OpensslParentCa } from '../../fakes/key-vault/issuing-ca-fixture.ts';
import { deviceRequest, stepContext } from '../../fakes/key-vault/device-request.ts';
import { FakeMetadataServer } from '../../support/fake-metadata-server.ts';
import { testKeyPool } from '../../support/keys.ts';
import { csrText, subjectLines, verifyCertificate, verifyCsr } from '../../support/openssl.ts';
import { rejection } from '../../support/rejection.ts';

let kms: FakeKms;
let ec: KmsCaFixture;
const toClose: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const pool = await testKeyPool();
  kms = await FakeKms.start({ rsaKey: () => pool.next('rsa-2048').privateKey });
  ec = await createKmsIssuingCa(kms);
});
afterAll(async () => {
  for (const close of toClose.reverse()) await close();
  await ec.close();
  await kms.close();
});

async function open(fixture: KmsCaFixture, overrides: Record<string, unknown> = {}, now?: () => Date) {
  const config = kmsCaConfigSchema.parse(fixture.connection(overrides));
  const ca = await KmsCa.create(
    'kms_ca',
    config,
    { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir: fixture.dir },
    { auth: fakeGoogleAuth(), ...(now === undefined ? {} : { now }) },
  );
  toClose.push(() => ca.close());
  return ca;
}

describe('crc32c', () => {
  it('is CRC-32C (Castagnoli): the check value of "123456789" is 0xE3069283', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });
});

describe('issuing through Cloud KMS', () => {
  it('signs each certificate with exactly one AsymmetricSign, and the leaf verifies against the chain', async () => {
    const ca = await open(ec);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()); // loads the key once
    const before = kms.signCalls;
    const results = [];
    for (let i = 0; i < 3; i += 1) results.push(await ca.issue(deviceRequest(pool.next('rsa-2048')), stepContext()));
    expect(kms.signCalls - before).toBe(3);
    expect(ca.signCalls).toBe(4);
    for (const result of results) {
      if (result.status !== 'issued') throw new Error(JSON.stringify(result));
      const verdict = await verifyCertificate(result.certificatePem, ec.parent.rootPem, {
        untrusted: result.chainPem,
      });
      expect(verdict.ok, verdict.stderr).toBe(true);
    }
  });

  it.each([
    ['a signature whose CRC32C does not match', 'signatureCrc32c'],
    ['an answer that did not verify the digest CRC32C', 'verifiedDigest'],
    ['an answer for another key version', 'name'],
  ] as const)('refuses %s (retryable: signing again is safe)', async (_label, field) => {
    const ca = await open(ec);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    kms.tamperNext(field);
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).not.toBeInstanceOf(DeploymentFaultError);
    // The next attempt is clean again.
    expect((await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext())).status).toBe('issued');
  });

  it('the fake refuses a digest whose CRC32C does not match, as KMS does (INVALID_ARGUMENT)', async () => {
    const response = await fetch(`${kms.url}/v1/${ec.keyVersion}:asymmetricSign`, {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'content-type': 'application/json' },
      body: JSON.stringify({
        digest: { sha256: Buffer.alloc(32, 1).toString('base64') },
        digestCrc32c: String(crc32c(Buffer.alloc(32, 2))),
      }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { status: string } }).error.status).toBe('INVALID_ARGUMENT');
  });
});

describe('the CA certificate is checked against the key version at load', () => {
  it('a key version that is not the certificate key is a deployment fault, before anything is signed', async () => {
    const other = kms.createKeyVersion({
      cryptoKey: 'projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/other',
    });
    const ca = await open(ec, { keyVersion: other });
    const before = kms.signCalls;
    const error = await rejection(ca.issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toMatch(/is not the key of the CA certificate/);
    expect(kms.signCalls).toBe(before);
  });

  it('an algorithm that cannot sign certificates (secp256k1) is a deployment fault naming the supported ones', async () => {
    const odd = kms.createKeyVersion({
      algorithm: 'EC_SIGN_SECP256K1_SHA256',
      cryptoKey: 'projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/k1',
    });
    const error = await rejection((await open(ec, { keyVersion: odd })).probe(stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).hint).toMatch(/EC_SIGN_P256_SHA256/);
  });

  it('an expired CA certificate is a deployment fault', async () => {
    const ca = await open(ec, {}, () => new Date(Date.now() + 1_000 * 86_400_000));
    expect(
      await rejection(ca.issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext())),
    ).toBeInstanceOf(DeploymentFaultError);
  });

  it.each([
    [
      'an EKU that excludes clientAuth',
      'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\n',
      /the CA certificate: extendedKeyUsage \(serverAuth\) excludes clientAuth/,
    ],
    [
      'a keyUsage without keyCertSign',
      'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,digitalSignature,cRLSign\n',
      /the CA certificate: keyUsage lacks keyCertSign/,
    ],
  ])(
    'a CA certificate with %s cannot issue device certificates: a deployment fault naming the field, nothing signed',
    async (_, caExtensions, field) => {
      const fixture = await createKmsIssuingCa(kms, { caExtensions });
      toClose.push(() => fixture.close());
      const before = kms.signCalls;
      const ca = await open(fixture);
      const error = await rejection(ca.issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext()));
      expect(error).toBeInstanceOf(DeploymentFaultError);
      expect((error as Error).message).toMatch(/cannot issue device certificates/);
      expect((error as Error).message).toMatch(field);
      expect((error as DeploymentFaultError).hint).toMatch(/keyCertSign.*clientAuth.*caCertificateFile/);
      expect(kms.signCalls).toBe(before);
    },
  );

  it('probe reads the key afresh and says what it checked; it signs nothing', async () => {
    const before = kms.signCalls;
    const text = await (await open(ec)).probe(stepContext());
    expect(text).toContain(ec.keyVersion);
    expect(text).toMatch(/EC_SIGN_P256_SHA256, HSM/);
    expect(kms.signCalls).toBe(before);
  });
});

describe('KMS refusals map to the outcome classes', () => {
  it('PERMISSION_DENIED is a deployment fault naming roles/cloudkms.signerVerifier', async () => {
    const ca = await open(ec);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    kms.signers.add('someone-else');
    try {
      const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
      expect(error).toBeInstanceOf(DeploymentFaultError);
      expect((error as DeploymentFaultError).component).toBe('google-kms');
      expect((error as DeploymentFaultError).hint).toContain('roles/cloudkms.signerVerifier');
    } finally {
      kms.signers.clear();
    }
  });

  it('UNAUTHENTICATED is a deployment fault pointing at Workload Identity', async () => {
    const config = kmsCaConfigSchema.parse(ec.connection());
    const deps = { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir: ec.dir };
    kms.server.refusedTokens.add('revoked');
    const ca = await KmsCa.create('kms_ca', config, deps, { auth: fakeGoogleAuth('revoked') });
    toClose.push(() => ca.close());
    const error = await rejection(ca.probe(stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).hint).toMatch(/Workload Identity/);
  });

  it('a disabled key version (FAILED_PRECONDITION) is a deployment fault, not a failure of the device', async () => {
    const fixture = await createKmsIssuingCa(kms, {
      key: { cryptoKey: 'projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/disabled' },
    });
    toClose.push(() => fixture.close());
    const ca = await open(fixture);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    kms.setState(fixture.keyVersion, 'DISABLED');
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toMatch(/FAILED_PRECONDITION/);
  });

  it('INTERNAL is retried later by the workflow (retryable)', async () => {
    const ca = await open(ec);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    kms.server.failNext(1, { status: 'INTERNAL', match: /asymmetricSign$/ });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).not.toBeInstanceOf(DeploymentFaultError);
  });

  it('one UNAVAILABLE is retried by the client (a sign is safe to repeat) and the certificate is issued', async () => {
    const ca = await open(ec);
    const pool = await testKeyPool();
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    const before = kms.signCalls;
    kms.server.failNext(1, { status: 'UNAVAILABLE', match: /asymmetricSign$/ });
    expect((await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext())).status).toBe('issued');
    // The scripted failure is answered before the fake counts a sign; the retry is the one counted.
    expect(kms.signCalls - before).toBe(1);
  });
});

describe('certprov kms-ca csr', () => {
  const ENV_KEYS = ['GCE_METADATA_HOST', 'GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_CONFIG', 'NO_PROXY'] as const;
  const saved = new Map<string, string | undefined>();
  let metadata: FakeMetadataServer;
  let dir: string;
  let err: string[];

  beforeAll(async () => {
    metadata = await FakeMetadataServer.start();
    dir = await mkdtemp(path.join(tmpdir(), 'certprov-kms-csr-'));
    for (const key of ENV_KEYS) saved.set(key, process.env[key]);
    Reflect.deleteProperty(process.env, 'GOOGLE_APPLICATION_CREDENTIALS');
    process.env.GCE_METADATA_HOST = metadata.host;
    process.env.CLOUDSDK_CONFIG = dir;
    process.env.NO_PROXY = '127.0.0.1,localhost';
  });
  afterAll(async () => {
    for (const [key, value] of saved) {
      if (value === undefined) Reflect.deleteProperty(process.env, key);
      else process.env[key] = value;
    }
    await metadata.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    kms.signers.clear();
  });

  async function csr(keyVersion: string, ...args: string[]): Promise<number> {
    const configFile = path.join(dir, 'certprov.yaml');
    await writeFile(
      configFile,
      JSON.stringify({
        caConnections: {
          kms_ca: { type: 'google-kms', keyVersion, caCertificateFile: 'not-yet.pem', endpoint: kms.url },
        },
        profiles: {},
      }),
    );
    err = [];
    vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => void err.push(parts.join(' ')));
    return kmsCaCommand.run(['csr', '--config', configFile, ...args]);
  }

  it('writes a CSR signed through KMS with the ADC token; openssl verifies it and the parent CA signs it', async () => {
    const keyVersion = kms.createKeyVersion({
      algorithm: 'RSA_SIGN_PKCS1_2048_SHA256',
      cryptoKey: 'projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/csr-rsa',
    });
    // Only the token the metadata server hands out may sign: the command used Application Default Credentials.
    kms.signers.add(metadata.accessToken);
    const out = path.join(dir, 'ca.csr');
    const code = await csr(keyVersion, '--subject', 'CN=Example Device Issuing CA 2026,O=Example', '--out', out);
    expect(code, err.join('\n')).toBe(0);
    const pem = await readFile(out, 'utf8');
    expect((await verifyCsr(pem)).ok).toBe(true);
    expect(await subjectLines(pem, 'req')).toEqual(['CN=Example Device Issuing CA 2026', 'O=Example']);
    expect(await csrText(pem)).toMatch(/sha256WithRSAEncryption/);
    expect(err.join('\n')).toMatch(/caConnections\.kms_ca\.caCertificateFile/);
    const parent = await OpensslParentCa.create(dir);
    const caPem = await parent.sign(pem);
    expect((await verifyCertificate(caPem, parent.rootPem)).ok).toBe(true);
  });

  it('a caller without the sign permission gets exit code 1 and the role to grant', async () => {
    kms.signers.add('someone-else');
    const code = await csr(ec.keyVersion, '--subject', 'CN=Example CA');
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/roles\/cloudkms\.signerVerifier/);
  });
});
