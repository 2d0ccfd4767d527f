/**
 * The Key Vault CA backend against the fake vault, through the official SDKs: issuing with one sign call per
 * certificate from a pinned version (rotation does not move a running adapter), the material loaded once,
 * signing-only mode (Managed HSM), throttling backoff, 5xx retries and deployment faults that name the missing
 * permission. Certificates are judged by `openssl verify` against the merged chain.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_VAULT_API_VERSIONS, keyVaultCaConfigSchema } from '../../../src/ca/azure-key-vault/config.ts';
import { KeyVaultCa, type KeyVaultCaOptions } from '../../../src/ca/azure-key-vault/key-vault-ca.ts';
import type { IssueResult } from '../../../src/ca/types.ts';
import { DeploymentFaultError, RetryableError } from '../../../src/errors.ts';
import { createLogger, silentLogger, type Logger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import type { KeyPool } from '../../../src/sandbox/index.ts';
import { deviceRequest, stepContext } from '../../fakes/key-vault/device-request.ts';
import { FakeKeyVault } from '../../fakes/key-vault/fake-key-vault.ts';
import { FAKE_KEY_VAULT_TOKEN } from '../../fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa, lifecycleFor, type IssuingCaFixture } from '../../fakes/key-vault/issuing-ca-fixture.ts';
import { parseChain } from '../../../src/ca/azure-key-vault/lifecycle.ts';
import { splitPemBundle } from '../../../src/pki/pem.ts';
import { testKeyPool } from '../../support/keys.ts';
import { waitFor } from '../../support/pubsub.ts';
import { certificateText, openssl, verifyCertificate } from '../../support/openssl.ts';
import { rejection } from '../../support/rejection.ts';

let pool: KeyPool;
let rsaKey: KeyObject;
let vault: FakeKeyVault;
let ec: IssuingCaFixture;
const toClose: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pool = await testKeyPool();
  rsaKey = pool.next('rsa-2048').privateKey;
  vault = await FakeKeyVault.start({ keyFactory: (spec) => (spec.kty.startsWith('RSA') ? rsaKey : undefinedKey()) });
  ec = await createIssuingCa(vault, { certificateName: 'ec-ca' });
});
afterAll(async () => {
  for (const close of toClose.reverse()) await close();
  await ec?.close();
  await vault?.close();
});

// Let the fake generate EC keys itself (fast).
function undefinedKey(): KeyObject {
  return undefined as unknown as KeyObject;
}

interface Opened {
  readonly ca: KeyVaultCa;
  readonly sleeps: number[];
}

async function open(
  fixture: IssuingCaFixture,
  overrides: Record<string, unknown> = {},
  options: KeyVaultCaOptions = {},
  log: Logger = silentLogger(),
): Promise<Opened> {
  const sleeps: number[] = [];
  const config = keyVaultCaConfigSchema.parse(fixture.connection(overrides));
  const ca = await KeyVaultCa.create(
    'kv_ca',
    config,
    { log, metrics: new Metrics({ defaultMetrics: false }), baseDir: fixture.dir },
    {
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      random: () => 0.5,
      ...options,
    },
  );
  toClose.push(() => ca.close());
  return { ca, sleeps };
}

async function expectVerifies(
  result: IssueResult,
  fixture: { caPem: string; parent: { rootPem: string } },
  caPem = fixture.caPem,
): Promise<string> {
  if (result.status !== 'issued') throw new Error(`expected issued, got ${JSON.stringify(result)}`);
  const verdict = await verifyCertificate(result.certificatePem, fixture.parent.rootPem, {
    untrusted: [caPem],
    purpose: 'sslclient',
  });
  expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);
  return result.certificatePem;
}

describe('issuing', () => {
  it('issues certificates openssl verifies against the merged chain, with one Key Vault sign per certificate', async () => {
    const { ca } = await open(ec);
    const signsBefore = vault.signOperations.length;
    const authorizedSignsBefore = vault.signRequests().filter((r) => r.authorized).length;
    const count = 6;
    for (let i = 0; i < count; i += 1) {
      const key = pool.next(i % 2 === 0 ? 'ec-p256' : 'rsa-2048');
      const result = await ca.issue(deviceRequest(key), stepContext());
      await expectVerifies(result, ec);
      if (result.status === 'issued') expect(result.chainPem?.[0]).toBe(parseCertificateToPem(ec.caPem));
    }
    const signs = vault.signOperations.slice(signsBefore);
    expect(signs).toHaveLength(count);
    expect(vault.signRequests().filter((r) => r.authorized).length - authorizedSignsBefore).toBe(count);
    expect(new Set(signs.map((s) => s.kid))).toEqual(new Set([`${vault.url}/keys/ec-ca/${ec.version}`]));
    expect(signs.every((s) => s.alg === 'ES256')).toBe(true);
    expect(ca.signCalls).toBe(count);
  });

  it('loads the CA certificate and key once, shared by concurrent first issues, by pinned version only', async () => {
    const before = vault.requests.length;
    const { ca } = await open(ec);
    await Promise.all([0, 1, 2, 3].map(() => ca.issue(deviceRequest(pool.next('ec-p256')), stepContext())));
    const reads = vault.requests.slice(before).filter((r) => r.authorized && r.effectiveMethod === 'GET');
    expect(reads.map((r) => r.path).sort()).toEqual([`/certificates/ec-ca/${ec.version}`, `/keys/ec-ca/${ec.version}`]);
  });

  it.each([
    { label: 'RS256', rsaSignatureAlgorithm: 'RS256', oid: 'sha256WithRSAEncryption' },
    { label: 'PS256', rsaSignatureAlgorithm: 'PS256', oid: 'rsassaPss' },
  ] as const)('signs with an RSA CA key using $label', async ({ rsaSignatureAlgorithm, oid, label }) => {
    const rsa = await createIssuingCa(vault, {
      certificateName: `rsa-ca-${label.toLowerCase()}`,
      key: { type: 'rsa', rsaBits: 2048 },
    });
    toClose.push(() => rsa.close());
    const { ca } = await open(rsa, { rsaSignatureAlgorithm });
    const pem = await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), rsa);
    const dump = await certificateText(pem);
    expect(dump).toContain(`Signature Algorithm: ${oid}`);
    expect(vault.signOperations.at(-1)?.alg).toBe(label);
  });

  it('refuses a device key outside policy as a failed result, without calling Key Vault', async () => {
    const { ca } = await open(ec);
    const before = vault.signOperations.length;
    const weak = pool.next('rsa-1024');
    const request = { ...deviceRequest(pool.next('ec-p256')), spkiDer: new Uint8Array(weak.spkiDer) };
    const result = await ca.issue(request, stepContext());
    expect(result.status).toBe('failed');
    expect(vault.signOperations.length).toBe(before);
  });
});

describe('apiVersion', () => {
  it('is what the SDK sends on every request (as api%2Dversion)', async () => {
    const before = vault.requests.length;
    const { ca } = await open(ec, { apiVersion: '2025-07-01' });
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    const sent = vault.requests.slice(before);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((r) => r.apiVersion === '2025-07-01' && r.rawQuery.includes('api%2Dversion=2025-07-01'))).toBe(
      true,
    );
  });

  it.each(['7.9', '2026-01-01', '7.6-preview.2'])(
    'refuses %s at config load: only api-versions the installed SDK knows',
    (apiVersion) => {
      const result = keyVaultCaConfigSchema.safeParse(ec.connection({ apiVersion }));
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.path).toEqual(['apiVersion']);
      expect(result.error?.issues[0]?.message).toMatch(/installed Key Vault SDK knows: 7\.0, .*7\.6, 2025-07-01/);
    },
  );

  it('accepts every version the SDK declares (7.0 … 7.6, 2025-07-01)', () => {
    for (const apiVersion of KEY_VAULT_API_VERSIONS) {
      expect(keyVaultCaConfigSchema.parse(ec.connection({ apiVersion })).apiVersion).toBe(apiVersion);
    }
  });
});

describe('start-up checks that the CA certificate can issue device certificates', () => {
  it("a CA certificate whose EKU excludes clientAuth (merged behind kv-ca's back) is a deployment fault naming the field", async () => {
    const name = 'eku-ca';
    const lifecycle = lifecycleFor(vault, name);
    const pending = await lifecycle.create({ subject: 'CN=EKU CA', key: { type: 'ec' } });
    const caPem = await ec.parent.sign(pending.csrPem ?? '', {
      extensions:
        'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\n',
    });
    // kv-ca merge refuses it …
    await expect(lifecycle.merge(parseChain(caPem + ec.parent.rootPem))).rejects.toThrow(
      /extendedKeyUsage \(serverAuth\) excludes clientAuth/,
    );
    // … Key Vault itself does not look: merged with another tool, it is there.
    const x5c = [caPem, ec.parent.rootPem].map((pem) => Buffer.from(splitPemBundle(pem)[0]!.der).toString('base64'));
    const response = await fetch(`${vault.url}/certificates/${name}/pending/merge?api-version=7.5`, {
      method: 'POST',
      headers: { authorization: `Bearer ${FAKE_KEY_VAULT_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ x5c }),
    });
    expect(response.status).toBe(201);
    const version = String(((await response.json()) as { id: string }).id.split('/').at(-1));
    const { ca } = await open(ec, { certificateName: name, certificateVersion: version });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toMatch(
      /cannot issue device certificates: the CA certificate: extendedKeyUsage \(serverAuth\) excludes clientAuth/,
    );
  });
});

describe('rotation: a running adapter keeps its pinned version', () => {
  it('create + merge of a new version changes nothing for the running CA; the new version is used once configured', async () => {
    const fixture = await createIssuingCa(vault, { certificateName: 'rotating-ca' });
    toClose.push(() => fixture.close());
    const { ca: running } = await open(fixture);
    await expectVerifies(await running.issue(deviceRequest(pool.next('ec-p256')), stepContext()), fixture);

    const next = await fixture.rotate();
    expect(next.version).not.toBe(fixture.version);
    expect(vault.certificateVersions('rotating-ca')).toEqual([fixture.version, next.version]);

    // The old adapter, after the rotation: still the old key, still the old CA certificate.
    const oldLeaf = await expectVerifies(
      await running.issue(deviceRequest(pool.next('rsa-2048')), stepContext()),
      fixture,
    );
    expect(vault.signOperations.at(-1)?.kid).toBe(`${vault.url}/keys/rotating-ca/${fixture.version}`);
    expect(parseCertificate(oldLeaf).issuerNameDer).toEqual(parseCertificate(fixture.caPem).subjectNameDer);

    // Rolled out: certificateVersion = the new version.
    const { ca: rolled } = await open(fixture, { certificateVersion: next.version });
    const newLeaf = await rolled.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    await expectVerifies(newLeaf, fixture, next.caPem);
    expect(vault.signOperations.at(-1)?.kid).toBe(`${vault.url}/keys/rotating-ca/${next.version}`);
    // The old leaf does not chain to the new CA (a new key), the new one does.
    expect((await verifyCertificate(oldLeaf, fixture.parent.rootPem, { untrusted: [next.caPem] })).ok).toBe(false);
    // Both ran side by side during the roll-out.
    await expectVerifies(await running.issue(deviceRequest(pool.next('ec-p256')), stepContext()), fixture);
  });
});

describe('signing-only mode (Managed HSM: a key, and the CA certificate from a file)', () => {
  it('signs with the HSM key version and the certificate file; refuses a certificate of another key', async () => {
    const hsm = await FakeKeyVault.start({ kind: 'managed-hsm' });
    toClose.push(() => hsm.close());
    const { kid, version } = hsm.createKey('issuing-ca-key', { kty: 'EC-HSM', crv: 'P-384' });
    const fixture = ec;
    // docs/backends/azure-key-vault.md, "Managed HSM": the parent CA certifies the HSM key's public key (`az keyvault key download` gives it)
    // with `openssl x509 -new -force_pubkey`; no CSR, the private key never leaves the HSM.
    const publicKey = createPublicKey(hsm.privateKeyOf('issuing-ca-key', version)!);
    await writeFile(path.join(fixture.dir, 'hsm-pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }) as string);
    await writeFile(
      path.join(fixture.dir, 'ca-ext.cnf'),
      'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    const made = await openssl(
      [
        'x509',
        '-new',
        '-subj',
        '/CN=certprov HSM issuing CA/O=Example',
        '-force_pubkey',
        'hsm-pub.pem',
        '-CA',
        'root.pem',
        '-CAkey',
        'root.key',
        '-days',
        '1825',
        '-extfile',
        'ca-ext.cnf',
        '-out',
        'hsm-ca-cert.pem',
      ],
      { cwd: fixture.dir },
    );
    expect(made.code, made.stderr).toBe(0);
    const caPem = await readFile(path.join(fixture.dir, 'hsm-ca-cert.pem'), 'utf8');
    await writeFile(path.join(fixture.dir, 'hsm-ca.pem'), caPem);
    await writeFile(path.join(fixture.dir, 'chain.pem'), fixture.parent.rootPem);
    const connection = {
      vaultUrl: hsm.url,
      certificateName: undefined,
      certificateVersion: undefined,
      signingKey: { name: 'issuing-ca-key', version },
      caCertificateFile: 'hsm-ca.pem',
      chainFile: 'chain.pem',
    };
    const { ca } = await open(fixture, connection);
    const result = await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext());
    await expectVerifies(result, { caPem, parent: fixture.parent });
    expect(hsm.signOperations).toEqual([{ kid, alg: 'ES384' }]);
    if (result.status === 'issued') expect(result.chainPem).toHaveLength(2);
    expect(await ca.probe(stepContext())).toContain('ES384');

    // The certificate file of another key: found at load, nothing signed.
    const { ca: mismatched } = await open(fixture, {
      ...connection,
      caCertificateFile: path.basename(await writeCa(fixture, ec.caPem)),
    });
    const error = await rejection(mismatched.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toMatch(/is not the key of the CA certificate/);
    expect(hsm.signOperations).toHaveLength(1);
  });
});

describe('throttling and transient faults', () => {
  it('429 without Retry-After backs off 1, 2, 4, 8, 16 s (jittered ±20 %) and then succeeds', async () => {
    const { ca, sleeps } = await open(ec, { retry: { attempts: 6 } }, { random: Math.random });
    vault.failNext(5, {
      status: 429,
      match: /\/sign$/,
      body: {
        error: { code: 'Throttled', message: 'Request was not processed because too many requests were received.' },
      },
    });
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    expect(sleeps).toHaveLength(5);
    [1_000, 2_000, 4_000, 8_000, 16_000].forEach((base, i) => {
      expect(sleeps[i]).toBeGreaterThanOrEqual(base * 0.8);
      expect(sleeps[i]).toBeLessThan(base * 1.2);
    });
  });

  it('429 with Retry-After waits at least that long', async () => {
    const { ca, sleeps } = await open(ec);
    vault.failNext(1, { status: 429, match: /\/sign$/, headers: { 'retry-after': '7' } });
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    expect(sleeps).toEqual([7_000]);
  });

  it('429 at a steady rate (every 2nd sign) still issues every certificate', async () => {
    const { ca, sleeps } = await open(ec);
    vault.throttle({ every: 2, match: /\/sign$/, retryAfter: '1' });
    try {
      for (let i = 0; i < 4; i += 1)
        await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    } finally {
      vault.throttle(undefined);
    }
    expect(sleeps.length).toBeGreaterThan(0);
    expect(sleeps.every((ms) => ms >= 1_000)).toBe(true);
  });

  it('a Retry-After beyond maxRetryAfter is handed to the workflow instead of waited for', async () => {
    const { ca, sleeps } = await open(ec);
    vault.failNext(1, { status: 429, match: /\/sign$/, headers: { 'retry-after': '300' } });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).retryAfterMs).toBe(300_000);
    expect(sleeps).toEqual([]);
  });

  it('still throttled after every attempt → RetryableError (the workflow retries later)', async () => {
    const { ca, sleeps } = await open(ec, { retry: { attempts: 3 } });
    vault.failNext(3, { status: 429, match: /\/sign$/ });
    expect(await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()))).toBeInstanceOf(
      RetryableError,
    );
    expect(sleeps).toEqual([1_000, 2_000]);
  });

  it.each([500, 502, 503, 504])('retries a %i on sign (safe to repeat)', async (status) => {
    const { ca, sleeps } = await open(ec);
    vault.failNext(2, { status, match: /\/sign$/ });
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    expect(sleeps).toHaveLength(2);
  });

  it('retries a 503 while loading the certificate', async () => {
    const { ca, sleeps } = await open(ec);
    vault.failNext(1, { status: 503, match: /\/certificates\// });
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
    expect(sleeps).toHaveLength(1);
  });

  it('an unreachable vault is retryable', async () => {
    const gone = await FakeKeyVault.start();
    const url = gone.url;
    await gone.close();
    const { ca } = await open(ec, { vaultUrl: url, retry: { attempts: 2 } });
    expect(await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()))).toBeInstanceOf(
      RetryableError,
    );
  });

  it("a shutdown during a backoff ends the wait with the caller's reason", async () => {
    const controller = new AbortController();
    const { ca } = await open(
      ec,
      {},
      {
        sleep: (_ms, signal) =>
          new Promise((_, reject) => {
            signal?.addEventListener('abort', () => reject(signal.reason as Error));
            controller.abort(new Error('shutting down'));
          }),
      },
    );
    vault.failNext(1, { status: 429, match: /\/sign$/ });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext(controller.signal)));
    expect((error as Error).message).toBe('shutting down');
  });
});

describe('deployment faults (no setFailure: DESIGN.md §5)', () => {
  it.each([
    { permission: 'keys/sign', role: 'Key Vault Crypto User' },
    { permission: 'keys/get', role: 'Key Vault Crypto User' },
    { permission: 'certificates/get', role: 'Key Vault Certificate User' },
  ] as const)('a missing $permission is a keyvault deployment fault that names it', async ({ permission, role }) => {
    const { ca, sleeps } = await open(ec);
    vault.permissions.delete(permission);
    try {
      const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
      expect(error).toBeInstanceOf(DeploymentFaultError);
      const fault = error as DeploymentFaultError;
      expect(fault.component).toBe('keyvault');
      expect(fault.message).toContain(permission);
      expect(fault.message).toContain('403');
      expect(fault.hint).toContain(role);
      expect(sleeps).toEqual([]);
    } finally {
      vault.permissions.add(permission);
    }
  });

  it('a token the vault does not accept (401) is a deployment fault', async () => {
    const { ca } = await open(
      ec,
      {},
      { credential: { getToken: () => Promise.resolve({ token: 'wrong', expiresOnTimestamp: Date.now() + 60_000 }) } },
    );
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('401');
  });

  it('a version that was never merged is a deployment fault pointing at kv-ca merge', async () => {
    const fixture = await createIssuingCa(vault, { certificateName: 'half-done' });
    toClose.push(() => fixture.close());
    await fixture.lifecycle.create({ subject: 'CN=next', key: { type: 'ec' } });
    const pendingVersion = vault.certificateVersions('half-done').at(-1) as string;
    const { ca } = await open(fixture, { certificateVersion: pendingVersion });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('never merged');
    expect((error as DeploymentFaultError).hint).toContain('kv-ca merge');
  });

  it('an unknown version is a deployment fault (404), not a failed device', async () => {
    const { ca } = await open(ec, { certificateVersion: randomBytes(16).toString('hex') });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('404');
  });

  it('a disabled key version is a deployment fault', async () => {
    const fixture = await createIssuingCa(vault, { certificateName: 'disabled-ca' });
    toClose.push(() => fixture.close());
    vault.setKeyEnabled('disabled-ca', fixture.version, false);
    const { ca } = await open(fixture);
    expect(await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()))).toBeInstanceOf(
      DeploymentFaultError,
    );
  });

  it('a signature that does not verify against the CA certificate never leaves the backend', async () => {
    const { ca } = await open(ec);
    await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()); // warm: material loaded
    vault.failNext(1, {
      status: 200,
      match: /\/sign$/,
      body: { kid: `${vault.url}/keys/ec-ca/${ec.version}`, value: randomBytes(64).toString('base64url') },
    });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('does not verify');
  });

  it('an expired CA certificate is a deployment fault', async () => {
    const { ca } = await open(ec, {}, { now: () => new Date(Date.now() + 1_000 * 86_400_000) });
    const error = await rejection(ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('expired');
  });

  it('start() warms the cache in the background: it logs a load failure, and the next issue loads again', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    const { ca } = await open(ec, {}, {}, log);
    vault.permissions.delete('certificates/get');
    try {
      await ca.start();
      await waitFor(() => lines.some((l) => l.includes('could not load its certificate yet')), 5_000, 'the warning');
      expect(lines.join('')).toContain('certificates/get');
    } finally {
      vault.permissions.add('certificates/get');
    }
    await expectVerifies(await ca.issue(deviceRequest(pool.next('ec-p256')), stepContext()), ec);
  });

  it('start() does not wait for a vault that is slow to answer', async () => {
    const { ca } = await open(ec, {}, { sleep: () => new Promise<void>(() => undefined) });
    vault.failNext(1, { status: 503, match: /\/certificates\// });
    const started = Date.now();
    await ca.start();
    expect(Date.now() - started).toBeLessThan(500);
  });
});

async function writeCa(fixture: IssuingCaFixture, pem: string): Promise<string> {
  const file = path.join(fixture.dir, `other-${randomBytes(3).toString('hex')}.pem`);
  await writeFile(file, pem);
  return file;
}

function parseCertificateToPem(pem: string): string {
  const der = parseCertificate(pem).der;
  const body = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}
