/**
 * The `type: digicert` connection block and the profile checks that run at config load: a profile that asks for
 * more than a DigiCert product can honour is rejected before the first device, with the field named.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { digicertBackend } from '../../../src/ca/digicert/index.ts';
import { DIGICERT_DEFAULTS, digicertConfigSchema, validityFieldOf } from '../../../src/ca/digicert/config.ts';
import { compileConfig, loadConfigFile } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/errors.ts';

const CONNECTION = {
  type: 'digicert',
  apiKey: { env: 'DIGICERT_API_KEY' },
  product: 'client_authentication_plus',
  organizationId: 112233,
  processIdCustomFieldId: 77,
} as const;

const USER_PROFILE = {
  subject: 'CN={{user.userPrimaryEmail}}',
  subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
  validity: '365d',
};

function config(
  connection: Record<string, unknown>,
  profiles: Record<string, unknown> = { user_profile: USER_PROFILE },
  /** `'none'`: no store block at all. */
  store: unknown = { type: 'firestore' },
) {
  return compileConfig(
    {
      chrome: { endpoint: 'http://127.0.0.1:1', credentials: 'none' },
      pubsub: { subscription: 'projects/p/subscriptions/s' },
      ...(store === 'none' ? {} : { store }),
      caConnections: { dc: { ...CONNECTION, ...connection } },
      profiles,
    },
    { source: 'test', baseDir: '/tmp', purpose: 'run' },
  );
}

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('digicert connection schema', () => {
  it('fills every default', () => {
    const parsed = digicertConfigSchema.parse(CONNECTION);
    expect(parsed).toMatchObject({
      baseUrl: 'https://www.digicert.com/services/v2',
      signatureHash: 'sha256',
      skipApproval: true,
      paymentMethod: 'balance',
      requestTimeout: 30_000,
      statusPollInterval: 60_000,
      statusPollInitialWindow: 86_400_000,
      orderFallbackInterval: 21_600_000,
      reconcileLookback: 7 * 86_400_000,
      rateLimit: {
        accountLimit: { requestsPer5Seconds: 100, requestsPer3Minutes: 1000 },
        requestsPer5Seconds: 90,
        requestsPer3Minutes: 900,
        pollingShare: 0.2,
        maxWait: 30_000,
        maxConcurrent: 8,
      },
    });
    expect(parsed.commentsTemplate).toBe(DIGICERT_DEFAULTS.commentsTemplate);
    expect(validityFieldOf(parsed)).toBe('validity_days');
  });

  it.each([
    ['the API key written inline', { apiKey: 'secret-key-in-the-file' }, 'apiKey'],
    ['both file and env', { apiKey: { file: 'k', env: 'K' } }, 'apiKey'],
    ['no process-id custom field', { processIdCustomFieldId: undefined }, 'processIdCustomFieldId'],
    ['an unknown product', { product: 'client_premium' }, 'product'],
    ['private_ssl_plus without caCertId', { product: 'private_ssl_plus' }, 'caCertId'],
    ['caCertId on a public product', { caCertId: 'ABC' }, 'caCertId'],
    ['more validity than the product sells', { maxValidityDays: 2000 }, 'maxValidityDays'],
    ['an unknown comment placeholder', { commentsTemplate: 'for {{user.userPrimaryEmail}}' }, 'commentsTemplate'],
    ['an initial window beyond 7 days', { statusPollInitialWindow: '8d' }, 'statusPollInitialWindow'],
    [
      'a fallback faster than the bulk poll',
      { statusPollInterval: '5m', orderFallbackInterval: '1m' },
      'orderFallbackInterval',
    ],
    [
      'a budget above what DigiCert allows',
      { rateLimit: { requestsPer5Seconds: 150 } },
      'rateLimit.requestsPer5Seconds',
    ],
    [
      'a 3-minute budget above the account limit',
      { rateLimit: { requestsPer3Minutes: 1001 } },
      'rateLimit.requestsPer3Minutes',
    ],
    [
      'a validity field DigiCert does not document for the product',
      { product: 'private_ssl_plus', caCertId: 'A1B2', validityField: 'validity_days' },
      'validityField',
    ],
    ['the old 5-minute field', { rateLimit: { requestsPer5Minutes: 900 } }, 'rateLimit.requestsPer5Minutes'],
    ['an unknown field', { apiKeyValue: 'x' }, ''],
  ])('rejects %s', (_label, overrides, field) => {
    const result = digicertConfigSchema.safeParse({ ...CONNECTION, ...overrides });
    expect(result.success).toBe(false);
    if (!result.success) expect(result.error.issues.map((i) => i.path.join('.')).join(' ')).toContain(field);
  });

  it('says the 5-minute field was renamed, and why', () => {
    const result = digicertConfigSchema.safeParse({ ...CONNECTION, rateLimit: { requestsPer5Minutes: 900 } });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/renamed requestsPer3Minutes.*3 minutes/);
  });

  it('lets a negotiated account limit raise the budget; the default stays 90 % of the account limit', () => {
    const negotiated = digicertConfigSchema.parse({
      ...CONNECTION,
      rateLimit: { accountLimit: { requestsPer5Seconds: 200, requestsPer3Minutes: 3000 } },
    });
    expect(negotiated.rateLimit).toMatchObject({ requestsPer5Seconds: 180, requestsPer3Minutes: 2700 });
    const explicit = digicertConfigSchema.parse({
      ...CONNECTION,
      rateLimit: { accountLimit: { requestsPer3Minutes: 3000 }, requestsPer3Minutes: 3000 },
    });
    expect(explicit.rateLimit).toMatchObject({ requestsPer5Seconds: 90, requestsPer3Minutes: 3000 });
  });

  it('declares what client_authentication_plus can honour', () => {
    const caps = digicertBackend.capabilities(digicertConfigSchema.parse(CONNECTION));
    expect(caps).toEqual({
      keyTypes: ['rsa', 'ec'],
      subjectAttributes: ['CN', 'OU', 'O'],
      subjectAltNameTypes: ['email'],
      maxValidityDays: 1095,
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
      keyUsages: 'ca',
      requiresDurableStore: true,
    });
  });
});

