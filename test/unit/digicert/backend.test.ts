/**
 * The DigiCert backend's issue / poll / cancel against the fake CertCentral: request counts (one call for an
 * immediate issuance), the order body, never a second order for one process, pending orders followed through the
 * poller's hints or the order itself, definitive refusals as results, cancellation, and the API key kept out of
 * logs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IssueResult, StepContext } from '../../../src/ca/types.ts';
import { DeploymentFaultError, UnclearResultError } from '../../../src/errors.ts';
import { createLogger, silentLogger } from '../../../src/observability/logger.ts';
import { bytesEqual } from '../../../src/pki/der.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { RateBudgetExhaustedError } from '../../../src/ca/digicert/rate-limiter.ts';
import {
  TEST_API_KEY,
  digicertTestEnvironment,
  type DigicertTestEnvironment,
} from '../../fakes/digicert/connection.ts';
import { VirtualClock, attribute, issueRequestFor, userProfile } from '../../fakes/digicert/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';
import { verifyCertificate } from '../../support/openssl.ts';

/** Collects JSON log lines. */
class LogCapture {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  text(): string {
    return this.lines.join('');
  }
}

const ctx = (): StepContext => ({ signal: new AbortController().signal, log: silentLogger() });

function issued(result: IssueResult): Extract<IssueResult, { status: 'issued' }> {
  if (result.status !== 'issued') throw new Error(`expected issued, got ${JSON.stringify(result)}`);
  return result;
}
function pending(result: IssueResult): Extract<IssueResult, { status: 'pending' }> {
  if (result.status !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(result)}`);
  return result;
}

let env: DigicertTestEnvironment;
beforeAll(async () => {
  env = await digicertTestEnvironment();
});
afterAll(() => env.close());
afterEach(() => {
  env.fake.issuance = 'immediate';
  env.fake.clearFaults();
});

describe('issue', () => {
  it('an order issued at once costs exactly one request and yields the device leaf plus the chain', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), userProfile());
    const before = env.fake.count();
    const result = issued(await env.ca.issue(request, ctx()));
    expect(env.fake.count() - before).toBe(1);
    expect(bytesEqual(parseCertificate(result.certificatePem).spkiDer, request.spkiDer)).toBe(true);
    expect(result.chainPem).toEqual([env.fake.ca.intermediatePem, env.fake.ca.rootPem]);
    const verdict = await verifyCertificate(result.certificatePem, env.fake.ca.rootPem, {
      untrusted: [env.fake.ca.intermediatePem],
      purpose: 'sslclient',
    });
    expect(verdict.ok, verdict.stderr).toBe(true);
  });

  it('sends every field explicitly, the process id in the custom field', async () => {
    const pool = await testKeyPool();
    const profile = userProfile('a.user@example.com', {
      subject: [[attribute('CN', 'a.user@example.com')], [attribute('OU', 'Sales')], [attribute('OU', 'EMEA')]],
      validityMs: 90 * 86_400_000,
    });
    const request = issueRequestFor(pool.next('ec-p256'), profile);
    issued(await env.ca.issue(request, ctx()));
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(order?.body).toMatchObject({
      certificate: {
        common_name: 'a.user@example.com',
        emails: ['a.user@example.com'],
        organization_units: ['Sales', 'EMEA'],
        signature_hash: 'sha256',
      },
      organization: { id: 408115 },
      validity_days: 90,
      skip_approval: true,
      payment_method: 'balance',
      disable_renewal_notifications: true,
      custom_fields: [{ metadata_id: 77, value: request.processId }],
    });
    expect(order?.body.comments).toContain(request.processId);
    expect(String((order?.body.certificate as Record<string, unknown>).csr)).toMatch(
      /^-----BEGIN CERTIFICATE REQUEST-----\n/,
    );
  });

  it('a pending order answers pending with the order ids and a lookup key', async () => {
    env.fake.issuance = 'pending';
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    const result = pending(await env.ca.issue(request, ctx()));
    const [order] = env.fake.ordersForProcess(request.processId);
    expect(result.ref).toMatchObject({ orderId: order?.id, requestId: order?.requestId });
    expect(result.ref.checkedAt).toBeTypeOf('number');
    expect(result.lookupKey).toBe(`digicert:${env.ca.keyId}:${order?.id}`);
    expect(result.lookupKey).not.toContain(TEST_API_KEY);
  });

  it('a CSR whose signature does not verify → failed (a result, not an exception)', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), userProfile(), { badSignature: true });
    const result = await env.ca.issue(request, ctx());
    expect(result.status).toBe('failed');
    if (result.status === 'failed') {
      expect(result.userMessage).toMatch(/could not read the certificate request/);
      expect(result.detail).toContain('csr_invalid_cannot_parse');
    }
    expect(env.fake.ordersForProcess(request.processId)).toHaveLength(0);
  });

  it("never asks for more validity than the connection's maximum", async () => {
    const pool = await testKeyPool();
    const connection = await env.another({ maxValidityDays: 400 });
    const request = issueRequestFor(pool.next('ec-p256'), userProfile(undefined, { validityMs: 2000 * 86_400_000 }));
    issued(await connection.issue(request, ctx()));
    expect(env.fake.ordersForProcess(request.processId)[0]?.body.validity_days).toBe(400);
  });

  it('cert_validity_exceeds_order_validity from DigiCert → failed', async () => {
    const pool = await testKeyPool();
    env.fake.injectFault('order', {
      kind: 'status',
      status: 400,
      body: JSON.stringify({ errors: [{ code: 'cert_validity_exceeds_order_validity', message: 'too long' }] }),
    });
    const result = await env.ca.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), ctx());
    expect(result.status).toBe('failed');
    if (result.status === 'failed') expect(result.detail).toContain('cert_validity_exceeds_order_validity');
  });

  it('a missing permission is a deployment fault, thrown (never a setFailure)', async () => {
    env.fake.deniedOperations.add('order');
    try {
      const pool = await testKeyPool();
      await expect(env.ca.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), ctx())).rejects.toBeInstanceOf(
        DeploymentFaultError,
      );
    } finally {
      env.fake.deniedOperations.clear();
    }
  });

  it('a 5xx after DigiCert created the order is unclear: thrown, not retried', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    env.fake.injectFault('order', { kind: 'status', status: 500, afterApply: true });
    await expect(env.ca.issue(request, ctx())).rejects.toBeInstanceOf(UnclearResultError);
    expect(env.fake.ordersForProcess(request.processId)).toHaveLength(1);
  });
});

describe('never two orders for one process', () => {
  it('after an unclear POST, the next attempt finds the order (custom field) and orders nothing', async () => {
    const pool = await testKeyPool();
    const key = pool.next('rsa-2048');
    const profile = userProfile();
    const first = issueRequestFor(key, profile);
    env.fake.injectFault('order', { kind: 'reset', afterApply: true });
    await expect(env.ca.issue(first, ctx())).rejects.toBeInstanceOf(UnclearResultError);
    const posts = env.fake.count('order');
    const result = issued(await env.ca.issue({ ...first, priorAttempts: 1 }, ctx()));
    expect(env.fake.count('order')).toBe(posts);
    expect(env.fake.ordersForProcess(first.processId)).toHaveLength(1);
    expect(bytesEqual(parseCertificate(result.certificatePem).spkiDer, first.spkiDer)).toBe(true);
  });

  it('follows a found order that is still pending', async () => {
    env.fake.issuance = 'pending';
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    env.fake.injectFault('order', { kind: 'hang', afterApply: true });
    const hung = new AbortController();
    const attempt = env.ca.issue(request, { signal: hung.signal, log: silentLogger() });
    await env.fake.nextOrder();
    hung.abort(new Error('the adapter died here'));
    await expect(attempt).rejects.toThrow('the adapter died here');
    const result = pending(await env.ca.issue({ ...request, priorAttempts: 1 }, ctx()));
    const orders = env.fake.ordersForProcess(request.processId);
    expect(orders).toHaveLength(1);
    expect(result.ref.orderId).toBe(orders[0]?.id);
  });

  it("does not take another process's order with the same common name; orders once", async () => {
    const pool = await testKeyPool();
    const profile = userProfile();
    const other = issueRequestFor(pool.next('ec-p256'), profile);
    issued(await env.ca.issue(other, ctx()));
    const mine = issueRequestFor(pool.next('ec-p256'), profile, { priorAttempts: 1 });
    const infoReads = env.fake.count('order-info');
    issued(await env.ca.issue(mine, ctx()));
    expect(env.fake.count('order-info') - infoReads).toBe(1); // the other process's order was read and not matched
    expect(env.fake.ordersForProcess(mine.processId)).toHaveLength(1);
    expect(env.fake.ordersForProcess(other.processId)).toHaveLength(1);
  });

  it('an earlier attempt that never reached DigiCert: one list call, then the order', async () => {
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('rsa-2048'), userProfile(), { priorAttempts: 2 });
    const before = { list: env.fake.count('list-orders'), order: env.fake.count('order') };
    issued(await env.ca.issue(request, ctx()));
    expect(env.fake.count('list-orders') - before.list).toBe(1);
    expect(env.fake.count('order') - before.order).toBe(1);
    const listed = env.fake.requests.filter((r) => r.operation === 'list-orders').at(-1);
    expect(listed?.status).toBe(200);
  });
});

describe('searching for an earlier attempt: a user with several devices shares one common name', () => {
  const HOUR = 3_600_000;
  let clock = Date.now();
  let own: DigicertTestEnvironment;
  beforeAll(async () => {
    own = await digicertTestEnvironment({ now: () => clock, fake: { now: () => clock } });
  });
  afterAll(() => own.close());

  /** The user enrolled three other devices an hour before this process was recorded. */
  async function otherDevices(profile: ReturnType<typeof userProfile>): Promise<void> {
    const pool = await testKeyPool();
    for (let i = 0; i < 3; i += 1) issued(await own.ca.issue(issueRequestFor(pool.next('ec-p256'), profile), ctx()));
    clock += HOUR;
  }

  it('lists by email and date window, and reads only the order placed since the process was recorded', async () => {
    const pool = await testKeyPool();
    const profile = userProfile();
    await otherDevices(profile);
    const mine = issueRequestFor(pool.next('ec-p256'), profile, { processCreatedAt: clock });
    clock += 60_000;
    own.fake.injectFault('order', { kind: 'reset', afterApply: true });
    await expect(own.ca.issue(mine, ctx())).rejects.toBeInstanceOf(UnclearResultError);
    // Later, the user's fourth device orders too (newest first in the list).
    clock += 60_000;
    issued(await own.ca.issue(issueRequestFor(pool.next('ec-p256'), profile), ctx()));
    const before = { list: own.fake.count('list-orders'), info: own.fake.count('order-info') };
    const posts = own.fake.count('order');
    issued(await own.ca.issue({ ...mine, priorAttempts: 1 }, ctx()));
    expect(own.fake.count('order')).toBe(posts);
    expect(own.fake.count('list-orders') - before.list).toBe(1);
    // The fourth device's order and this process's own: never the three placed before the process existed.
    expect(own.fake.count('order-info') - before.info).toBe(2);
    expect(own.fake.ordersForProcess(mine.processId)).toHaveLength(1);
    const listed = own.fake.requests.filter((r) => r.operation === 'list-orders').at(-1);
    expect(listed?.query).toContain(`filters[email]=${profile.subjectAltNames[0]?.value ?? '?'}`);
    expect(listed?.query).toContain('filters[product_name_id]=client_authentication_plus');
    expect(listed?.query).not.toContain('filters[common_name]');
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    expect(listed?.query).toContain(`filters[date_created]=${day(mine.processCreatedAt! - 86_400_000 - 600_000)}...`);
  });

  it('nothing placed since the process was recorded: one list request, no order read, one order', async () => {
    const pool = await testKeyPool();
    const profile = userProfile();
    await otherDevices(profile);
    const mine = issueRequestFor(pool.next('ec-p256'), profile, { priorAttempts: 1, processCreatedAt: clock });
    const before = {
      list: own.fake.count('list-orders'),
      info: own.fake.count('order-info'),
      order: own.fake.count('order'),
    };
    issued(await own.ca.issue(mine, ctx()));
    expect(own.fake.count('list-orders') - before.list).toBe(1);
    expect(own.fake.count('order-info') - before.info).toBe(0);
    expect(own.fake.count('order') - before.order).toBe(1);
  });
});

describe('poll', () => {
  async function pendingOrder() {
    env.fake.issuance = 'pending';
    const pool = await testKeyPool();
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    const result = pending(await env.ca.issue(request, ctx()));
    env.fake.issuance = 'immediate';
    return { request, ref: result.ref, orderId: Number(result.ref.orderId) };
  }

  it('with the poller hint "issued": one download, no order read', async () => {
    const { request, ref, orderId } = await pendingOrder();
    await env.fake.approve(orderId);
    const before = env.fake.count();
    const result = issued(
      await env.ca.poll(
        { ...ref, seenStatus: 'issued', certificateId: env.fake.order(orderId).certificateId },
        request,
        ctx(),
      ),
    );
    expect(env.fake.count() - before).toBe(1);
    expect(env.fake.count('download')).toBeGreaterThan(0);
    expect(bytesEqual(parseCertificate(result.certificatePem).spkiDer, request.spkiDer)).toBe(true);
    expect(result.chainPem).toHaveLength(2);
  });

  it.each(['rejected', 'canceled', 'revoked'])('with the hint "%s": failed without a request', async (status) => {
    const { request, ref } = await pendingOrder();
    const before = env.fake.count();
    const result = await env.ca.poll({ ...ref, seenStatus: status }, request, ctx());
    expect(env.fake.count() - before).toBe(0);
    expect(result.status).toBe('failed');
    if (result.status === 'failed') {
      expect(result.detail).toContain(status);
      expect(result.userMessage.length).toBeLessThan(100);
    }
  });

  it('without a hint (the fallback): reads the order; still pending → pending with a fresh ref', async () => {
    const { request, ref, orderId } = await pendingOrder();
    const result = pending(await env.ca.poll({ ...ref, seenStatus: 'pending' }, request, ctx()));
    expect(result.ref).toMatchObject({ orderId, requestId: env.fake.order(orderId).requestId });
    expect(result.ref.seenStatus).toBeUndefined();
    expect(result.lookupKey).toBe(env.ca.lookupKey(orderId));
  });

  it('with the bulk poller running, a routine look asks DigiCert nothing until orderFallbackInterval has passed', async () => {
    const { request, ref, orderId } = await pendingOrder();
    const connection = await env.another();
    const woken: string[] = [];
    await connection.start({
      store: new MemoryProcessStore(),
      replicaId: 'r1',
      signal: new AbortController().signal,
      wake: (key) => {
        woken.push(key);
        return Promise.resolve(true);
      },
      reportFault: () => undefined,
      clearFault: () => undefined,
    });
    try {
      const infoReads = env.fake.count('order-info');
      const routine = pending(await connection.poll(ref, request, ctx()));
      expect(env.fake.count('order-info')).toBe(infoReads);
      expect(routine.retryAfterMs).toBe(env.config.pendingRecheckInterval);
      expect(routine.ref.checkedAt).toBe(ref.checkedAt);
      // The order was checked 2 h ago; the test connection's fallback is 1 h: now DigiCert is asked.
      const stale = pending(await connection.poll({ ...ref, checkedAt: Date.now() - 7_200_000 }, request, ctx()));
      expect(env.fake.count('order-info')).toBe(infoReads + 1);
      expect(Number(stale.ref.checkedAt)).toBeGreaterThan(Date.now() - 5_000);
      expect(stale.ref.orderId).toBe(orderId);
    } finally {
      await connection.close();
    }
  });

  it('without a hint: a rejected order → failed; an issued one → downloaded', async () => {
    const a = await pendingOrder();
    env.fake.reject(a.orderId);
    expect((await env.ca.poll(a.ref, a.request, ctx())).status).toBe('failed');
    const b = await pendingOrder();
    await env.fake.approve(b.orderId);
    issued(await env.ca.poll(b.ref, b.request, ctx()));
  });
});

describe('cancel', () => {
  it('cancels a pending order with "canceled" and a note', async () => {
    env.fake.issuance = 'pending';
    const pool = await testKeyPool();
    const result = pending(await env.ca.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), ctx()));
    await env.ca.cancel(result.ref, 'the CA request stayed pending longer than scheduler.caMaxWait', ctx());
    const order = env.fake.order(Number(result.ref.orderId));
    expect(order.status).toBe('canceled');
    expect(order.cancelNote).toMatch(/^certprov: the CA request stayed pending/);
  });

  it('rejects the request of an order still waiting for approval', async () => {
    const connection = await env.another({ skipApproval: false });
    const pool = await testKeyPool();
    const result = pending(await connection.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), ctx()));
    expect(env.fake.order(Number(result.ref.orderId)).status).toBe('needs_approval');
    await connection.cancel(result.ref, 'the Chrome process failed while the CA request was pending', ctx());
    expect(env.fake.order(Number(result.ref.orderId)).status).toBe('rejected');
  });

  it('leaves an order that was issued meanwhile alone (DigiCert refuses to cancel it)', async () => {
    const pool = await testKeyPool();
    issued(await env.ca.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), ctx()));
    const orderId = [...env.fake.orders.keys()].at(-1) as number;
    const before = env.fake.count('cancel');
    await env.ca.cancel({ orderId }, 'too late', ctx());
    expect(env.fake.count('cancel') - before).toBe(0);
    expect(env.fake.order(orderId).status).toBe('issued');
  });
});

describe('secrets', () => {
  it('the API key appears in no log line, even at trace level', async () => {
    const capture = new LogCapture();
    const log = createLogger({ level: 'trace', destination: capture });
    const pool = await testKeyPool();
    const connection = await env.another();
    env.fake.injectFault('order', { kind: 'status', status: 503 });
    await connection
      .issue(issueRequestFor(pool.next('ec-p256'), userProfile()), { signal: new AbortController().signal, log })
      .catch(() => undefined);
    await connection.issue(issueRequestFor(pool.next('ec-p256'), userProfile()), {
      signal: new AbortController().signal,
      log,
    });
    expect(capture.lines.length).toBeGreaterThan(2);
    expect(capture.text()).not.toContain(TEST_API_KEY);
    expect(capture.text()).not.toContain('BEGIN CERTIFICATE REQUEST');
  });

  it('probe checks the key and the organization without ordering', async () => {
    const before = env.fake.count('order');
    await expect(env.ca.probe(ctx())).resolves.toMatch(/organization 408115 validations: ov: completed/);
    expect(env.fake.count('order')).toBe(before);
  });
});

describe('attempts that never reached DigiCert', () => {
  it('are not searched for: no list request when every unrecorded attempt was held back by the rate budget', async () => {
    const pool = await testKeyPool();
    const tight = await env.another({
      rateLimit: { requestsPer5Seconds: 1, requestsPer3Minutes: 1000, maxWait: '0s' },
    });
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    issued(await tight.issue(request, ctx())); // uses the one request of this 5-second window
    const next = issueRequestFor(pool.next('ec-p256'), userProfile());
    const refused = await tight.issue(next, ctx()).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RateBudgetExhaustedError);
    await new Promise((r) => setTimeout(r, 5_100));
    const lists = env.fake.count('list-orders');
    issued(await tight.issue({ ...next, priorAttempts: 1 }, ctx()));
    expect(env.fake.count('list-orders')).toBe(lists);
    expect(env.fake.ordersForProcess(next.processId)).toHaveLength(1);
  });

  it('an unclear attempt after an unsent one is still searched for', async () => {
    const pool = await testKeyPool();
    const clock = new VirtualClock(Date.now());
    const replica = await env.another({}, { sleep: clock.sleep, now: clock.now });
    const request = issueRequestFor(pool.next('ec-p256'), userProfile());
    const limited = JSON.stringify({ errors: [{ code: 'request_limit_exceeded', message: 'slow down' }] });
    env.fake.injectFault('order', { kind: 'status', status: 429, body: limited }, 3);
    await expect(replica.issue(request, ctx())).rejects.toThrow(/429/); // attempt 1: refused three times, unsent
    env.fake.injectFault('order', { kind: 'reset', afterApply: true });
    const lists = env.fake.count('list-orders');
    await expect(replica.issue({ ...request, priorAttempts: 1 }, ctx())).rejects.toBeInstanceOf(UnclearResultError); // attempt 2
    expect(env.fake.count('list-orders')).toBe(lists);
    const posts = env.fake.count('order');
    const result = issued(await replica.issue({ ...request, priorAttempts: 2 }, ctx())); // attempt 3: searches, finds
    expect(env.fake.count('list-orders') - lists).toBe(1);
    expect(env.fake.count('order')).toBe(posts);
    expect(env.fake.ordersForProcess(request.processId)).toHaveLength(1);
    expect(bytesEqual(parseCertificate(result.certificatePem).spkiDer, request.spkiDer)).toBe(true);
  });
});
