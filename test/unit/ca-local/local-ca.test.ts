import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { localCaConfigSchema, type LocalCaConfig } from '../../../src/ca/local/config.ts';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { LocalCa, type IssuedJournalEntry } from '../../../src/ca/local/local-ca.ts';
import type { CaDependencies, IssueRequest, StepContext } from '../../../src/ca/types.ts';
import { DeploymentFaultError } from '../../../src/errors.ts';
import { createLogger, silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../../src/pki/certification-request.ts';
import { parseCertificate, type ParsedCertificate } from '../../../src/pki/certificate.ts';
import { parseDeviceKey } from '../../../src/pki/device-key.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import type { PoolKeyType } from '../../../src/sandbox/key-pool.ts';
import { testKeyPool } from '../../support/keys.ts';
import { verifyCertificate } from '../../support/openssl.ts';

const DAY = 86_400_000;
const EMAIL = 'someone.private@example.com';
const PROFILE: RenderedProfile = {
  name: 'user_profile',
  subject: [[{ type: 'CN', oid: SUBJECT_ATTRIBUTE_TYPES.CN!.oid, value: EMAIL }]],
  subjectAltNames: [{ type: 'email', value: EMAIL }],
  validityMs: 30 * DAY,
  extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
};

let baseDir: string;
let caDir: string;
beforeEach(async () => {
  baseDir = await mkdtemp(path.join(tmpdir(), 'certprov-localca-'));
  caDir = path.join(baseDir, 'ca');
});
afterEach(async () => {
  await rm(baseDir, { recursive: true, force: true });
});

function config(extra: Record<string, unknown> = {}): LocalCaConfig {
  return localCaConfigSchema.parse({ type: 'local', directory: 'ca', ...extra });
}

function deps(overrides: Partial<CaDependencies> = {}): CaDependencies {
  return { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir, ...overrides };
}

function ctx(overrides: Partial<StepContext> = {}): StepContext {
  return { signal: new AbortController().signal, log: silentLogger(), ...overrides };
}

async function request(poolType: PoolKeyType = 'ec-p256', processId = 'proc-1'): Promise<IssueRequest> {
  const key = (await testKeyPool()).next(poolType);
  const spkiDer = new Uint8Array(key.spkiDer);
  const keyType = poolType === 'ec-p256' ? 'ec' : 'rsa';
  const cri = buildCertificationRequestInfo({
    subject: PROFILE.subject,
    subjectAltNames: PROFILE.subjectAltNames,
    spkiDer,
  });
  const signature = new Uint8Array(sign('sha256', cri, key.privateKey));
  let deviceKey;
  try {
    deviceKey = parseDeviceKey(spkiDer);
  } catch {
    deviceKey = { type: 'rsa' as const, modulusBits: 1024, publicExponent: 65537 };
  }
  return {
    processId,
    correlationId: `corr-${processId}`,
    caConnection: 'trial_ca',
    csrDer: assembleCertificationRequest(cri, keyType, signature),
    spkiDer,
    deviceKey,
    profile: PROFILE,
    priorAttempts: 0,
  };
}

async function expectFault(promise: Promise<unknown>, message: RegExp): Promise<DeploymentFaultError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DeploymentFaultError);
  expect((error as DeploymentFaultError).component).toBe('local-ca');
  expect((error as DeploymentFaultError).message).toMatch(message);
  return error as DeploymentFaultError;
}

describe('LocalCa.open', () => {
  it('resolves the directory against baseDir and loads the CA', async () => {
    const init = await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    expect(ca.type).toBe('local');
    expect(ca.name).toBe('trial_ca');
    expect(ca.directory).toBe(caDir);
    expect(ca.certificatePem).toBe(init.certificatePem);
    expect(await ca.probe(ctx())).toMatch(/ES256, certificate valid until/);
  });

  it('is a deployment fault when the directory or a file is missing, with a hint to create the CA', async () => {
    const missing = await expectFault(
      LocalCa.open('trial_ca', config(), deps()),
      /ca\.(key|cert)\.pem cannot be read \(ENOENT\)/,
    );
    expect(missing.hint).toMatch(/certprov local-ca init --dir/);
    await initLocalCa({ directory: caDir });
    await rm(path.join(caDir, 'ca.cert.pem'));
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /certificate .*ca\.cert\.pem cannot be read/);
  });

  it('is a deployment fault when a file is unreadable or not what it should be', async () => {
    await initLocalCa({ directory: caDir });
    const keyPem = await readFile(path.join(caDir, 'ca.key.pem'), 'utf8');
    await writeFile(path.join(caDir, 'ca.key.pem'), 'not a key');
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /not a readable unencrypted private key/);
    await writeFile(path.join(caDir, 'ca.key.pem'), keyPem);
    await writeFile(path.join(caDir, 'ca.cert.pem'), 'not a certificate');
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /is not one PEM certificate/);
    await rm(path.join(caDir, 'ca.cert.pem'));
    await mkdir(path.join(caDir, 'ca.cert.pem'));
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /cannot be read \(EISDIR\)/);
  });

  it('is a deployment fault when the key does not belong to the certificate', async () => {
    await initLocalCa({ directory: caDir });
    await initLocalCa({ directory: path.join(baseDir, 'other') });
    await copyFile(path.join(baseDir, 'other', 'ca.key.pem'), path.join(caDir, 'ca.key.pem'));
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /does not belong to the certificate/);
  });

  it('is a deployment fault when the certificate is not a CA or has expired', async () => {
    await initLocalCa({ directory: caDir, validityDays: 10 });
    await expectFault(
      LocalCa.open('trial_ca', config(), deps(), { now: () => new Date(Date.now() + 11 * DAY) }),
      /expired/,
    );

    // A leaf issued to the CA's own key is no CA certificate.
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const own = await request();
    const caSpki = parseCertificate(ca.certificatePem).spkiDer;
    const result = await ca.issue({ ...own, spkiDer: caSpki, deviceKey: parseDeviceKey(caSpki) }, ctx());
    if (result.status !== 'issued') throw new Error('expected issued');
    await writeFile(path.join(caDir, 'ca.cert.pem'), result.certificatePem);
    await expectFault(LocalCa.open('trial_ca', config(), deps()), /not a CA certificate/);
  });
});

