/**
 * Per-profile keyUsage and RFC 5280 subject bounds: what config load rejects (with the field named), what fails a
 * process (with the profile and field named), and what a local CA issues — judged by openssl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/errors.ts';
import type { KeyPool } from '../../../src/sandbox/index.ts';
import { AdapterRig, rigConfig, type RawConfig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';
import { certificateText, verifyCertificate } from '../../support/openssl.ts';

function problemsOf(
  profiles: RawConfig,
  caConnections: RawConfig = { local: { type: 'local', directory: '/tmp/ca' } },
) {
  try {
    compileConfig(rigConfig({ endpoint: 'http://127.0.0.1:1', caConnections, profiles }), {
      source: 'test',
      baseDir: '/tmp',
      purpose: 'demo',
    });
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return [...error.problems];
  }
}

describe('config load', () => {
  it.each<[string, RawConfig, RegExp | undefined]>([
    ['keyUsages that an RSA key can carry', { keyUsages: ['digitalSignature', 'keyEncipherment'] }, undefined],
    ['keyUsages that an EC key can carry', { keyUsages: ['digitalSignature', 'keyAgreement'] }, undefined],
    [
      'keyEncipherment with keyAgreement (no key can carry both)',
      { keyUsages: ['keyEncipherment', 'keyAgreement'] },
      /^profiles\.p\.keyUsages: no device key can carry all of keyEncipherment, keyAgreement/,
    ],
    [
      'a bit listed twice',
      { keyUsages: ['digitalSignature', 'digitalSignature'] },
      /^profiles\.p\.keyUsages: digitalSignature listed twice/,
    ],
    ['a CA bit', { keyUsages: ['keyCertSign'] }, /^profiles\.p\.keyUsages\[0\]/],
    ['an empty list', { keyUsages: [] }, /^profiles\.p\.keyUsages/],
    [
      'a literal O longer than 64',
      { subject: `CN={{device.serialNumber}},O=${'x'.repeat(65)}` },
      /^profiles\.p\.subject: O is at least 65 characters long; RFC 5280 allows at most 64/,
    ],
    [
      'a literal CN of 64 and a template',
      { subject: `CN=${'x'.repeat(64)}{{device.serialNumber}}` },
      /^profiles\.p\.subject: CN is at least 65 characters long/,
    ],
  ])('%s', (_label, override, problem) => {
    const problems = problemsOf({ p: { subject: 'CN={{device.serialNumber}}', validity: '30d', ...override } });
    if (problem === undefined) expect(problems).toEqual([]);
    else expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(problem)]));
  });
});

describe('issued and failed processes (local CA, in-process source)', () => {
  let pool: KeyPool;
  let rig: AdapterRig;
  const longEmail = `${'a'.repeat(60)}@example.com`; // 72 characters: over ub-common-name (64)

  beforeAll(async () => {
    pool = await testKeyPool();
    rig = await AdapterRig.start({
      profiles: {
        agreement_profile: {
          subject: 'CN={{device.serialNumber}}',
          validity: '30d',
          keyUsages: ['digitalSignature', 'keyAgreement'],
        },
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}},O=certprov test',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
        // The SAN-only alternative for long emails: a short CN, the email in the SAN.
        san_email_profile: {
          subject: 'CN={{user.userDirectoryApiId}},O=certprov test',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
      },
    });
  });
  afterAll(() => rig?.stop());

  async function provision(options: Parameters<AdapterRig['tenant']['createProcess']>[0]) {
    const id = rig.tenant.createProcess(options);
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    return rig.tenant.process(id);
  }

  it("an EC device on a keyAgreement profile gets exactly the profile's keyUsage", async () => {
    const process = await provision({ key: pool.next('ec-p256'), profile: 'agreement_profile' });
    expect(process.failureMessage).toBeUndefined();
    const pem = process.issuedCertificate as string;
    expect((await verifyCertificate(pem, rig.caCertificatePem)).ok).toBe(true);
    expect(await certificateText(pem)).toMatch(/Key Usage: critical\s+Digital Signature, Key Agreement\n/);
  });

  it('an RSA device on that profile is failed, naming the profile; the device is never asked to sign', async () => {
    const id = rig.tenant.createProcess({ key: pool.next('rsa-2048'), profile: 'agreement_profile' });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    expect(rig.tenant.process(id).failureMessage).toContain('"agreement_profile"');
    expect(rig.tenant.counters(id).signDataCalls).toBe(0);
    expect(rig.logs.text()).toContain('profiles.agreement_profile.keyUsages does not fit');
  });

  it('an email longer than the CN bound fails the process, naming the profile and the field', async () => {
    const process = await provision({
      key: pool.next('ec-p256'),
      subject: { kind: 'user', userPrimaryEmail: longEmail, userDirectoryApiId: 'u-long-1' },
      profile: 'user_profile',
    });
    expect(process.issuedCertificate).toBeUndefined();
    expect(process.failureMessage).toContain('"user_profile"');
    expect(process.failureMessage).toContain('subject CN');
    expect(process.failureMessage).not.toContain(longEmail);
    expect(rig.logs.text()).toMatch(
      /profiles\.user_profile\.subject\) is 72 characters long; RFC 5280 allows at most 64/,
    );
  });

  it('the same email is issued with the SAN-only profile (short CN, email SAN)', async () => {
    const process = await provision({
      key: pool.next('rsa-2048'),
      subject: { kind: 'user', userPrimaryEmail: longEmail, userDirectoryApiId: 'u-long-2' },
      profile: 'san_email_profile',
    });
    expect(process.failureMessage).toBeUndefined();
    const text = await certificateText(process.issuedCertificate as string);
    expect(text).toContain(`email:${longEmail}`);
    expect(text).toMatch(/Subject: .*CN=u-long-2/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
  });
});
