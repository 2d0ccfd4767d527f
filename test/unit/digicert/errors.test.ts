/**
 * DigiCert error bodies (both shapes) and the mapping of codes to the four outcome classes of DESIGN.md §5. The
 * table runs through the real HTTP layer against the fake CertCentral where the fake can produce the error, and
 * against the classifier directly for codes only the real service produces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DigicertNotFoundError,
  TimeFrameTooLongError,
  classifyDigicertResponse,
  parseDigicertErrorBody,
} from '../../../src/ca/digicert/errors.ts';
import {
  DeploymentFaultError,
  RetryableError,
  TerminalError,
  UnclearResultError,
  type CertprovError,
} from '../../../src/errors.ts';
import { summarizeResponse, type HttpErrorResponse } from '../../../src/http/classify.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { buildOrderBody } from '../../../src/ca/digicert/order-request.ts';
import {
  TEST_API_KEY,
  digicertTestEnvironment,
  type DigicertTestEnvironment,
} from '../../fakes/digicert/connection.ts';
import { VirtualClock, issueRequestFor, userProfile } from '../../fakes/digicert/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';

function response(status: number, body: unknown, operation = 'order'): HttpErrorResponse {
  const bodyText = typeof body === 'string' ? body : JSON.stringify(body);
  const detail = parseDigicertErrorBody(bodyText);
  return {
    api: 'digicert',
    operation,
    status,
    headers: new Headers(),
    bodyText,
    detail,
    summary: summarizeResponse('digicert', operation, status, detail),
    safeToRepeat: operation !== 'order',
    retryAfterMs: undefined,
  };
}

describe('parseDigicertErrorBody', () => {
  it.each([
    [
      'the current array shape',
      { errors: [{ code: 'csr_invalid_cannot_parse', message: 'Unable to parse the CSR.' }] },
      'csr_invalid_cannot_parse',
      'Unable to parse the CSR.',
    ],
    [
      'the older single-object shape',
      { errors: { code: 'invalid_value:emails', message: 'emails is required.' } },
      'invalid_value:emails',
      'emails is required.',
    ],
    [
      'the older code → message map',
      { errors: { 'not_found|order': 'Order not found.' } },
      'not_found|order',
      'Order not found.',
    ],
    [
      'an `error` object',
      { error: { code: 'access_denied|missing_permission', message: 'No permission.' } },
      'access_denied|missing_permission',
      'No permission.',
    ],
  ])('reads %s', (_label, body, code, message) => {
    const detail = parseDigicertErrorBody(JSON.stringify(body));
    expect(detail.code).toBe(code);
    expect(detail.message).toBe(message);
    expect(detail.reasons).toEqual([code]);
  });

  it('keeps every code of a multi-error body', () => {
    const detail = parseDigicertErrorBody(
      JSON.stringify({
        errors: [
          { code: 'invalid_value:emails', message: 'a' },
          { code: 'invalid_value:common_name', message: 'b' },
        ],
      }),
    );
    expect(detail.reasons).toEqual(['invalid_value:emails', 'invalid_value:common_name']);
    expect(detail.message).toBe('a; b');
  });

  it.each(['<html><body>Bad Gateway</body></html>', '', 'null', '[1,2]', '{"errors": 5}'])(
    'gives {} for %j',
    (text) => {
      expect(parseDigicertErrorBody(text)).toEqual({});
    },
  );
});

describe('classifyDigicertResponse', () => {
  const cases: [string, HttpErrorResponse, new (...args: never[]) => CertprovError][] = [
    [
      'csr_invalid_cannot_parse → terminal',
      response(400, { errors: [{ code: 'csr_invalid_cannot_parse', message: 'x' }] }),
      TerminalError,
    ],
    [
      'cert_validity_exceeds_order_validity → terminal',
      response(400, { errors: [{ code: 'cert_validity_exceeds_order_validity', message: 'x' }] }),
      TerminalError,
    ],
    [
      'invalid_value:common_name → terminal',
      response(400, { errors: [{ code: 'invalid_value:common_name', message: 'x' }] }),
      TerminalError,
    ],
    [
      'invalid_value:emails (older shape) → terminal',
      response(400, { errors: { code: 'invalid_value:emails', message: 'x' } }),
      TerminalError,
    ],
    [
      'invalid_value:organization.id → deployment fault (every order would fail)',
      response(400, { errors: [{ code: 'invalid_value:organization.id', message: 'x' }] }),
      DeploymentFaultError,
    ],
    [
      'invalid_value:custom_fields → deployment fault',
      response(400, { errors: [{ code: 'invalid_value:custom_fields', message: 'x' }] }),
      DeploymentFaultError,
    ],
    [
      'access_denied|missing_permission on a 400 → deployment fault',
      response(400, { errors: [{ code: 'access_denied|missing_permission', message: 'x' }] }),
      DeploymentFaultError,
    ],
    [
      'not_found|order → not found (terminal)',
      response(404, { errors: [{ code: 'not_found|order', message: 'x' }] }, 'order-info'),
      DigicertNotFoundError,
    ],
    [
      'a bare 404 page → deployment fault (wrong baseUrl)',
      response(404, '<html>Not Found</html>', 'order-info'),
      DeploymentFaultError,
    ],
    [
      'not_found|product → deployment fault',
      response(404, { errors: [{ code: 'not_found|product', message: 'x' }] }),
      DeploymentFaultError,
    ],
    [
      'time_frame_too_long → its own retryable error',
      response(400, { errors: [{ code: 'time_frame_too_long', message: 'x' }] }, 'status-changes'),
      TimeFrameTooLongError,
    ],
    [
      'an unknown 400 on a read → deployment fault, not the process',
      response(400, { errors: [{ code: 'invalid_filter', message: 'x' }] }, 'list-orders'),
      DeploymentFaultError,
    ],
  ];
  it.each(cases)('%s', (_label, input, expected) => {
    const error = classifyDigicertResponse(input);
    expect(error).toBeInstanceOf(expected);
    if (error instanceof DeploymentFaultError) expect(error.component).toBe('digicert');
    if (error instanceof TerminalError) expect(error.reason).toBe('ca_rejected');
  });

  it('tells the user a CSR problem in plain words', () => {
    const error = classifyDigicertResponse(
      response(400, { errors: [{ code: 'csr_invalid_cannot_parse', message: 'x' }] }),
    );
    expect((error as TerminalError).userMessage).toMatch(/could not read the certificate request/);
  });
});

describe('error classes through the client and the fake', () => {
  let env: DigicertTestEnvironment;
  const ctx = () => ({ signal: new AbortController().signal, log: silentLogger() });
  const clock = new VirtualClock(Date.now());
  beforeAll(async () => {
    // Waits (retry pauses, the 429 backoff) run on a virtual clock; the fake keeps real time.
    env = await digicertTestEnvironment({ sleep: clock.sleep, now: clock.now });
  });
  const validBody = async () => {
    const pool = await testKeyPool();
    return buildOrderBody(env.config, issueRequestFor(pool.next('ec-p256'), userProfile()), Date.now());
  };
  afterAll(() => env.close());

  it('a wrong API key → deployment fault with a hint, and the key is not in the message', async () => {
    env.fake.apiKey = 'another-key';
    try {
      const error = await env.ca.client.orderInfo(1, 'poll', ctx()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeploymentFaultError);
      expect((error as DeploymentFaultError).hint).toMatch(/API key/);
      expect(String((error as Error).message)).toContain('401');
      expect(String((error as Error).message)).not.toContain('dc-test-key');
    } finally {
      env.fake.apiKey = TEST_API_KEY;
    }
  });

  it('access_denied|missing_permission (403) → deployment fault', async () => {
    env.fake.deniedOperations.add('list-orders');
    try {
      await expect(env.ca.client.listOrders({ common_name: 'x' }, 10, ctx())).rejects.toBeInstanceOf(
        DeploymentFaultError,
      );
    } finally {
      env.fake.deniedOperations.clear();
    }
  });

  it('not_found|order in the older object shape → DigicertNotFoundError', async () => {
    const legacy = await digicertTestEnvironment({ fake: { legacyErrorShape: true } });
    try {
      const error = await legacy.ca.client.orderInfo(424242, 'poll', ctx()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DigicertNotFoundError);
      expect((error as Error).message).toContain('not_found|order');
    } finally {
      await legacy.close();
    }
  });

  it('a 5xx after the order was applied → UnclearResultError, and the POST is not repeated', async () => {
    const before = env.fake.orders.size;
    env.fake.injectFault('order', { kind: 'status', status: 502, afterApply: true });
    const error = await env.ca.client
      .placeOrder('client_authentication_plus', await validBody(), ctx())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnclearResultError);
    expect(env.fake.orders.size - before).toBe(1);
  });

  it('a 5xx on a read is retried in-call (each attempt through the rate limiter)', async () => {
    env.fake.injectFault('status-changes', { kind: 'status', status: 503 }, 2);
    const before = env.fake.count('status-changes');
    await expect(env.ca.client.statusChanges(60, ctx())).resolves.toEqual([]);
    expect(env.fake.count('status-changes') - before).toBe(3);
  });

  it('a reset of the order POST after it was applied → UnclearResultError and no second POST', async () => {
    env.fake.injectFault('order', { kind: 'reset', afterApply: true });
    const before = env.fake.count('order');
    const orders = env.fake.orders.size;
    const error = await env.ca.client
      .placeOrder('client_authentication_plus', await validBody(), ctx())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnclearResultError);
    expect(env.fake.count('order') - before).toBe(1);
    expect(env.fake.orders.size - orders).toBe(1);
  });

  it('a 429 is retried after a backoff, the order POST included (DigiCert applied nothing)', async () => {
    env.fake.injectFault('order', {
      kind: 'status',
      status: 429,
      body: JSON.stringify({ errors: [{ code: 'request_limit_exceeded', message: 'slow down' }] }),
    });
    const before = env.fake.count('order');
    const orders = env.fake.orders.size;
    const slept = clock.sleeps.length;
    const created = await env.ca.client.placeOrder('client_authentication_plus', await validBody(), ctx());
    expect(created.id).toBeGreaterThan(0);
    expect(env.fake.count('order') - before).toBe(2);
    expect(env.fake.orders.size - orders).toBe(1);
    // The limiter held the retry back (no Retry-After from DigiCert: its own backoff, 5 s first).
    expect(clock.sleeps.slice(slept).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5_000);
  });
});

describe('DigiCert rate limit (the fake answers 429 above its configured rate)', () => {
  it('429 request_limit_exceeded → retried with a backoff; still limited → a retryable error, nothing else', async () => {
    const clock = new VirtualClock(Date.now());
    const limited = await digicertTestEnvironment({
      fake: { rateLimit: { limit: 3, windowMs: 60_000 } },
      sleep: clock.sleep,
      now: clock.now,
    });
    const ctx = () => ({ signal: new AbortController().signal, log: silentLogger() });
    try {
      for (let i = 0; i < 3; i += 1) await limited.ca.client.statusChanges(60, ctx());
      const error = await limited.ca.client.statusChanges(60, ctx()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RetryableError);
      expect(error).not.toBeInstanceOf(DeploymentFaultError);
      expect((error as Error).message).toMatch(/429 request_limit_exceeded/);
      // Three attempts, each held back first by the limiter's growing backoff: 5 s, then 10 s.
      expect(limited.fake.requests.filter((r) => r.status === 429)).toHaveLength(3);
      expect(clock.sleeps.filter((ms) => ms >= 5_000).length).toBeGreaterThanOrEqual(2);
      expect(limited.ca.limiter.backoffRemainingMs).toBeGreaterThan(0);
    } finally {
      await limited.close();
    }
  });
});
