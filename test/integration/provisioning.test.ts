/**
 * The adapter end to end: Google's Pub/Sub emulator → engine → sandbox tenant (simulated ChromeOS clients with real
 * keys) → local CA → upload. Every issued certificate is judged by openssl, not by the code that made it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCertificate, spkiDerOfCertificate, subjectLines } from '../support/openssl.ts';
import { testKeyPool } from '../support/keys.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';
import { AdapterRig } from '../support/adapter-rig.ts';
import type { KeyPool, CreateProcessOptions } from '../../src/sandbox/index.ts';

let pool: KeyPool;
let subscription: FreshSubscription;
let rig: AdapterRig;

beforeAll(async () => {
  pool = await testKeyPool();
  subscription = await freshSubscription('provisioning', {
    deadLetterMaxDeliveryAttempts: 5,
    retryBackoffSeconds: { min: 0, max: 1 },
  });
  rig = await AdapterRig.start({
    pubsub: {
      topicPublish: (data, attributes) => subscription.publish(data, attributes),
      subscription: subscription.subscriptionName,
      clientOptions: subscription.clientOptions,
    },
  });
});

afterAll(async () => {
  await rig?.stop();
  await subscription?.cleanup();
});

function create(options: Partial<CreateProcessOptions> & { key?: CreateProcessOptions['key'] }): string {
  return rig.tenant.createProcess({ key: options.key ?? pool.next('ec-p256'), ...options });
}

async function expectIssued(id: string): Promise<string> {
  const resource = rig.tenant.process(id);
  expect(resource?.failureMessage, `process ${id} failed`).toBeUndefined();
  const pem = resource?.issuedCertificate;
  expect(pem).toBeDefined();
  const verdict = await verifyCertificate(pem as string, rig.caCertificatePem);
  expect(verdict.ok, verdict.stderr + verdict.stdout).toBe(true);
  const device = rig.tenant.process(id)?.subjectPublicKeyInfo as string;
  expect((await spkiDerOfCertificate(pem as string)).equals(Buffer.from(device, 'base64'))).toBe(true);
  return pem as string;
}

describe('certificates for every kind of device and user', () => {
  it.each([
    {
      label: 'RSA-2048 device',
      key: 'rsa-2048',
      subject: { kind: 'device', serialNumber: 'SN-RSA-1', deviceDirectoryApiId: 'dev-rsa-1' },
    },
    {
      label: 'EC P-256 device',
      key: 'ec-p256',
      subject: { kind: 'device', serialNumber: 'SN-EC-1', deviceDirectoryApiId: 'dev-ec-1' },
    },
    {
      label: 'RSA-2048 affiliated user',
      key: 'rsa-2048',
      subject: {
        kind: 'user',
        userPrimaryEmail: 'ada@example.com',
        userDirectoryApiId: 'u-1',
        device: { serialNumber: 'SN-U-1', deviceDirectoryApiId: 'dev-u-1' },
      },
    },
    {
      label: 'EC P-256 unaffiliated user',
      key: 'ec-p256',
      subject: { kind: 'user', userPrimaryEmail: 'grace@example.com', userDirectoryApiId: 'u-2' },
    },
  ] as const)(
    '$label gets a certificate that openssl verifies, with the device key and the profile subject',
    async ({ key, subject }) => {
      const id = create({ key: pool.next(key), subject });
      await rig.notify(id);
      await rig.tenant.waitUntilFinished([id], 20_000);
      const pem = await expectIssued(id);
      const lines = await subjectLines(pem, 'x509');
      const cn = subject.kind === 'device' ? subject.serialNumber : subject.userPrimaryEmail;
      expect(lines).toContain(`CN=${cn}`);
      expect(lines).toContain('O=certprov test');
      expect(rig.tenant.counters(id).signDataCalls).toBe(1);
      expect(rig.tenant.counters(id).uploads).toBe(1);
      expect(await rig.issuances(id)).toBe(1);
    },
  );

  it('an email with "," and "+" in a subject template stays one CN', async () => {
    const email = 'o,brien+certs@example.com';
    const id = create({ subject: { kind: 'user', userPrimaryEmail: email, userDirectoryApiId: 'u-3' } });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    const lines = await subjectLines(await expectIssued(id), 'x509');
    expect(lines.filter((l) => l.startsWith('CN='))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('O='))).toEqual(['O=certprov test']);
    expect(lines.join('\n')).toContain('brien');
  });

  it.each([
    { encoding: 'json-camel', resourceNames: false, wrapped: false },
    { encoding: 'json-snake', resourceNames: false, wrapped: false },
    { encoding: 'protobuf', resourceNames: false, wrapped: false },
    { encoding: 'json-camel', resourceNames: true, wrapped: false },
    { encoding: 'protobuf', resourceNames: true, wrapped: false },
    { encoding: 'json-camel', resourceNames: false, wrapped: true },
    { encoding: 'json-snake', resourceNames: true, wrapped: true },
    { encoding: 'protobuf', resourceNames: false, wrapped: true },
    { encoding: 'protobuf', resourceNames: true, wrapped: true },
  ] as const)(
    'a $encoding notification (resource names: $resourceNames, wrapped: $wrapped) is decoded and provisioned',
    async ({ encoding, resourceNames, wrapped }) => {
      const id = create({ shape: resourceNames ? 'flat' : 'nested' });
      await rig.notify(id, { encoding, resourceNames, wrapped });
      await rig.tenant.waitUntilFinished([id], 20_000);
      await expectIssued(id);
    },
  );

  it('an EC device that returns a raw r||s signature is still provisioned (DER in the CSR)', async () => {
    const id = create({ ecdsaEncoding: 'ieee-p1363' });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    await expectIssued(id);
  });
});

describe('processes that must fail, and how', () => {
  it('a bad proof-of-possession signature → setFailure with a reference, no certificate, no CA call', async () => {
    const id = create({ badSignature: true });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    const resource = rig.tenant.process(id);
    expect(resource?.issuedCertificate).toBeUndefined();
    expect(resource?.failureMessage).toMatch(
      /proof-of-possession signature could not be verified\. \(reference CP-[0-9A-Z]{8}\)/,
    );
    expect(rig.tenant.counters(id).setFailures).toBe(1);
    expect(await rig.issuances(id)).toBe(0);
    // The same correlation id is in the log line with the details.
    const reference = /CP-[0-9A-Z]{8}/.exec(resource?.failureMessage ?? '')?.[0];
    expect(rig.logs.entries().some((e) => e.correlationId === reference && e.reason === 'bad_signature')).toBe(true);
  });

  it('a known CA connection with an unknown profile is ours and misconfigured → claimed, setFailure naming the profile, no signData', async () => {
    const id = create({ profile: 'no_such_profile' });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    expect(rig.tenant.process(id)?.failureMessage).toContain('"no_such_profile"');
    expect(rig.tenant.claimedBy(id)).toBe(rig.config.instanceId);
    expect(rig.tenant.counters(id)).toMatchObject({ claims: 1, signDataCalls: 0 });
  });

  it('an RSA-1024 device key → setFailure, no signData, no CA call', async () => {
    const id = create({ key: pool.next('rsa-1024') });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    expect(rig.tenant.process(id)?.failureMessage).toMatch(/key is not allowed/i);
    expect(rig.tenant.counters(id).signDataCalls).toBe(0);
    expect(await rig.issuances(id)).toBe(0);
  });

  it('a device that refuses to sign ends the process without a second signData', async () => {
    const id = create({ deviceRefuses: true });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    await waitFor(
      () => rig.logs.entries().some((e) => e.processId === id && e.outcome === 'failed'),
      10_000,
      'process done',
    );
    expect(rig.tenant.counters(id).signDataCalls).toBe(1);
    expect(rig.tenant.process(id)?.issuedCertificate).toBeUndefined();
  });
});

describe('processes that need no work', () => {
  async function outcomeOf(id: string): Promise<string | undefined> {
    await waitFor(
      () => rig.logs.entries().some((e) => e.processId === id && typeof e.outcome === 'string'),
      15_000,
      `outcome of ${id}`,
    );
    return rig.logs.entries().find((e) => e.processId === id && typeof e.outcome === 'string')?.reason as
      string | undefined;
  }

  it('a process claimed by another adapter instance is acknowledged: no signData, no setFailure', async () => {
    const acked = await rig.counter('certprov_messages_acked_total');
    const id = create({ preClaimedBy: 'another-adapter' });
    await rig.notify(id);
    expect(await outcomeOf(id)).toBe('claimed_elsewhere');
    await expect.poll(() => rig.counter('certprov_messages_acked_total'), { timeout: 5_000 }).toBeGreaterThan(acked);
    expect(rig.tenant.counters(id)).toMatchObject({ signDataCalls: 0, setFailures: 0 });
  });

  it.each([
    { what: 'an unknown CA connection reference', options: { caConnection: 'no_such_ca' }, reference: 'no_such_ca' },
    {
      what: 'a SCEP process whose connection names our CA connection',
      options: { shape: 'scep', caConnection: 'default_ca_config' },
      reference: 'default_ca_config',
    },
  ] as const)(
    "$what is another adapter's: acknowledged, never claimed, never failed, counted by reference",
    async ({ options, reference }) => {
      const acked = await rig.counter('certprov_messages_acked_total');
      const id = create(options);
      await rig.notify(id);
      expect(await outcomeOf(id)).toBe('not_ours');
      await expect.poll(() => rig.counter('certprov_messages_acked_total'), { timeout: 5_000 }).toBeGreaterThan(acked);
      expect(rig.tenant.counters(id)).toMatchObject({ claims: 0, signDataCalls: 0, setFailures: 0 });
      expect(rig.tenant.process(id).failureMessage).toBeUndefined();
      expect(
        await rig.counter('certprov_processes_not_ours_total', { ca_connection: reference }),
      ).toBeGreaterThanOrEqual(1);
      const lines = rig.logs.entries().filter((e) => e.processId === id && e.reference === reference);
      expect(lines).toHaveLength(1);
      expect(lines[0]?.level).toBe('info');
    },
  );

  it.each(['issued', 'failed'] as const)(
    'a process already %s is acknowledged without claim or signData',
    async (finished) => {
      const id = create({ finished });
      await rig.notify(id);
      expect(await outcomeOf(id)).toBe('already_finished');
      expect(rig.tenant.counters(id)).toMatchObject({ claims: 0, signDataCalls: 0, setFailures: 0, uploads: 0 });
    },
  );
});

describe('duplicates and at-least-once delivery', () => {
  it('the same notification twice at once and again after the end → one signData, one certificate', async () => {
    const id = create({ signDelayMs: 200 });
    const acked = await rig.counter('certprov_messages_acked_total');
    await Promise.all([rig.notify(id), rig.notify(id, { encoding: 'protobuf' })]);
    await rig.tenant.waitUntilFinished([id], 20_000);
    await expect
      .poll(() => rig.counter('certprov_messages_acked_total'), { timeout: 10_000 })
      .toBeGreaterThanOrEqual(acked + 2);
    await rig.notify(id);
    await expect
      .poll(() => rig.counter('certprov_messages_acked_total'), { timeout: 10_000 })
      .toBeGreaterThanOrEqual(acked + 3);
    await expectIssued(id);
    expect(rig.tenant.counters(id)).toMatchObject({ signDataCalls: 1, uploads: 1, doubleSignData: 0 });
    expect(await rig.issuances(id)).toBe(1);
  });

  it('an undecodable message is nacked, counted, logged once, and parked by the dead-letter policy', async () => {
    const before = await rig.counter('certprov_messages_malformed_total');
    const garbage = Buffer.from([0xff, 0x00, 0x13, 0x37, 0x42]);
    await rig.publishRaw(garbage);
    // maxDeliveryAttempts 5: the emulator moves it to the dead-letter topic after five nacks.
    const [dead] = await waitForDeadLetter();
    expect(dead?.data.equals(garbage)).toBe(true);
    expect(dead?.deliveries).toBe('5');
    expect(await rig.counter('certprov_messages_malformed_total')).toBeGreaterThanOrEqual(before + 5);
    expect(await rig.counter('certprov_messages_nacked_total', { reason: 'malformed' })).toBeGreaterThanOrEqual(5);
    const warnings = rig.logs
      .entries()
      .filter((e) => e.message === 'undecodable provisioning notification; nacked for the dead-letter policy');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.messageId).toEqual(expect.any(String));
  });
});

async function waitForDeadLetter(): Promise<{ data: Buffer; deliveries: string | undefined }[]> {
  const deadLetter = subscription.deadLetter;
  if (deadLetter === undefined) throw new Error('no dead-letter subscription');
  const parked: { data: Buffer; deliveries: string | undefined }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('nothing reached the dead-letter topic in 30 s')), 30_000);
    deadLetter.subscription.on(
      'message',
      (message: { data: Buffer; attributes: Record<string, string>; ack(): void }) => {
        message.ack();
        parked.push({ data: message.data, deliveries: message.attributes.CloudPubSubDeadLetterSourceDeliveryCount });
        clearTimeout(timer);
        resolve();
      },
    );
  });
  await deadLetter.subscription.close();
  return parked;
}

describe('transient and deployment faults of the Chrome API', () => {
  it('bursts of 503 and 429 are retried and the certificate is issued, with one signData', async () => {
    rig.tenant.faults = { burst503: 4, burst429: 3 };
    try {
      const ids = [create({}), create({ key: pool.next('rsa-2048') })];
      for (const id of ids) await rig.notify(id);
      await rig.tenant.waitUntilFinished(ids, 30_000);
      for (const id of ids) {
        await expectIssued(id);
        expect(rig.tenant.counters(id).signDataCalls).toBe(1);
      }
      expect(await rig.counter('certprov_retries_total')).toBeGreaterThan(0);
    } finally {
      rig.tenant.faults = {};
    }
  });

  it('a signData response lost after Google accepted it → no second signData, certificate still issued', async () => {
    rig.tenant.faults = { dropResponse: { method: 'signData', count: 1 } };
    try {
      const id = create({});
      await rig.notify(id);
      await rig.tenant.waitUntilFinished([id], 30_000);
      await expectIssued(id);
      expect(rig.tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0 });
    } finally {
      rig.tenant.faults = {};
    }
  });

  it.each([
    {
      status: 401,
      set: (): void => void (rig.tenant.expectedToken = 'a-token-the-adapter-does-not-have'),
      clear: (): void => void (rig.tenant.expectedToken = undefined),
    },
    {
      status: 403,
      set: (): void => void (rig.tenant.forbidden = true),
      clear: (): void => void (rig.tenant.forbidden = false),
    },
  ])(
    '$status → no setFailure, not ready, retried until the permissions are fixed, then issued',
    async ({ set, clear }) => {
      set();
      const id = create({});
      try {
        await rig.notify(id);
        await expect
          .poll(() => rig.adapter.health.notReadyReasons().join(), { timeout: 10_000 })
          .toContain('deployment fault (chrome)');
        expect(rig.tenant.process(id)?.failureMessage).toBeUndefined();
        expect(rig.tenant.counters(id).setFailures).toBe(0);
      } finally {
        clear();
      }
      await rig.tenant.waitUntilFinished([id], 30_000);
      await expectIssued(id);
      await expect.poll(() => rig.adapter.health.notReadyReasons(), { timeout: 5_000 }).toEqual([]);
    },
  );
});

describe('restarts', () => {
  it('a restart between signData and the signature → no second signData, the certificate is still issued', async () => {
    const id = create({ deviceOffline: true });
    await rig.notify(id);
    await waitFor(() => rig.tenant.counters(id).signDataCalls === 1, 15_000, 'signData');
    // A new pod with an empty memory store: the message comes back and the process resumes from the resource.
    await rig.restart();
    rig.tenant.deviceComesOnline(id);
    await rig.tenant.waitUntilFinished([id], 30_000);
    await expectIssued(id);
    expect(rig.tenant.counters(id)).toMatchObject({ signDataCalls: 1, doubleSignData: 0, uploads: 1 });
  });
});