describe('LocalCa.issue', () => {
  it('issues a leaf chained to the CA and returns the CA as chain', async () => {
    const init = await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const result = await ca.issue(await request(), ctx());
    expect(result.status).toBe('issued');
    if (result.status !== 'issued') return;
    expect(result.chainPem).toEqual([init.certificatePem]);
    expect((await verifyCertificate(result.certificatePem, init.certificatePem)).ok).toBe(true);
  });

  it('appends one journal line per certificate, with no personal data', async () => {
    await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const issued: ParsedCertificate[] = [];
    for (const id of ['proc-a', 'proc-b']) {
      const result = await ca.issue(await request('ec-p256', id), ctx());
      if (result.status !== 'issued') throw new Error('expected issued');
      issued.push(parseCertificate(result.certificatePem));
    }
    const text = await readFile(path.join(caDir, 'issued.jsonl'), 'utf8');
    expect(text).not.toContain(EMAIL);
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as IssuedJournalEntry);
    expect(lines).toHaveLength(2);
    lines.forEach((line, i) => {
      expect(Object.keys(line).sort()).toEqual(['correlationId', 'notAfter', 'processId', 'serial', 'time']);
      expect(line.processId).toBe(['proc-a', 'proc-b'][i]);
      expect(line.correlationId).toBe(`corr-${line.processId}`);
      expect(line.serial).toBe(issued[i]!.serialHex);
      expect(line.notAfter).toBe(issued[i]!.notAfter.toISOString());
      expect(Date.parse(line.time)).not.toBeNaN();
    });
  });

  it('keeps every journal line whole when issuing concurrently', async () => {
    await initLocalCa({ directory: caDir });
    const [a, b] = await Promise.all([LocalCa.open('a', config(), deps()), LocalCa.open('b', config(), deps())]);
    const requests = await Promise.all(Array.from({ length: 20 }, (_, i) => request('ec-p256', `p${i}`)));
    await Promise.all(requests.map((r, i) => (i % 2 === 0 ? a : b).issue(r, ctx())));
    const lines = (await readFile(path.join(caDir, 'issued.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(20);
    expect(new Set(lines.map((l) => (JSON.parse(l) as IssuedJournalEntry).processId)).size).toBe(20);
  });

  it('logs serial, process and correlation id without personal data', async () => {
    await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const written: string[] = [];
    const log = createLogger({ level: 'debug', destination: { write: (line: string) => void written.push(line) } });
    const result = await ca.issue(await request(), ctx({ log }));
    if (result.status !== 'issued') throw new Error('expected issued');
    expect(written).toHaveLength(1);
    const line = JSON.parse(written[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({
      severity: 'INFO',
      processId: 'proc-1',
      correlationId: 'corr-proc-1',
      serial: parseCertificate(result.certificatePem).serialHex,
    });
    expect(written[0]).not.toContain(EMAIL);
  });

  it('takes the clock, backdate and maximum validity from its configuration', async () => {
    await initLocalCa({ directory: caDir });
    const now = new Date(Date.now() + DAY);
    const ca = await LocalCa.open('trial_ca', config({ backdate: '10m', maxValidityDays: 2 }), deps(), {
      now: () => now,
    });
    const result = await ca.issue(await request(), ctx());
    if (result.status !== 'issued') throw new Error('expected issued');
    const leaf = parseCertificate(result.certificatePem);
    const wholeSeconds = (ms: number) => Math.floor(ms / 1000) * 1000;
    expect(leaf.notBefore.getTime()).toBe(wholeSeconds(now.getTime() - 10 * 60_000));
    expect(leaf.notAfter.getTime()).toBe(wholeSeconds(now.getTime() + 2 * DAY));
  });

  it('answers failed (not an exception) for a device key outside policy', async () => {
    await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const result = await ca.issue(await request('rsa-1024'), ctx());
    expect(result).toMatchObject({ status: 'failed', userMessage: expect.stringMatching(/not allowed/) as unknown });
  });

  it('is a deployment fault when the journal cannot be written, and returns no certificate', async () => {
    await initLocalCa({ directory: caDir });
    await mkdir(path.join(caDir, 'issued.jsonl'));
    const ca = await LocalCa.open('trial_ca', config(), deps());
    await expectFault(ca.issue(await request(), ctx()), /journal .* cannot be written/);
  });

  it('stops when the step is aborted', async () => {
    await initLocalCa({ directory: caDir });
    const ca = await LocalCa.open('trial_ca', config(), deps());
    const controller = new AbortController();
    controller.abort(new Error('lease lost'));
    await expect(ca.issue(await request(), ctx({ signal: controller.signal }))).rejects.toThrow('lease lost');
  });
});
