/**
 * Certificate Authority Service backend against the fake CAS, one behaviour per test: idempotent by construction
 * (one certificate per process whatever happens between CreateCertificate and the record), lifetime capped by the
 * pool, refusals mapped to the outcome classes (DESIGN.md §5), the shared per-pool budget, revocation with the RFC
 * 5280 reason, the read-only probe, and check-config refusing what CAS cannot carry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CasCa, certificateIdFor, requestIdFor } from '../../../src/ca/google-cas/cas-ca.ts';
import { casCaConfigSchema } from '../../../src/ca/google-cas/config.ts';
import { googleCasBackend } from '../../../src/ca/google-cas/index.ts';
import { DeploymentFaultError, RetryableError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { parseSubjectTemplate } from '../../../src/pki/subject-template.ts';
import { FakeCas } from '../../fakes/google-cas/fake-cas.ts';
import { fakeGoogleAuth } from '../../fakes/google-kms/kms-ca-fixture.ts';
import { deviceProfile, deviceRequest, stepContext } from '../../fakes/key-vault/device-request.ts';
import { testKeyPool } from '../../support/keys.ts';
import { verifyCertificate } from '../../support/openssl.ts';
import { rejection } from '../../support/rejection.ts';

const DAY_MS = 86_400_000;
let cas: FakeCas;
let pool: { name: string; caPem: string };
const toClose: (() => Promise<void>)[] = [];

beforeAll(async () => {
  cas = await FakeCas.start();
  pool = await cas.createPool({ maximumLifetimeDays: 30 });
});
afterAll(async () => {
  for (const close of toClose) await close();
  await cas.close();
});

async function open(overrides: Record<string, unknown> = {}, token?: string) {
  const config = casCaConfigSchema.parse({ type: 'google-cas', caPool: pool.name, endpoint: cas.url, ...overrides });
  const ca = await CasCa.create(
    'cas',
    config,
    { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir: '.' },
    { auth: fakeGoogleAuth(token) },
  );
  toClose.push(() => ca.close());
  return ca;
}

describe('idempotent by construction', () => {
  it('derives a valid certificate id and a UUID request id from the process, the same on every attempt', () => {
    expect(certificateIdFor('p/1')).toMatch(/^[a-zA-Z0-9_-]{1,63}$/);
    expect(certificateIdFor('p/1')).toBe(certificateIdFor('p/1'));
    expect(certificateIdFor('p/1')).not.toBe(certificateIdFor('p/2'));
    expect(requestIdFor('p/1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(certificateIdFor('p/1')).not.toContain('p/1');
  });

  it('one CreateCertificate per certificate; a second issue for the process returns the same certificate, CAS holds one', async () => {
    const ca = await open();
    const request = deviceRequest((await testKeyPool()).next('ec-p256'));
    const before = { creates: cas.createRequests, held: cas.certificateCount };
    const first = await ca.issue(request, stepContext());
    expect(cas.createRequests - before.creates).toBe(1);
    expect(ca.requests).toBe(1);
    // A replica that died before recording the result issues again, after CAS forgot the request id: the same
    // certificate id is refused (ALREADY_EXISTS) and the first certificate is read back.
    cas.forgetRequestIds();
    const again = await (await open()).issue({ ...request, priorAttempts: 1 }, stepContext());
    if (first.status !== 'issued' || again.status !== 'issued') throw new Error('expected issued');
    expect(again.certificatePem).toBe(first.certificatePem);
    expect(cas.certificateCount - before.held).toBe(1);
    expect(
      cas.server.requests.filter((r) => r.startsWith('GET ') && r.endsWith(certificateIdFor(request.processId))),
    ).toHaveLength(1);
    const verdict = await verifyCertificate(first.certificatePem, pool.caPem);
    expect(verdict.ok, verdict.stderr).toBe(true);
  });
});

describe('lifetime', () => {
  it('asks for the profile validity capped at maxValidityDays; CAS caps at the pool maximum', async () => {
    const ca = await open({ maxValidityDays: 20 });
    const result = await ca.issue(
      deviceRequest((await testKeyPool()).next('ec-p256'), { ...deviceProfile(), validityMs: 90 * DAY_MS }),
      stepContext(),
    );
    if (result.status !== 'issued') throw new Error(JSON.stringify(result));
    const leaf = parseCertificate(result.certificatePem);
    const days = (leaf.notAfter.getTime() - Date.now()) / DAY_MS;
    expect(days).toBeGreaterThan(19.9);
    expect(days).toBeLessThan(20.1);
  });
});

describe('CAS refusals map to the outcome classes', () => {
  it('PERMISSION_DENIED is a deployment fault naming roles/privateca.certificateRequester', async () => {
    cas.requesters.add('the-real-requester');
    try {
      const error = await rejection(
        (await open()).issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext()),
      );
      expect(error).toBeInstanceOf(DeploymentFaultError);
      expect((error as DeploymentFaultError).component).toBe('google-cas');
      expect((error as DeploymentFaultError).hint).toContain('roles/privateca.certificateRequester');
    } finally {
      cas.requesters.clear();
    }
  });

  it('UNAUTHENTICATED is a deployment fault', async () => {
    cas.server.refusedTokens.add('expired');
    const error = await rejection(
      (await open({}, 'expired')).issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext()),
    );
    expect(error).toBeInstanceOf(DeploymentFaultError);
  });

  it('INVALID_ARGUMENT (the pool refuses the subject) fails the process with a result, not an exception', async () => {
    const strict = await cas.createPool({
      name: 'projects/certprov-test/locations/europe-west1/caPools/strict',
      allowSubjectPassthrough: false,
    });
    const result = await (
      await open({ caPool: strict.name })
    ).issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext());
    expect(result.status).toBe('failed');
    if (result.status === 'failed') expect(result.detail).toMatch(/INVALID_ARGUMENT.*passthrough/);
  });

  it('an unknown pool (NOT_FOUND) is a deployment fault naming it', async () => {
    const error = await rejection(
      (await open({ caPool: 'projects/certprov-test/locations/europe-west1/caPools/nope' })).issue(
        deviceRequest((await testKeyPool()).next('ec-p256')),
        stepContext(),
      ),
    );
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as Error).message).toContain('caPools/nope');
  });

  it('RESOURCE_EXHAUSTED at the configured quota is retryable, and the retry issues the same certificate id', async () => {
    const ca = await open({ rateLimit: { requestsPerSecond: 50 } });
    const pool2 = await testKeyPool();
    cas.quotaPerSecond = 1;
    try {
      const first = await ca.issue(deviceRequest(pool2.next('ec-p256')), stepContext());
      expect(first.status).toBe('issued');
      const request = deviceRequest(pool2.next('ec-p256'));
      const error = await rejection(ca.issue(request, stepContext()));
      expect(error).toBeInstanceOf(RetryableError);
      expect(error).not.toBeInstanceOf(DeploymentFaultError);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect((await ca.issue(request, stepContext())).status).toBe('issued');
    } finally {
      cas.quotaPerSecond = undefined;
    }
  });

  it('the client-side budget keeps a burst inside the pool quota: no RESOURCE_EXHAUSTED, every certificate issued', async () => {
    // The budget sits below the pool's quota, as the docs advise (clocks and network delays blur the windows).
    const ca = await open({ rateLimit: { requestsPerSecond: 1, requestsPerMinute: 100, maxWait: '10s' } });
    const keys = await testKeyPool();
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the earlier tests' requests leave CAS's window
    cas.quotaPerSecond = 3;
    try {
      const before = cas.createRequests;
      const results = await Promise.all(
        Array.from({ length: 4 }, () => ca.issue(deviceRequest(keys.next('ec-p256')), stepContext())),
      );
      expect(results.every((r) => r.status === 'issued')).toBe(true);
      expect(cas.createRequests - before).toBe(4);
    } finally {
      cas.quotaPerSecond = undefined;
    }
  });
});

describe('revoke', () => {
  it('revokes the process certificate with the RFC 5280 reason; a second revoke is done, not an error', async () => {
    const ca = await open();
    const request = deviceRequest((await testKeyPool()).next('rsa-2048'));
    const result = await ca.issue(request, stepContext());
    if (result.status !== 'issued') throw new Error('expected issued');
    const issued = {
      serial: parseCertificate(result.certificatePem).serialHex,
      certificatePem: result.certificatePem,
      reason: 'keyCompromise' as const,
      comment: 'test',
    };
    expect(await ca.revoke(issued, stepContext())).toEqual({ status: 'revoked' });
    expect(cas.revocationOf(`${pool.name}/certificates/${certificateIdFor(request.processId)}`)).toBe('KEY_COMPROMISE');
    expect(await ca.revoke(issued, stepContext())).toEqual({ status: 'revoked' });
    // A revoked certificate is never handed out again for the process.
    expect((await ca.issue({ ...request, priorAttempts: 1 }, stepContext())).status).toBe('failed');
  });
});

describe('check-config', () => {
  it('probe: the pool exists and the caller may request certificates; notes a pool capping below maxValidityDays', async () => {
    const text = await (await open({ maxValidityDays: 90 })).probe(stepContext());
    expect(text).toMatch(/may request certificates/);
    expect(text).toMatch(/caps lifetimes at 30 days/);
  });

  it('probe: a caller without privateca.certificates.create is a deployment fault naming the role', async () => {
    cas.requesters.add('the-real-requester');
    try {
      const error = await rejection((await open()).probe(stepContext()));
      expect(error).toBeInstanceOf(DeploymentFaultError);
      expect((error as DeploymentFaultError).hint).toContain('roles/privateca.certificateRequester');
    } finally {
      cas.requesters.clear();
    }
  });

  it.each([
    ['a subject attribute twice', 'CN=a,OU=x,OU=y', /OU only once/],
    ['a multi-valued RDN', 'CN=a+O=b', /multi-valued/],
  ])('refuses %s at load', (_label, subject, message) => {
    const config = casCaConfigSchema.parse({ type: 'google-cas', caPool: pool.name });
    const problems = googleCasBackend.profileProblems!(config, {
      name: 'p',
      subject: parseSubjectTemplate(subject),
      subjectAltNames: [],
      validityMs: DAY_MS,
      extendedKeyUsages: [],
    });
    expect(problems.map((p) => p.message).join('\n')).toMatch(message);
  });

  it('declares no UPN SANs and only the subject attributes a CAS Subject has', () => {
    const capabilities = googleCasBackend.capabilities(
      casCaConfigSchema.parse({ type: 'google-cas', caPool: pool.name }),
    );
    expect(capabilities.subjectAltNameTypes).not.toContain('upn');
    expect(capabilities.subjectAttributes).not.toContain('E');
  });

  it('refuses plain http to anything but loopback', () => {
    expect(
      casCaConfigSchema.safeParse({ type: 'google-cas', caPool: pool.name, endpoint: 'http://privateca.example.com' })
        .success,
    ).toBe(false);
  });
});
