import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../../src/chrome/types.ts';
import { SandboxTenant, type FaultSettings, type KeyPool } from '../../../src/sandbox/index.ts';
import { testKeyPool } from '../../support/keys.ts';
import { traceResources } from '../../support/leak-check.ts';
import { algorithmOf, call, claim, errorOf, getProcess, pollOperation, signData } from './sandbox-http.ts';

let pool: KeyPool;
const tenants: SandboxTenant[] = [];

beforeAll(async () => {
  pool = await testKeyPool();
});
afterEach(async () => {
  await Promise.all(tenants.splice(0).map((t) => t.close()));
});

async function start(faults?: FaultSettings): Promise<SandboxTenant> {
  const tenant = await SandboxTenant.start(faults === undefined ? {} : { faults });
  tenants.push(tenant);
  return tenant;
}

describe('lost response', () => {
  it('applies signData, then cuts the connection without an answer', async () => {
    const tenant = await start();
    const key = pool.next('rsa-2048');
    const id = tenant.createProcess({ key });
    await claim(tenant, id);
    tenant.faults = { dropResponse: { method: 'signData', count: 1 } };
    const data = Buffer.from('applied but unanswered');
    await expect(signData(tenant, id, data, algorithmOf(key))).rejects.toThrow(TypeError);
    // The request took effect: the resource records signData, and the device signs.
    expect(tenant.process(id).signData).toBe(data.toString('base64'));
    expect(tenant.counters(id).signDataCalls).toBe(1);
    expect(tenant.faults.dropResponse?.count).toBe(0);
    await expect(tenant.waitUntilFinished([id], 200)).rejects.toThrow(); // signed, not finished
    const readBack = await getProcess(tenant, id);
    expect(readBack.status).toBe(200);
    await expect.poll(() => tenant.process(id).signature, { timeout: 2_000 }).toBeTruthy();
  });

  it('only drops the configured method', async () => {
    const tenant = await start({ dropResponse: { method: 'uploadCertificate', count: 1 } });
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    expect((await claim(tenant, id)).status).toBe(200);
    expect((await getProcess(tenant, id)).status).toBe(200);
    expect(tenant.faults.dropResponse?.count).toBe(1);
  });
});

describe('held response', () => {
  it('applies the call at once and answers only after the hold', async () => {
    const tenant = await start({ holdResponse: { method: 'claim', count: 1, ms: 400 } });
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    const started = Date.now();
    const answer = claim(tenant, id, 'adapter-h');
    await expect.poll(() => tenant.claimedBy(id), { timeout: 300 }).toBe('adapter-h');
    expect((await answer).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect(tenant.faults.holdResponse?.count).toBe(0);
  });
});

describe('error after apply', () => {
  it('applies the claim and answers 503', async () => {
    const tenant = await start({ errorAfterApply: { method: 'claim', count: 1, status: 503 } });
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    const response = await claim(tenant, id, 'adapter-z');
    expect([response.status, errorOf(response).status]).toEqual([503, 'UNAVAILABLE']);
    expect(tenant.claimedBy(id)).toBe('adapter-z');
    expect((await claim(tenant, id, 'adapter-z')).status).toBe(200);
  });
});

describe('throttling and outages', () => {
  it('answers 429 RESOURCE_EXHAUSTED with Retry-After: 1 and does not apply the call', async () => {
    const tenant = await start({ burst429: 1 });
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    const response = await claim(tenant, id);
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(errorOf(response)).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' });
    expect(tenant.claimedBy(id)).toBeUndefined();
    expect(tenant.counters(id).claims).toBe(0);
    expect(tenant.requests.claim).toBe(1);
    expect((await claim(tenant, id)).status).toBe(200);
  });

  it('answers the next N requests of the targeted methods with 503, then recovers', async () => {
    const tenant = await start();
    const key = pool.next('rsa-2048');
    const id = tenant.createProcess({ key });
    tenant.faults = { burst503: 2, methods: ['claim'] };
    expect((await getProcess(tenant, id)).status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await claim(tenant, id)).status);
    expect(statuses).toEqual([503, 503, 200]);
    expect(tenant.faults.burst503).toBe(0);
  });

  it('draws random 429/503 from a seeded PRNG: same seed, same answers', async () => {
    const tenant = await start();
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const run = async () => {
      tenant.faults = { rate429: 0.3, rate503: 0.3, seed: 42 };
      const statuses: number[] = [];
      for (let i = 0; i < 40; i += 1) statuses.push((await getProcess(tenant, id)).status);
      return statuses;
    };
    const first = await run();
    const second = await run();
    expect(second).toEqual(first);
    expect(new Set(first)).toEqual(new Set([200, 429, 503]));
  });

  it('adds latency', async () => {
    const tenant = await start({ latencyMs: 80, jitterMs: 20 });
    const id = tenant.createProcess({ key: pool.next('rsa-2048') });
    const started = performance.now();
    await getProcess(tenant, id);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
  });

  it('ends a request waiting out its latency when the tenant closes, keeping no timer', async () => {
    const tenant = await start({ latencyMs: 60_000 });
    const id = tenant.createProcess({ key: pool.next('ec-p256') });
    const openResources = traceResources();
    const answer = getProcess(tenant, id).catch((error: unknown) => error);
    await expect.poll(() => tenant.requests.get).toBe(1);
    await tenant.close();
    expect(await answer).toBeInstanceOf(TypeError); // the connection was dropped, no answer
    await new Promise((resolve) => setImmediate(resolve));
    expect(openResources().filter((r) => r.includes('src/sandbox/'))).toEqual([]);
  });

  it('refuses nonsensical settings', async () => {
    const tenant = await start();
    expect(() => (tenant.faults = { rate503: 1.5 })).toThrow(RangeError);
    expect(() => (tenant.faults = { burst429: -1 })).toThrow(RangeError);
  });
});

describe('request counters', () => {
  it('counts requests by method, unknown routes as other', async () => {
    const tenant = await start();
    const key = pool.next('ec-p256');
    const id = tenant.createProcess({ key });
    await getProcess(tenant, id);
    await claim(tenant, id);
    const op = (await signData(tenant, id, Buffer.from('x'), algorithmOf(key))).body as Operation;
    await pollOperation(tenant, op.name);
    await call(`${tenant.endpoint}/v1/somewhere/else`);
    const requests = tenant.requests;
    expect(requests).toMatchObject({ get: 1, claim: 1, signData: 1, other: 1, uploadCertificate: 0, setFailure: 0 });
    expect(requests.getOperation).toBeGreaterThanOrEqual(1);
    expect(tenant.counters(id).operationGets).toBe(requests.getOperation);
  });
});
