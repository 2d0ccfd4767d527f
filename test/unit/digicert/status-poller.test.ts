/**
 * Bulk polling of pending orders: ONE status-changes request per interval for all pending orders of an API key,
 * whatever their number; one replica at a time (a named lease in the store); the window reaches back to the last
 * successful poll; DigiCert's 7-day cap; changed orders wake their processes with a hint.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaServices, PendingRef, StepContext } from '../../../src/ca/types.ts';
import { StatusChangesPoller } from '../../../src/ca/digicert/status-poller.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { digicertTestEnvironment, type DigicertTestEnvironment } from '../../fakes/digicert/connection.ts';
import { VirtualClock, issueRequestFor, userProfile } from '../../fakes/digicert/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';

const ctx = (): StepContext => ({ signal: new AbortController().signal, log: silentLogger() });

interface Woken {
  readonly lookupKey: string;
  readonly hint?: PendingRef;
}

function services(
  store: MemoryProcessStore,
  replicaId: string,
  woken: Woken[],
  signal = new AbortController().signal,
  faults = new Map<string, string>(),
): CaServices {
  return {
    store,
    replicaId,
    signal,
    wake: (lookupKey, hint) => {
      woken.push({ lookupKey, ...(hint === undefined ? {} : { hint }) });
      return Promise.resolve(true);
    },
    reportFault: (error) => faults.set(error.component, error.message),
    clearFault: (component) => faults.delete(component),
  };
}

let env: DigicertTestEnvironment;
const orderIds: number[] = [];
const PENDING = 40;

beforeAll(async () => {
  env = await digicertTestEnvironment({ fake: { issuance: 'pending' } });
  const pool = await testKeyPool();
  for (let i = 0; i < PENDING; i += 1) {
    const result = await env.ca.issue(
      issueRequestFor(pool.next(i % 2 === 0 ? 'ec-p256' : 'rsa-2048'), userProfile()),
      ctx(),
    );
    if (result.status !== 'pending') throw new Error('expected pending');
    orderIds.push(Number(result.ref.orderId));
  }
});
afterAll(() => env.close());

function poller(
  store: MemoryProcessStore,
  replicaId: string,
  woken: Woken[],
  options: { now?: () => number; initialWindowMs?: number; faults?: Map<string, string> } = {},
) {
  return new StatusChangesPoller({
    client: env.ca.client,
    services: services(store, replicaId, woken, new AbortController().signal, options.faults),
    keyId: env.ca.keyId,
    intervalMs: 60_000,
    initialWindowMs: options.initialWindowMs ?? 3_600_000,
    lookupKey: (orderId) => env.ca.lookupKey(orderId),
    log: silentLogger(),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

describe('StatusChangesPoller', () => {
  it(`makes one request per tick for ${PENDING} pending orders, and none per order`, async () => {
    const woken: Woken[] = [];
    const p = poller(new MemoryProcessStore(), 'replica-a', woken);
    const before = { changes: env.fake.count('status-changes'), total: env.fake.count() };
    for (let i = 0; i < 3; i += 1) expect((await p.tick()).polled).toBe(true);
    expect(env.fake.count('status-changes') - before.changes).toBe(3);
    expect(env.fake.count() - before.total).toBe(3);
    expect(woken).toEqual([]);
  });

  it('a refused API key is reported as a digicert deployment fault, and the next good poll clears it', async () => {
    const faults = new Map<string, string>();
    const p = poller(new MemoryProcessStore(), 'replica-a', [], { faults });
    const key = env.fake.apiKey;
    env.fake.apiKey = 'a-revoked-key';
    try {
      expect((await p.tick()).error).toBeDefined();
      expect([...faults.keys()]).toEqual(['digicert']);
    } finally {
      env.fake.apiKey = key;
    }
    expect((await p.tick()).error).toBeUndefined();
    expect(faults.size).toBe(0);
  });

  it('wakes exactly the processes whose orders changed, with the status as a hint', async () => {
    const woken: Woken[] = [];
    const p = poller(new MemoryProcessStore(), 'replica-a', woken);
    const [a, b, c] = orderIds as [number, number, number];
    await env.fake.approve(a);
    await env.fake.approve(b);
    env.fake.reject(c);
    const result = await p.tick();
    expect(result).toMatchObject({ polled: true, changes: 3, woken: 3 });
    expect(woken).toEqual(
      expect.arrayContaining([
        {
          lookupKey: env.ca.lookupKey(a),
          hint: { seenStatus: 'issued', certificateId: env.fake.order(a).certificateId },
        },
        {
          lookupKey: env.ca.lookupKey(b),
          hint: { seenStatus: 'issued', certificateId: env.fake.order(b).certificateId },
        },
        { lookupKey: env.ca.lookupKey(c), hint: { seenStatus: 'rejected' } },
      ]),
    );
  });

  it('with two replicas on one store, one polls per tick; the other takes over when it stops', async () => {
    const store = new MemoryProcessStore();
    const [a, b] = [poller(store, 'replica-a', []), poller(store, 'replica-b', [])];
    const before = env.fake.count('status-changes');
    const first = await Promise.all([a.tick(), b.tick()]);
    const second = await Promise.all([a.tick(), b.tick()]);
    expect(first.filter((r) => r.polled)).toHaveLength(1);
    expect(second.filter((r) => r.polled)).toHaveLength(1);
    expect(env.fake.count('status-changes') - before).toBe(2);
    const holder = first[0]?.polled === true ? a : b;
    const other = holder === a ? b : a;
    await holder.stop();
    expect((await other.tick()).polled).toBe(true);
  });

  it('starts with the initial window, then reaches back to its last successful poll plus an overlap', async () => {
    const clock = new VirtualClock(Date.now());
    const p = poller(new MemoryProcessStore({ now: clock.now }), 'replica-a', [], {
      now: clock.now,
      initialWindowMs: 86_400_000,
    });
    expect((await p.tick()).windowSeconds).toBe(86_400);
    clock.advance(60_000);
    // 60 s since the last poll + an overlap of max(interval, 30 s) = 60 s.
    expect((await p.tick()).windowSeconds).toBe(120);
  });

  it('a failed poll leaves the gap to the next window', async () => {
    const clock = new VirtualClock(Date.now());
    const p = poller(new MemoryProcessStore({ now: clock.now }), 'replica-a', [], { now: clock.now });
    await p.tick();
    clock.advance(60_000);
    env.fake.injectFault('status-changes', { kind: 'status', status: 503 }, 3);
    const failed = await p.tick();
    expect(failed.error).toMatch(/503/);
    clock.advance(60_000);
    expect((await p.tick()).windowSeconds).toBe(180);
  });

  it('asks for less after time_frame_too_long and never asks for more than 7 days', async () => {
    const capped = await digicertTestEnvironment({ fake: { maxWindowSeconds: 7_200 } });
    try {
      const clock = new VirtualClock(Date.now());
      const p = new StatusChangesPoller({
        client: capped.ca.client,
        services: services(new MemoryProcessStore({ now: clock.now }), 'r', []),
        keyId: capped.ca.keyId,
        intervalMs: 60_000,
        initialWindowMs: 30 * 86_400_000,
        lookupKey: (id) => capped.ca.lookupKey(id),
        log: silentLogger(),
        now: clock.now,
      });
      const windows: (number | undefined)[] = [];
      for (let i = 0; i < 8; i += 1) {
        const result = await p.tick();
        windows.push(result.windowSeconds);
        if (result.error === undefined) break;
      }
      expect(windows[0]).toBe(604_800);
      expect(windows.at(-1)).toBeLessThanOrEqual(7_200);
      expect(capped.fake.requests.filter((r) => r.operation === 'status-changes' && r.status === 200)).toHaveLength(1);
    } finally {
      await capped.close();
    }
  });

  it('runs on its interval once started, and stops with close()', async () => {
    const store = new MemoryProcessStore();
    const woken: Woken[] = [];
    const connection = await env.another({ statusPollInterval: '100ms' });
    const before = env.fake.count('status-changes');
    await connection.start(services(store, 'replica-x', woken));
    await new Promise((r) => setTimeout(r, 450));
    await connection.close();
    const polls = env.fake.count('status-changes') - before;
    expect(polls).toBeGreaterThanOrEqual(3);
    expect(polls).toBeLessThanOrEqual(6);
    await new Promise((r) => setTimeout(r, 250));
    expect(env.fake.count('status-changes') - before).toBe(polls);
    // The lease was handed back: another replica may poll at once.
    expect(await store.tryNamedLease(`digicert-status-poller:${connection.keyId}`, 'replica-y', 1_000)).toBe(true);
  });
});
