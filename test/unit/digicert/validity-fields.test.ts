/**
 * The validity field each product takes, as DigiCert's order pages document it (products.ts): Authentication Plus
 * takes validity_days, custom_expiration_date and validity_years; Private SSL Plus shows only years. Per product:
 * the backend orders with the right field and the certificate lasts what the profile asked for, and the fake (like
 * DigiCert) refuses a field the product does not take.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssueResult, StepContext } from '../../../src/ca/types.ts';
import { TerminalError } from '../../../src/errors.ts';
import { buildOrderBody } from '../../../src/ca/digicert/order-request.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import { digicertTestEnvironment, type DigicertTestEnvironment } from '../../fakes/digicert/connection.ts';
import { attribute, issueRequestFor, userProfile } from '../../fakes/digicert/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';

const DAY_MS = 86_400_000;
const ctx = (): StepContext => ({ signal: new AbortController().signal, log: silentLogger() });

function leafOf(result: IssueResult) {
  if (result.status !== 'issued') throw new Error(`expected issued, got ${JSON.stringify(result)}`);
  return parseCertificate(result.certificatePem);
}

/** Whole days from now until the certificate's notAfter. */
function daysLeft(notAfter: Date): number {
  return Math.round((notAfter.getTime() - Date.now()) / DAY_MS);
}

function deviceProfile(validityMs: number): RenderedProfile {
  const name = 'd-1234.devices.example.com';
  return {
    name: 'device_profile',
    subject: [[attribute('CN', name)]],
    subjectAltNames: [{ type: 'dns', value: name }],
    validityMs,
    extendedKeyUsages: [EXTENDED_KEY_USAGES.serverAuth as string, EXTENDED_KEY_USAGES.clientAuth as string],
  };
}

describe('client_authentication_plus', () => {
  let env: DigicertTestEnvironment;
  beforeAll(async () => {
    env = await digicertTestEnvironment();
  });
  afterAll(() => env.close());

  it.each([
    ['validity_days', 90, { validity_days: 90 }, 90],
    [
      'custom_expiration_date',
      90,
      { custom_expiration_date: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) as unknown as string },
      90,
    ],
    ['validity_years', 730, { validity_years: 2 }, 730],
  ] as const)('orders with %s and the certificate lasts what the profile asked', async (field, days, sent, lasts) => {
    const ca = field === 'validity_days' ? env.ca : await env.another({ validityField: field });
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile(undefined, { validityMs: days * DAY_MS }));
    const leaf = leafOf(await ca.issue(request, ctx()));
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(order?.body).toMatchObject(sent);
    const others = ['validity_days', 'validity_years', 'custom_expiration_date'].filter((f) => f !== field);
    for (const other of others) expect(order?.body).not.toHaveProperty(other);
    expect(Math.abs(daysLeft(leaf.notAfter) - lasts)).toBeLessThanOrEqual(1);
  });

  it('validity_years beyond the 3 years the product sells is refused', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    const body = { ...buildOrderBody(env.config, request, Date.now()), validity_days: undefined, validity_years: 4 };
    await expect(env.ca.client.placeOrder('client_authentication_plus', body, ctx())).rejects.toThrow(
      /invalid_value:validity_years/,
    );
  });
});

describe('private_ssl_plus', () => {
  let env: DigicertTestEnvironment;
  beforeAll(async () => {
    env = await digicertTestEnvironment({ connection: { product: 'private_ssl_plus', caCertId: 'A1B2C3D4E5F6' } });
  });
  afterAll(() => env.close());

  it('orders whole years with validity_years', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), deviceProfile(365 * DAY_MS));
    const leaf = leafOf(await env.ca.issue(request, ctx()));
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(order?.body).toMatchObject({ validity_years: 1 });
    expect(order?.body).not.toHaveProperty('validity_days');
    expect(Math.abs(daysLeft(leaf.notAfter) - 365)).toBeLessThanOrEqual(1);
  });

  it.each([
    ['validity_days', { validity_days: 90 }],
    ['custom_expiration_date', { custom_expiration_date: '2099-01-01' }],
  ])('the fake refuses %s, which DigiCert does not document for the product', async (field, validity) => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), deviceProfile(365 * DAY_MS));
    const { validity_years: _years, ...rest } = buildOrderBody(env.config, request, Date.now());
    const error = await env.ca.client
      .placeOrder('private_ssl_plus', { ...rest, ...validity }, ctx())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(String(error)).toContain(`invalid_value:${field}`);
    expect(env.fake.ordersForProcess(request.processId)).toHaveLength(0);
  });
});