describe('config load with a digicert connection', () => {
  it('accepts a user profile with an email SAN', () => {
    expect(config({}).caConnections.get('dc')?.capabilities.requiresDurableStore).toBe(true);
  });

  it.each([
    ['sqlite, one replica', { type: 'sqlite', path: 'state/certprov.db' }],
    ['no store configured (run defaults to sqlite)', 'none'],
  ])('is accepted by run with %s', (_, store) => {
    const loaded = config({}, undefined, store);
    expect(loaded.store).toMatchObject({ type: 'sqlite', synchronous: 'full' });
    expect(loaded.caConnections.get('dc')?.capabilities.requiresDurableStore).toBe(true);
  });

  it('is refused by run with the memory store (an order intent must survive a crash)', () => {
    expect(problems(() => config({}, undefined, { type: 'memory' }))).toEqual([
      expect.stringMatching(/^caConnections\.dc: a digicert connection needs a durable store/),
    ]);
  });

  it.each([
    [
      'a URI SAN',
      {
        ...USER_PROFILE,
        subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }, { uri: 'urn:x:{{device.deviceDirectoryApiId}}' }],
      },
      /profiles\.p\.subjectAltNames\[1\]: .*cannot issue uri SANs/,
    ],
    [
      'no email SAN',
      { ...USER_PROFILE, subjectAltNames: [] },
      /profiles\.p\.subjectAltNames: .*requires at least one email SAN/,
    ],
    ['no CN', { ...USER_PROFILE, subject: 'OU=Users' }, /profiles\.p\.subject: .*needs exactly one CN/],
    [
      'a subject attribute DigiCert does not take',
      { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}},L=Berlin' },
      /profiles\.p\.subject: .*cannot carry subject attribute L/,
    ],
    [
      'O from a template',
      { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}},O={{process.customer}}' },
      /profiles\.p\.subject: .*O cannot use template variables/,
    ],
    [
      'O without organizationName',
      { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}},O=Example Org' },
      /profiles\.p\.subject: .*set organizationName/,
    ],
    [
      'a multi-valued RDN',
      { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}}+OU=Users' },
      /profiles\.p\.subject: .*multi-valued RDNs/,
    ],
    [
      'an EKU the product does not issue',
      { ...USER_PROFILE, extendedKeyUsages: ['clientAuth', 'emailProtection'] },
      /profiles\.p\.extendedKeyUsages: .*cannot issue EKU 1\.3\.6\.1\.5\.5\.7\.3\.4/,
    ],
    ['validity in hours', { ...USER_PROFILE, validity: '36h' }, /profiles\.p\.validity: .*whole days/],
    [
      'keyUsages (DigiCert sets the key usage by product)',
      { ...USER_PROFILE, keyUsages: ['digitalSignature'] },
      /profiles\.p\.keyUsages: CA connection "dc" \(type digicert\) sets the key usage itself/,
    ],
    [
      'more validity than the connection orders',
      { ...USER_PROFILE, validity: '1200d' },
      /profiles\.p\.validity: .*at most 1095 days/,
    ],
  ])('rejects a profile with %s, naming the field', (_label, profile, message) => {
    const found = problems(() => config({}, { p: profile }));
    expect(found).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    expect(found.every((p) => p.startsWith('profiles.p.'))).toBe(true);
  });

  describe('devices: client_authentication_plus issues to users only', () => {
    it.each([
      [
        'device.* in CN and email SAN',
        {
          subject: 'CN={{device.serialNumber}}',
          subjectAltNames: [{ email: 'device-{{device.deviceDirectoryApiId}}@devices.example.com' }],
          validity: '365d',
        },
      ],
      [
        'no variable at all',
        { subject: 'CN=shared', subjectAltNames: [{ email: 'it@example.com' }], validity: '365d' },
      ],
      [
        'process.* only',
        { subject: 'CN={{process.id}}', subjectAltNames: [{ email: 'it@example.com' }], validity: '365d' },
      ],
    ])('rejects a device profile (%s), naming caConnections', (_label, profile) => {
      expect(problems(() => config({}, { p: profile }))).toEqual([
        expect.stringMatching(
          /^profiles\.p\.caConnections: CA connection "dc" \(type digicert\) orders client_authentication_plus, which issues to users only.*serves device processes, which carry no email.*private_ssl_plus/,
        ),
      ]);
    });

    it("rejects a user profile whose email SAN is not the user's", () => {
      const profile = { ...USER_PROFILE, subjectAltNames: [{ email: 'it@example.com' }] };
      expect(problems(() => config({}, { p: profile }))).toEqual([
        expect.stringMatching(/^profiles\.p\.subjectAltNames: .*must be the user's mailbox/),
      ]);
    });

    it("accepts an affiliated user's profile that also names the device", () => {
      const profile = { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}},OU={{device.serialNumber}}' };
      expect(config({}, { p: profile }).profiles.has('p')).toBe(true);
    });

    it('accepts the device profile on private_ssl_plus', () => {
      const device = {
        subject: 'CN=d-{{device.deviceDirectoryApiId}}.devices.example.com',
        subjectAltNames: [{ dns: 'd-{{device.deviceDirectoryApiId}}.devices.example.com' }],
        validity: '365d',
        extendedKeyUsages: ['serverAuth', 'clientAuth'],
      };
      expect(config({ product: 'private_ssl_plus', caCertId: 'A1B2' }, { p: device }).profiles.has('p')).toBe(true);
    });
  });

  it('checks O against the validated organization name', () => {
    const profile = { ...USER_PROFILE, subject: 'CN={{user.userPrimaryEmail}},O=Example Org' };
    expect(config({ organizationName: 'Example Org' }, { p: profile }).profiles.has('p')).toBe(true);
    expect(problems(() => config({ organizationName: 'Example Org Inc.' }, { p: profile }))).toEqual([
      expect.stringMatching(
        /profiles\.p\.subject: CA connection "dc" \(type digicert\) writes O="Example Org Inc\." \(the validated organization\), not O="Example Org"/,
      ),
    ]);
  });

  it('private_ssl_plus: DNS SANs, the CN among them, serverAuth and clientAuth', () => {
    const connection = { product: 'private_ssl_plus', caCertId: 'A1B2' };
    const good = {
      subject: 'CN=d-{{device.deviceDirectoryApiId}}.devices.example.com',
      subjectAltNames: [{ dns: 'd-{{device.deviceDirectoryApiId}}.devices.example.com' }],
      validity: '365d',
      extendedKeyUsages: ['serverAuth', 'clientAuth'],
    };
    expect(config(connection, { p: good }).profiles.has('p')).toBe(true);
    expect(problems(() => config(connection, { p: { ...good, validity: '90d' } }))).toEqual([
      expect.stringMatching(/profiles\.p\.validity: .*whole years only \(validity_years\)/),
    ]);
    expect(
      problems(() => config(connection, { p: { ...good, subjectAltNames: [{ dns: 'other.example.com' }] } })),
    ).toEqual([expect.stringMatching(/profiles\.p\.subjectAltNames: .*copies the CN into the DNS SANs/)]);
    expect(problems(() => config(connection, { p: { ...good, extendedKeyUsages: ['clientAuth'] } }))).toEqual([
      expect.stringMatching(/profiles\.p\.extendedKeyUsages: .*carry exactly the EKUs/),
    ]);
  });

  it('config/digicert.example.yaml is valid for run', async () => {
    const loaded = await loadConfigFile(path.join(import.meta.dirname, '../../../config/digicert.example.yaml'), 'run');
    expect(loaded.caConnections.get('default_ca_config')?.type).toBe('digicert');
    expect([...loaded.profiles.keys()]).toEqual(['user_profile', 'device_profile']);
    expect(loaded.profiles.get('device_profile')?.caConnections).toEqual(['digicert_devices']);
  });
});
