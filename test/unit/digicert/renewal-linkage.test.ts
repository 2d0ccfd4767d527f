/**
 * Renewals are linked (issue 16 item 3): when the inventory knows the certificate a process renews, a DigiCert
 * order on a product that documents `renewal_of_order_id` names the predecessor's order, so CertCentral shows one
 * lineage; a product that documents no linkage (Private SSL Plus) orders without it. The fake, like DigiCert, takes
 * the field only for an issued order of the same account and product.
 *
 * Backend level (the IssueRequest's `renews`), then the whole workflow: the inventory record of the first
 * certificate carries its order id (also for an order issued at once), and the user's second certificate is
 * ordered as its renewal.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IssueResult, StepContext } from '../../../src/ca/types.ts';
import { TerminalError } from '../../../src/errors.ts';
import { buildOrderBody } from '../../../src/ca/digicert/order-request.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import { digicertTestEnvironment, type DigicertTestEnvironment } from '../../fakes/digicert/connection.ts';
import { DigicertAdapterHarness } from '../../fakes/digicert/adapter-harness.ts';
import { attribute, issueRequestFor, userProfile } from '../../fakes/digicert/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';

const DAY_MS = 86_400_000;
const ctx = (): StepContext => ({ signal: new AbortController().signal, log: silentLogger() });

function issued(result: IssueResult): Extract<IssueResult, { status: 'issued' }> {
  if (result.status !== 'issued') throw new Error(`expected issued, got ${JSON.stringify(result)}`);
  return result;
}

function renewsOf(result: Extract<IssueResult, { status: 'issued' }>) {
  const leaf = parseCertificate(result.certificatePem);
  return { serial: leaf.serialHex, notAfter: leaf.notAfter.getTime(), ...(result.ref ? { caRef: result.ref } : {}) };
}

describe('client_authentication_plus: renewal_of_order_id', () => {
  let env: DigicertTestEnvironment;
  beforeAll(async () => {
    env = await digicertTestEnvironment();
  });
  afterAll(() => env.close());
  afterEach(() => {
    env.fake.issuance = 'immediate';
  });

  it('an issued result names its order, and a renewal orders as the renewal of that order in one request', async () => {
    expect(env.ca.linksRenewals).toBe(true);
    const pool = await testKeyPool();
    const email = 'renewing.user@example.com';
    const first = issued(await env.ca.issue(issueRequestFor(pool.next('ec-p256'), userProfile(email)), ctx()));
    const [firstOrder] = [...env.fake.orders.values()].filter((o) => o.emails.includes(email));
    expect(first.ref).toEqual({ orderId: firstOrder?.id, certificateId: firstOrder?.certificateId });

    const request = { ...issueRequestFor(pool.next('ec-p256'), userProfile(email)), renews: renewsOf(first) };
    const before = env.fake.count();
    issued(await env.ca.issue(request, ctx()));
    expect(env.fake.count() - before).toBe(1);
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(order?.renewalOfOrderId).toBe(firstOrder?.id);
    expect(order?.body.renewal_of_order_id).toBe(firstOrder?.id);
  });

  it('a certificate first pending, then downloaded, names its order too', async () => {
    env.fake.issuance = 'pending';
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), userProfile());
    const result = await env.ca.issue(request, ctx());
    if (result.status !== 'pending') throw new Error(`expected pending, got ${result.status}`);
    const [order] = env.fake.ordersForProcess(request.processId);
    if (order === undefined) throw new Error('no order');
    await env.fake.approve(order.id);
    const done = issued(await env.ca.poll(result.ref, request, ctx()));
    expect(done.ref).toEqual({ orderId: order.id, certificateId: order.certificateId });
  });

  it('no predecessor, or one without a DigiCert order id: an order without the field', async () => {
    const pool = await testKeyPool();
    const plain = issueRequestFor(pool.next('ec-p256'), userProfile());
    expect(buildOrderBody(env.config, plain, Date.now())).not.toHaveProperty('renewal_of_order_id');
    const fromElsewhere = { ...plain, renews: { serial: '0a', notAfter: Date.now() + DAY_MS } };
    expect(buildOrderBody(env.config, fromElsewhere, Date.now())).not.toHaveProperty('renewal_of_order_id');
  });

  it('the fake refuses a renewal of an order the account does not have, as DigiCert does', async () => {
    const pool = await testKeyPool();
    const request = {
      ...issueRequestFor(pool.next('ec-p256'), userProfile()),
      renews: { serial: '0b', notAfter: Date.now() + DAY_MS, caRef: { orderId: 1 } },
    };
    const result = await env.ca.issue(request, ctx());
    expect(result.status).toBe('failed');
    if (result.status === 'failed') expect(result.detail).toContain('invalid_value:renewal_of_order_id');
    expect(env.fake.ordersForProcess(request.processId)).toHaveLength(0);
  });
});

describe('private_ssl_plus: documents no renewal linkage', () => {
  let env: DigicertTestEnvironment;
  beforeAll(async () => {
    env = await digicertTestEnvironment({ connection: { product: 'private_ssl_plus', caCertId: 'A1B2C3D4E5F6' } });
  });
  afterAll(() => env.close());

  const deviceProfile = (): RenderedProfile => ({
    name: 'device_profile',
    subject: [[attribute('CN', 'd-77.devices.example.com')]],
    subjectAltNames: [{ type: 'dns', value: 'd-77.devices.example.com' }],
    validityMs: 365 * DAY_MS,
    extendedKeyUsages: [EXTENDED_KEY_USAGES.serverAuth as string, EXTENDED_KEY_USAGES.clientAuth as string],
  });

  it('the workflow is not asked for a predecessor, and a renewal orders as a new order', async () => {
    expect(env.ca.linksRenewals).toBe(false);
    const pool = await testKeyPool();
    const first = issued(await env.ca.issue(issueRequestFor(pool.next('rsa-2048'), deviceProfile()), ctx()));
    const request = { ...issueRequestFor(pool.next('rsa-2048'), deviceProfile()), renews: renewsOf(first) };
    issued(await env.ca.issue(request, ctx()));
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(order?.body).not.toHaveProperty('renewal_of_order_id');
  });

  it('the fake refuses the field on this product', async () => {
    const pool = await testKeyPool();
    const first = issued(await env.ca.issue(issueRequestFor(pool.next('rsa-2048'), deviceProfile()), ctx()));
    const request = issueRequestFor(pool.next('rsa-2048'), deviceProfile());
    const body = { ...buildOrderBody(env.config, request, Date.now()), renewal_of_order_id: first.ref?.orderId };
    const error = await env.ca.client.placeOrder('private_ssl_plus', body, ctx()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect(String(error)).toContain('invalid_value:renewal_of_order_id');
  });
});

describe('the workflow links a user renewal', () => {
  let harness: DigicertAdapterHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it('the second certificate of a user and profile is ordered as the renewal of the first one’s order', async () => {
    harness = await DigicertAdapterHarness.start();
    const pool = await testKeyPool();
    const user = { kind: 'user', userPrimaryEmail: 'lin@example.com', userDirectoryApiId: 'udir-lin' } as const;
    const other = { kind: 'user', userPrimaryEmail: 'max@example.com', userDirectoryApiId: 'udir-max' } as const;

    const first = harness.tenant.createProcess({ key: pool.next('ec-p256'), subject: user });
    const stranger = harness.tenant.createProcess({ key: pool.next('ec-p256'), subject: other });
    await harness.notify(first);
    await harness.notify(stranger);
    await harness.tenant.waitUntilFinished([first, stranger], 20_000);
    const second = harness.tenant.createProcess({ key: pool.next('rsa-2048'), subject: user });
    await harness.notify(second);
    await harness.tenant.waitUntilFinished([second], 20_000);

    const orderOf = (id: string) => harness?.fake.ordersForProcess(id)[0];
    const [firstOrder, strangerOrder, secondOrder] = [orderOf(first), orderOf(stranger), orderOf(second)];
    expect(firstOrder?.renewalOfOrderId).toBeUndefined();
    expect(strangerOrder?.renewalOfOrderId).toBeUndefined();
    expect(secondOrder?.renewalOfOrderId).toBe(firstOrder?.id);

    // The inventory kept the order ids of a certificate DigiCert issued in the order call itself.
    const firstLeaf = parseCertificate(harness.tenant.process(first).issuedCertificate ?? '');
    expect(await harness.store.getCertificate('default_ca_config', firstLeaf.serialHex)).toMatchObject({
      caRef: { orderId: firstOrder?.id, certificateId: firstOrder?.certificateId },
      status: 'superseded',
    });
    expect(harness.requests('order')).toBe(3);
  });
});
