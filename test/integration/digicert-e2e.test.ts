/**
 * DigiCert end to end: Google's Pub/Sub emulator → the adapter → sandbox tenant (simulated ChromeOS clients with
 * real keys) → the DigiCert backend → the fake CertCentral → upload. Every issued certificate is judged by openssl
 * against the fake's root, with its intermediate as the untrusted chain.
 *
 * Covers: issuance in the order call (1.0 DigiCert request per certificate), pending orders finished after an
 * adapter restart (found by the bulk poller, downloaded), an unclear order POST (exactly one order), a rejected
 * order (setFailure, no retry), and an order canceled after scheduler.caMaxWait.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KeyPool } from '../../src/sandbox/index.ts';
import { DigicertAdapterHarness } from '../fakes/digicert/adapter-harness.ts';
import { testKeyPool } from '../support/keys.ts';
import { spkiDerOfCertificate, subjectLines, verifyCertificate } from '../support/openssl.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';

let pool: KeyPool;

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  pool = await testKeyPool();
});

async function expectVerified(harness: DigicertAdapterHarness, id: string): Promise<string> {
  const resource = harness.tenant.process(id);
  expect(resource.failureMessage, `process ${id} failed`).toBeUndefined();
  const pem = resource.issuedCertificate as string;
  const verdict = await verifyCertificate(pem, harness.fake.ca.rootPem, {
    untrusted: [harness.fake.ca.intermediatePem],
    purpose: 'sslclient',
  });
  expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);
  const spki = Buffer.from(resource.subjectPublicKeyInfo as string, 'base64');
  expect((await spkiDerOfCertificate(pem)).equals(spki)).toBe(true);
  expect(harness.fake.ordersForProcess(id), `orders of process ${id}`).toHaveLength(1);
  return pem;
}

describe('with the Pub/Sub emulator', () => {
  let subscription: FreshSubscription;
  let harness: DigicertAdapterHarness;

  beforeAll(async () => {
    subscription = await freshSubscription('digicert-e2e', { retryBackoffSeconds: { min: 0, max: 1 } });
  });
  afterEach(async () => {
    await harness?.close();
  });
  afterAll(async () => {
    await subscription?.cleanup();
  });

  const start = (options: Parameters<typeof DigicertAdapterHarness.start>[0] = {}) =>
    DigicertAdapterHarness.start({
      pubsub: {
        subscription: subscription.subscriptionName,
        clientOptions: subscription.clientOptions,
        publish: (data, attributes) => subscription.publish(data, attributes),
      },
      ...options,
    });

  it('issues at once: one DigiCert request per certificate, certificates openssl verifies', async () => {
    harness = await start();
    const ids = harness.tenant.createProcesses(8, { pool, ecShare: 0.5, userShare: 1, affiliatedShare: 0.5 });
    const before = harness.requests() - harness.requests('status-changes');
    await Promise.all(ids.map((id) => harness.notify(id)));
    await harness.tenant.waitUntilFinished(ids, 30_000);
    for (const id of ids) await expectVerified(harness, id);
    const perCertificate = (harness.requests() - harness.requests('status-changes') - before) / ids.length;
    expect(perCertificate).toBe(1);
    const user = ids.find((id) => harness.tenant.process(id).chromeOsUserSession !== undefined) as string;
    const lines = await subjectLines(harness.tenant.process(user).issuedCertificate as string, 'x509');
    expect(lines).toEqual(
      expect.arrayContaining([
        `CN=${harness.tenant.process(user).chromeOsUserSession?.userPrimaryEmail}`,
        'O=Example Org',
      ]),
    );
  });

  it('finishes orders that were pending across an adapter restart (bulk poller, then download)', async () => {
    harness = await start({ fake: { issuance: 'pending' }, connection: { statusPollInterval: '200ms' } });
    const ids = harness.tenant.createProcesses(6, { pool, ecShare: 0.5, userShare: 1 });
    await Promise.all(ids.map((id) => harness.notify(id)));
    await waitFor(() => harness.fake.orders.size === ids.length, 30_000, 'all orders placed');
    await waitUntil(
      async () => (await harness.store.countActive()).await_ca === ids.length,
      10_000,
      'every process waiting on its order',
    );
    expect(ids.map((id) => harness.fake.ordersForProcess(id).length)).toEqual(ids.map(() => 1));

    await harness.stopAdapter();
    // While no adapter runs, DigiCert issues every order.
    for (const order of harness.fake.orders.values()) await harness.fake.approve(order.id);
    const before = {
      order: harness.requests('order'),
      info: harness.requests('order-info'),
      download: harness.requests('download'),
    };
    await harness.startAdapter();
    await harness.tenant.waitUntilFinished(ids, 30_000);
    for (const id of ids) await expectVerified(harness, id);
    expect(harness.requests('order') - before.order).toBe(0);
    // Woken with the issued status by status-changes: one download each, no order reads.
    expect(harness.requests('download') - before.download).toBe(ids.length);
    expect(harness.requests('order-info') - before.info).toBe(0);
  });
});

describe('with the in-process source', () => {
  let harness: DigicertAdapterHarness;
  afterEach(async () => {
    await harness?.close();
  });

  it('an order POST whose answer was lost is found again: exactly one order, certificate issued', async () => {
    harness = await DigicertAdapterHarness.start();
    harness.fake.injectFault('order', { kind: 'status', status: 502, afterApply: true });
    const [id] = harness.tenant.createProcesses(1, { pool, userShare: 1 }) as [string];
    await harness.notify(id);
    await harness.tenant.waitUntilFinished([id], 30_000);
    await expectVerified(harness, id);
    expect(harness.requests('order')).toBe(1);
    expect(harness.requests('list-orders')).toBe(1);
    expect(harness.log.text()).toContain('found the DigiCert order of an earlier attempt');
  });

  it('a rejected order fails the process with a short message and a reference, once', async () => {
    harness = await DigicertAdapterHarness.start({
      fake: { issuance: 'pending' },
      connection: { statusPollInterval: '100ms' },
    });
    const [id] = harness.tenant.createProcesses(1, { pool, userShare: 1 }) as [string];
    await harness.notify(id);
    await waitFor(() => harness.fake.ordersForProcess(id).length === 1, 20_000, 'order placed');
    harness.fake.reject((harness.fake.ordersForProcess(id)[0] as { id: number }).id);
    await harness.tenant.waitUntilFinished([id], 20_000);
    const failure = harness.tenant.process(id).failureMessage;
    expect(failure).toMatch(/^The certificate authority rejected the certificate request\. \(reference [\w-]+\)$/);
    expect(harness.tenant.counters(id).setFailures).toBe(1);
    expect(harness.requests('order')).toBe(1);
  });

  it('an order pending longer than caMaxWait is canceled with a note, and the process failed', async () => {
    harness = await DigicertAdapterHarness.start({
      fake: { issuance: 'pending' },
      scheduler: { caMaxWait: '1s' },
      connection: { pendingRecheckInterval: '200ms' },
    });
    const [id] = harness.tenant.createProcesses(1, { pool, userShare: 1 }) as [string];
    await harness.notify(id);
    await harness.tenant.waitUntilFinished([id], 20_000);
    const [order] = harness.fake.ordersForProcess(id);
    expect(order?.status).toBe('canceled');
    expect(order?.cancelNote).toMatch(/caMaxWait/);
    expect(harness.tenant.process(id).failureMessage).toMatch(/did not approve the request in time/);
  });
});
