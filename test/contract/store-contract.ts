/**
 * The contract every ProcessStore passes (src/store/types.ts), run against the memory store and Firestore (the
 * emulator) alike: create-if-absent, lease exclusivity and expiry, compare-and-set updates, the due-query, named
 * leases, the shared rate budget, wake-ups by lookup key and the TTL field. BullMQ's adapter conformance suite is
 * the model: one suite, one factory per implementation.
 *
 * Time is a test clock handed to the store (leases, dueAt and rate windows are judged on it), so expiry is a step of
 * the clock, not a sleep. "Two instances" means two store objects over the same data — two Firestore clients on one
 * collection; for the memory store (one replica by design) the same object twice.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaseLostError, type NewProcess, type ProcessRecord, type ProcessStore } from '../../src/store/types.ts';
import type { RenderedProfile } from '../../src/pki/types.ts';
import { holderKeyOf, type CertificateHolder, type NewCertificate } from '../../src/store/inventory.ts';
import { underFirstLease } from '../../src/store/lease.ts';

export interface StoreUnderTest {
  readonly store: ProcessStore;
  /** A second instance over the same data (another replica). */
  readonly peer: ProcessStore;
  close(): Promise<void>;
}

export interface StoreContractOptions {
  /** Opens stores over a fresh, empty namespace, on `clock`, keeping finished records `retentionMs`. */
  open(clock: () => number, retentionMs: number): Promise<StoreUnderTest>;
}

class TestClock {
  t = Date.UTC(2030, 0, 1);
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

const RETENTION_MS = 3_600_000;
const LEASE_MS = 10_000;

const RENDERED: RenderedProfile = {
  name: 'device_profile',
  subject: [
    [{ type: 'CN', oid: '2.5.4.3', value: 'SERIAL, with + specials' }],
    [{ type: 'O', oid: '2.5.4.10', value: 'Example' }],
  ],
  subjectAltNames: [{ type: 'uri', value: 'urn:chromeos:device:abc' }],
  validityMs: 86_400_000,
  extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
};

function newProcess(id: string, clock: TestClock, dueInMs = 0, correlationId = `corr-${id}`): NewProcess {
  return { processId: id, customer: 'C0123', correlationId, dueAt: clock.now() + dueInMs };
}

const DAY_MS = 86_400_000;
const DEVICE_A: CertificateHolder = { device: { directoryId: 'dir-dev-a', serialNumber: 'SER-A' } };
const DEVICE_B: CertificateHolder = { device: { directoryId: 'dir-dev-b', serialNumber: 'SER-B' } };
const USER_U: CertificateHolder = {
  user: { directoryId: 'dir-user-u', email: 'Ada.Lovelace@example.com' },
  device: { directoryId: 'dir-dev-a', serialNumber: 'SER-A' },
};

function certificate(
  serial: string,
  clock: TestClock,
  fields: Partial<NewCertificate> & { holder?: CertificateHolder } = {},
): NewCertificate {
  return {
    caConnection: 'ca-one',
    serial,
    issuer: 'CN=Test CA, O=Example',
    notBefore: clock.now(),
    notAfter: clock.now() + 365 * DAY_MS,
    spkiSha256: 'ab'.repeat(32),
    profile: 'device_profile',
    processId: `proc-${serial}`,
    correlationId: `corr-${serial}`,
    customer: 'C0123',
    holder: DEVICE_A,
    certificatePem: `-----BEGIN CERTIFICATE-----\n${serial}\n-----END CERTIFICATE-----\n`,
    caRef: { orderId: 42, certificateId: 'c-7' },
    issuedAt: clock.now(),
    ...fields,
  };
}

export function describeStoreContract(name: string, options: StoreContractOptions): void {
  describe(`ProcessStore contract: ${name}`, () => {
    let opened: StoreUnderTest[] = [];
    afterEach(async () => {
      await Promise.all(opened.map((o) => o.close()));
      opened = [];
    });
    async function open(clock: TestClock): Promise<StoreUnderTest> {
      const o = await options.open(clock.now, RETENTION_MS);
      opened.push(o);
      return o;
    }

    it('creates a record once: 20 concurrent creates of one process → exactly one created, all see the same record', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? store : peer).create(newProcess('p-dup', clock, 0, `corr-${i}`)),
        ),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const winner = results.find((r) => r.created)?.record.correlationId;
      expect(new Set(results.map((r) => r.record.correlationId))).toEqual(new Set([winner]));
      const stored = await peer.get('p-dup');
      expect(stored).toMatchObject({
        processId: 'p-dup',
        customer: 'C0123',
        correlationId: winner,
        step: 'start',
        issueAttempts: 0,
        attempts: 0,
      });
      expect(stored?.lease).toBeUndefined();
      expect(stored?.schemaVersion).toBeGreaterThanOrEqual(1);
    });

    it('answers undefined for a process it has no record of', async () => {
      const clock = new TestClock();
      const { store } = await open(clock);
      expect(await store.get('never-seen')).toBeUndefined();
      expect(await store.tryLease('never-seen', 'a', LEASE_MS)).toBeUndefined();
      await expect(store.update('never-seen', 'a', { attempts: 1 })).rejects.toBeInstanceOf(LeaseLostError);
      expect(await store.renewLease('never-seen', 'a', LEASE_MS)).toBe(false);
    });

    it('grants a lease to exactly one of 10 concurrent owners on two instances', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-lease', clock));
      const owners = Array.from({ length: 10 }, (_, i) => `replica-${i}`);
      const results = await Promise.all(
        owners.map((o, i) => (i % 2 === 0 ? store : peer).tryLease('p-lease', o, LEASE_MS)),
      );
      const winners = results.flatMap((r, i) => (r === undefined ? [] : [owners[i]]));
      expect(winners).toHaveLength(1);
      const stored = await peer.get('p-lease');
      expect(stored?.lease).toEqual({ owner: winners[0], expiresAt: clock.now() + LEASE_MS });
      // The holder may take it again (renewal); the others still may not.
      expect(await store.tryLease('p-lease', winners[0] as string, LEASE_MS)).toBeDefined();
      const other = owners.find((o) => o !== winners[0]) as string;
      expect(await peer.tryLease('p-lease', other, LEASE_MS)).toBeUndefined();
    });

    it('lets another owner take an expired lease; the old owner can then neither write nor renew', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-exp', clock));
      expect(await store.tryLease('p-exp', 'a', LEASE_MS)).toBeDefined();
      clock.advance(LEASE_MS - 1);
      expect(await peer.tryLease('p-exp', 'b', LEASE_MS)).toBeUndefined();
      clock.advance(1);
      const taken = await peer.tryLease('p-exp', 'b', LEASE_MS);
      expect(taken?.lease?.owner).toBe('b');
      await expect(store.update('p-exp', 'a', { attempts: 5 })).rejects.toBeInstanceOf(LeaseLostError);
      expect(await store.renewLease('p-exp', 'a', LEASE_MS)).toBe(false);
      expect((await peer.get('p-exp'))?.attempts).toBe(0);
      // The new owner writes normally, also through the instance the old owner used.
      expect((await store.update('p-exp', 'b', { attempts: 1 })).attempts).toBe(1);
    });

    it('refuses an update once the lease has expired, even when nobody else took it', async () => {
      const clock = new TestClock();
      const { store } = await open(clock);
      await store.create(newProcess('p-late', clock));
      await store.tryLease('p-late', 'a', LEASE_MS);
      clock.advance(LEASE_MS);
      await expect(store.update('p-late', 'a', { attempts: 1 })).rejects.toBeInstanceOf(LeaseLostError);
      expect(await store.renewLease('p-late', 'a', LEASE_MS)).toBe(false);
    });

    it('tells the first lease ever taken on a record from every later one (underFirstLease), whoever took them', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-first', clock));
      const first = await store.tryLease('p-first', 'a', LEASE_MS);
      expect(first !== undefined && underFirstLease(first)).toBe(true);
      // Taken over once expired (a replica paused past its lease may still act once): not the first lease.
      clock.advance(LEASE_MS);
      const takenOver = await peer.tryLease('p-first', 'b', LEASE_MS);
      expect(takenOver !== undefined && underFirstLease(takenOver)).toBe(false);
      // Released and leased again, by the replica that held it first: not the first lease either.
      await store.create(newProcess('p-again', clock));
      await store.tryLease('p-again', 'a', LEASE_MS);
      await store.update('p-again', 'a', {}, { release: true });
      const again = await store.tryLease('p-again', 'a', LEASE_MS);
      expect(again !== undefined && underFirstLease(again)).toBe(false);
      // A duplicate create changes nothing: the first lease after it is still the first.
      await store.create(newProcess('p-dup', clock));
      await peer.create(newProcess('p-dup', clock));
      const afterDuplicate = await peer.tryLease('p-dup', 'b', LEASE_MS);
      expect(afterDuplicate !== undefined && underFirstLease(afterDuplicate)).toBe(true);
    });

    it('writes patches under the lease: version grows, renewLeaseMs extends, release drops the lease, undefined clears a field', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const { record: created } = await store.create(newProcess('p-upd', clock));
      const leased = await store.tryLease('p-upd', 'a', LEASE_MS);
      expect(leased?.version).toBeGreaterThan(created.version);
      clock.advance(1_000);
      const written = await store.update(
        'p-upd',
        'a',
        {
          step: 'await_ca',
          rendered: RENDERED,
          pendingRef: { orderId: 42, kind: 'order', urgent: true },
          lookupKey: 'order-42',
          failure: undefined,
        },
        { renewLeaseMs: LEASE_MS },
      );
      expect(written.version).toBeGreaterThan(leased?.version ?? Infinity);
      expect(written.lease).toEqual({ owner: 'a', expiresAt: clock.now() + LEASE_MS });
      const read = await peer.get('p-upd');
      expect(read).toMatchObject({
        step: 'await_ca',
        rendered: RENDERED,
        pendingRef: { orderId: 42, kind: 'order', urgent: true },
        lookupKey: 'order-42',
      });
      expect(read?.updatedAt).toBe(clock.now());
      expect(read?.createdAt).toBe(created.createdAt);

      const cleared = await store.update('p-upd', 'a', { pendingRef: undefined });
      expect(cleared.pendingRef).toBeUndefined();
      expect((await peer.get('p-upd'))?.pendingRef).toBeUndefined();

      const released = await store.update('p-upd', 'a', { dueAt: clock.now() + 5_000 }, { release: true });
      expect(released.lease).toBeUndefined();
      expect((await peer.get('p-upd'))?.lease).toBeUndefined();
      await expect(store.update('p-upd', 'a', { attempts: 3 })).rejects.toBeInstanceOf(LeaseLostError);
      expect(await peer.tryLease('p-upd', 'b', LEASE_MS)).toBeDefined();
    });

    it('reschedule: moves dueAt by compare-and-set on the version, without a lease; one of racing replicas wins', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-cas', clock));
      const leased = await store.tryLease('p-cas', 'a', LEASE_MS);
      const waiting = await store.update(
        'p-cas',
        'a',
        { step: 'await_signature', dueAt: clock.now() },
        { release: true },
      );
      expect(leased).toBeDefined();
      // Found due by both replicas: one claims the check, the other's write is refused (its version is stale).
      const due = (await peer.findDue(clock.now(), 10)).find((r) => r.processId === 'p-cas');
      expect(due?.version).toBe(waiting.version);
      const results = await Promise.all([
        store.reschedule('p-cas', waiting.version, clock.now() + 60_000),
        peer.reschedule('p-cas', waiting.version, clock.now() + 90_000),
      ]);
      const won = results.filter((r) => r !== undefined);
      expect(won).toHaveLength(1);
      const stored = await peer.get('p-cas');
      expect(stored).toMatchObject({ step: 'await_signature', dueAt: won[0]?.dueAt, version: waiting.version + 1 });
      expect(stored?.lease).toBeUndefined();
      expect(await store.findDue(clock.now(), 10)).toEqual([]);
      // The winner's version is current; a stale one changes nothing.
      expect(await store.reschedule('p-cas', waiting.version, clock.now())).toBeUndefined();
      expect((await peer.get('p-cas'))?.dueAt).toBe(won[0]?.dueAt);

      // A lease taken since — by anyone, the caller's own replica included — makes it refuse, until the lease expired.
      const current = (await peer.get('p-cas'))?.version ?? 0;
      const taken = await peer.tryLease('p-cas', 'b', LEASE_MS);
      expect(await store.reschedule('p-cas', taken?.version ?? 0, clock.now())).toBeUndefined();
      expect(await store.reschedule('p-cas', current, clock.now())).toBeUndefined();
      clock.advance(LEASE_MS);
      const after = await store.reschedule('p-cas', taken?.version ?? 0, clock.now() + 5_000);
      expect(after).toMatchObject({ dueAt: clock.now() + 5_000, version: (taken?.version ?? 0) + 1 });

      // A finished or unknown process is never rescheduled.
      const done = await store.tryLease('p-cas', 'c', LEASE_MS);
      const finished = await store.update('p-cas', 'c', { step: 'done', outcome: 'issued' }, { release: true });
      expect(done).toBeDefined();
      expect(await store.reschedule('p-cas', finished.version, clock.now())).toBeUndefined();
      expect(await store.reschedule('never-seen', 1, clock.now())).toBeUndefined();
    });

    it('serialises concurrent writers of one holder (renewals racing step writes) without losing a field', async () => {
      const clock = new TestClock();
      const { store } = await open(clock);
      await store.create(newProcess('p-race', clock));
      await store.tryLease('p-race', 'a', LEASE_MS);
      await Promise.all([
        store.update('p-race', 'a', { caConnection: 'ca1' }),
        store.renewLease('p-race', 'a', LEASE_MS),
        store.update('p-race', 'a', { profile: 'device_profile' }),
        store.renewLease('p-race', 'a', LEASE_MS),
        store.update('p-race', 'a', { spki: 'AAAA' }),
      ]);
      expect(await store.get('p-race')).toMatchObject({
        caConnection: 'ca1',
        profile: 'device_profile',
        spki: 'AAAA',
        lease: { owner: 'a' },
      });
    });

    it('finds due records earliest first, up to the limit, skipping leased, future and finished ones', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      // due: d1 (−3 s), d2 (−2 s), d3 (−1 s), expired-lease (−500 ms, lease ran out); not due: future, leased, done.
      for (const [id, dueIn] of [
        ['d3', -1_000],
        ['future', 5_000],
        ['d1', -3_000],
        ['leased', -4_000],
        ['done', -5_000],
        ['d2', -2_000],
        ['expired', -500],
      ] as const) {
        await store.create(newProcess(id, clock, dueIn));
      }
      await store.tryLease('leased', 'a', LEASE_MS);
      await store.tryLease('done', 'a', LEASE_MS);
      await store.update('done', 'a', { step: 'done', outcome: 'issued' }, { release: true });
      clock.advance(-2_000);
      await store.tryLease('expired', 'a', 1_000); // expires 1 s before "now"
      clock.advance(2_000);

      const all = await peer.findDue(clock.now(), 10);
      expect(all.map((r) => r.processId).slice(0, 3)).toEqual(['d1', 'd2', 'd3']);
      expect(new Set(all.map((r) => r.processId))).toEqual(new Set(['d1', 'd2', 'd3', 'expired']));
      expect((await peer.findDue(clock.now(), 2)).map((r) => r.processId)).toEqual(['d1', 'd2']);
      expect(await peer.findDue(clock.now(), 0)).toEqual([]);

      // nextDueAt: the earliest moment any active record becomes workable (a leased one at its lease expiry).
      expect(await peer.nextDueAt?.()).toBe(clock.now() - 3_000);
      for (const id of ['d1', 'd2', 'd3', 'expired']) {
        await store.tryLease(id, 'a', LEASE_MS);
        await store.update(id, 'a', { step: 'done', outcome: 'issued' }, { release: true });
      }
      expect(await peer.nextDueAt?.()).toBe(clock.now() + 5_000);
      const leasedExpiry = (await peer.get('leased'))?.lease?.expiresAt as number;
      clock.advance(LEASE_MS);
      expect((await peer.findDue(clock.now(), 10)).map((r) => r.processId)).toEqual(['leased', 'future']);
      expect(leasedExpiry).toBeLessThanOrEqual(clock.now());
    });

    /**
     * A burst of new processes due long ago (s1–s3, and a start waiting for its retry), then processes that got past
     * start and are due only now (c1, c2) or later (c-future).
     */
    async function burstAfterContinuing(clock: TestClock, store: ProcessStore): Promise<void> {
      const moveTo = async (id: string, step: 'await_signature' | 'upload' | 'start', dueIn: number) => {
        await store.tryLease(id, 'a', LEASE_MS);
        await store.update(id, 'a', { step, dueAt: clock.now() + dueIn }, { release: true });
      };
      for (const [id, dueIn] of [
        ['s2', -40_000],
        ['s1', -50_000],
        ['s3', -30_000],
        ['c1', 0],
        ['c2', 0],
        ['c-future', 0],
        ['retry', 0],
      ] as const) {
        await store.create(newProcess(id, clock, dueIn));
      }
      await moveTo('c1', 'await_signature', -1_000);
      await moveTo('c2', 'upload', -2_000);
      await moveTo('c-future', 'await_signature', 5_000);
      await moveTo('retry', 'start', -60_000); // a start that failed and waits for its retry is still new work
    }

    const dueIds = async (store: ProcessStore, now: number, limit: number, reserveForStarts?: number) =>
      (await store.findDue(now, limit, reserveForStarts === undefined ? undefined : { reserveForStarts })).map(
        (r) => r.processId,
      );

    it('finds continuing work (past start) before new work, each earliest due first, whatever the due times', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await burstAfterContinuing(clock, store);

      expect(await dueIds(peer, clock.now(), 10)).toEqual(['c2', 'c1', 'retry', 's1', 's2', 's3']);
      expect(await dueIds(peer, clock.now(), 2)).toEqual(['c2', 'c1']);
      expect(await dueIds(peer, clock.now(), 3)).toEqual(['c2', 'c1', 'retry']);
      clock.advance(5_000);
      for (const id of ['retry', 's1']) await store.tryLease(id, 'a', LEASE_MS); // leased: in neither group
      expect(await dueIds(peer, clock.now(), 4)).toEqual(['c2', 'c1', 'c-future', 's2']);
    });

    it('keeps the places asked for to new work when it is due, so continuing work cannot take every slot', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await burstAfterContinuing(clock, store);

      expect(await dueIds(peer, clock.now(), 2, 1)).toEqual(['c2', 'retry']);
      expect(await dueIds(peer, clock.now(), 1, 1)).toEqual(['retry']);
      expect(await dueIds(peer, clock.now(), 3, 2)).toEqual(['c2', 'retry', 's1']);
      // Never beyond the page, and never more than the starts that are due.
      expect(await dueIds(peer, clock.now(), 3, 10)).toEqual(['retry', 's1', 's2']);
      expect(await dueIds(peer, clock.now(), 10, 10)).toEqual(['c2', 'c1', 'retry', 's1', 's2', 's3']);
      expect(await dueIds(peer, clock.now(), 0, 1)).toEqual([]);
      // No start due: the kept places go to continuing work.
      for (const id of ['retry', 's1', 's2', 's3']) await store.tryLease(id, 'a', LEASE_MS);
      expect(await dueIds(peer, clock.now(), 2, 1)).toEqual(['c2', 'c1']);
    });

    it('counts active records by step', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      for (const id of ['c1', 'c2', 'c3', 'c4']) await store.create(newProcess(id, clock));
      await store.tryLease('c2', 'a', LEASE_MS);
      await store.update('c2', 'a', { step: 'await_signature' }, { release: true });
      await store.tryLease('c3', 'a', LEASE_MS);
      await store.update('c3', 'a', { step: 'await_ca' });
      await store.tryLease('c4', 'a', LEASE_MS);
      await store.update('c4', 'a', { step: 'done', outcome: 'failed', reason: 'ca_rejected' }, { release: true });
      const counts = await peer.countActive?.();
      expect(counts).toBeDefined();
      expect({ start: 0, await_signature: 0, await_ca: 0, done: 0, ...counts }).toMatchObject({
        start: 1,
        await_signature: 1,
        await_ca: 1,
        done: 0,
      });
    });

    it('sets expireAt (the TTL field) when a record is done, and never re-leases a finished record', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-ttl', clock));
      await store.tryLease('p-ttl', 'a', LEASE_MS);
      expect((await peer.get('p-ttl'))?.expireAt).toBeUndefined();
      clock.advance(2_000);
      const done = await store.update('p-ttl', 'a', { step: 'done', outcome: 'issued' }, { release: true });
      expect(done.expireAt).toBe(clock.now() + RETENTION_MS);
      expect((await peer.get('p-ttl'))?.expireAt).toBe(clock.now() + RETENTION_MS);
      expect(await peer.tryLease('p-ttl', 'b', LEASE_MS)).toBeUndefined();
      // A duplicate delivery after the end finds the finished record.
      const again = await peer.create(newProcess('p-ttl', clock));
      expect(again).toMatchObject({ created: false, record: { step: 'done', outcome: 'issued' } });
    });

    it('wakes the process waiting on a lookup key: due now, hint merged into pendingRef, lease untouched', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-wake', clock));
      await store.tryLease('p-wake', 'a', LEASE_MS);
      await store.update(
        'p-wake',
        'a',
        { step: 'await_ca', pendingRef: { orderId: 7 }, lookupKey: 'order-7', dueAt: clock.now() + 3_600_000 },
        { release: true },
      );
      expect(await peer.wakeByLookupKey('order-unknown')).toBe(false);
      clock.advance(1_000);
      expect(await peer.wakeByLookupKey('order-7', { status: 'issued' })).toBe(true);
      const woken = await store.get('p-wake');
      expect(woken?.dueAt).toBeLessThanOrEqual(clock.now());
      expect(woken?.pendingRef).toEqual({ orderId: 7, status: 'issued' });
      expect(woken?.lease).toBeUndefined();
      expect((await store.findDue(clock.now(), 10)).map((r) => r.processId)).toEqual(['p-wake']);

      // While a replica holds the lease, a wake-up changes dueAt but keeps the lease (and the holder's writes work).
      await store.tryLease('p-wake', 'a', LEASE_MS);
      expect(await peer.wakeByLookupKey('order-7')).toBe(true);
      expect((await store.get('p-wake'))?.lease?.owner).toBe('a');
      expect((await store.update('p-wake', 'a', { attempts: 2 })).attempts).toBe(2);
      await store.update('p-wake', 'a', { step: 'done', outcome: 'issued' }, { release: true });
      expect(await peer.wakeByLookupKey('order-7')).toBe(false);
    });

    it('grants a named lease to one owner at a time; renewal, release and expiry hand it on', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const results = await Promise.all(
        ['a', 'b', 'c', 'd'].map((o, i) => (i % 2 === 0 ? store : peer).tryNamedLease('poller:key1', o, 5_000)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const holder = ['a', 'b', 'c', 'd'][results.indexOf(true)] as string;
      const other = holder === 'a' ? 'b' : 'a';
      expect(await peer.tryNamedLease('poller:key1', other, 5_000)).toBe(false);
      clock.advance(4_000);
      expect(await store.tryNamedLease('poller:key1', holder, 5_000)).toBe(true); // renewal
      clock.advance(4_000);
      expect(await peer.tryNamedLease('poller:key1', other, 5_000)).toBe(false);
      await peer.releaseNamedLease('poller:key1', other); // not the holder: no effect
      expect(await peer.tryNamedLease('poller:key1', other, 5_000)).toBe(false);
      await store.releaseNamedLease('poller:key1', holder);
      expect(await peer.tryNamedLease('poller:key1', other, 5_000)).toBe(true);
      clock.advance(5_000);
      expect(await store.tryNamedLease('poller:key1', holder, 5_000)).toBe(true); // expired → taken over
      // Leases of other names are independent.
      expect(await peer.tryNamedLease('poller:key2', other, 5_000)).toBe(true);
    });

    it('keeps a shared rate budget across two instances: no sliding window exceeds its limit, and tokens keep flowing', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const windows = [
        { limit: 20, windowMs: 1_000 },
        { limit: 50, windowMs: 10_000 },
      ];
      const grants: number[] = [];
      const waits: number[] = [];
      // 12 s of test time in 50 ms steps; at every step each instance asks until it is refused.
      for (let step = 0; step < 240; step += 1) {
        for (const s of [store, peer]) {
          for (let i = 0; i < 30; i += 1) {
            const wait = await s.takeToken('digicert:key1', windows);
            if (wait > 0) {
              waits.push(wait);
              break;
            }
            grants.push(clock.now());
          }
        }
        clock.advance(50);
      }
      for (const { limit, windowMs } of windows) {
        for (const start of grants) {
          expect(grants.filter((t) => t >= start && t < start + windowMs).length).toBeLessThanOrEqual(limit);
        }
      }
      // Liveness: over 12 s the 10 s window allows at least its limit once (batching may leave some slack).
      expect(grants.length).toBeGreaterThanOrEqual(50);
      expect(Math.min(...waits)).toBeGreaterThan(0);
      expect(Math.max(...waits)).toBeLessThanOrEqual(12_000);
      // Another bucket is a separate budget.
      expect(await store.takeToken('digicert:key2', windows)).toBe(0);
    }, 120_000);

    it('records a certificate once, with every field, and finds it again by connection and serial', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const cert = certificate('0a1b', clock, { holder: USER_U, profile: 'user_profile' });
      const first = await store.recordCertificate(cert);
      expect(first).toMatchObject({ created: true, superseded: [], record: { ...cert, status: 'active' } });
      const again = await peer.recordCertificate({ ...cert, issuedAt: clock.now() + 5 });
      expect(again.created).toBe(false);
      expect(again.record.issuedAt).toBe(cert.issuedAt);
      const read = await peer.getCertificate('ca-one', '0a1b');
      expect(read).toMatchObject({ ...cert, status: 'active', holderKey: holderKeyOf(USER_U) });
      expect(read?.statusChangedAt).toBe(cert.issuedAt);
      expect(await peer.getCertificate('ca-two', '0a1b')).toBeUndefined();
      expect(await peer.getCertificate('ca-one', '0a1c')).toBeUndefined();
    });

    it('supersedes the earlier active certificate of the same holder and profile, and only that one', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.recordCertificate(certificate('01', clock));
      await store.recordCertificate(certificate('02', clock, { profile: 'other_profile' }));
      await store.recordCertificate(certificate('03', clock, { holder: DEVICE_B }));
      await store.recordCertificate(certificate('04', clock, { holder: USER_U }));
      clock.advance(DAY_MS);
      const renewal = await peer.recordCertificate(certificate('05', clock));
      expect(renewal.record.status).toBe('active');
      expect(renewal.superseded.map((r) => r.serial)).toEqual(['01']);
      expect(await store.getCertificate('ca-one', '01')).toMatchObject({
        status: 'superseded',
        supersededBy: '05',
        statusChangedAt: clock.now(),
      });
      for (const serial of ['02', '03', '04', '05']) {
        expect((await store.getCertificate('ca-one', serial))?.status).toBe('active');
      }
      // The predecessor lookup a renewal needs: the active certificate of this holder and profile.
      const current = await peer.findCertificates({
        holder: holderKeyOf(DEVICE_A),
        profile: 'device_profile',
        status: 'active',
      });
      expect(current.map((r) => r.serial)).toEqual(['05']);
      // A certificate older than the active one (written late) is recorded as superseded and replaces nothing.
      const late = await store.recordCertificate(certificate('00', clock, { notBefore: clock.now() - 2 * DAY_MS }));
      expect(late).toMatchObject({
        created: true,
        superseded: [],
        record: { status: 'superseded', supersededBy: '05' },
      });
      expect((await store.getCertificate('ca-one', '05'))?.status).toBe('active');
    });

    it('lists certificates by device, user, profile, connection, status and expiry, earliest expiry first', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      const t0 = clock.now();
      await store.recordCertificate(certificate('a1', clock, { notAfter: t0 + 90 * DAY_MS }));
      await store.recordCertificate(
        certificate('b1', clock, { holder: DEVICE_B, notAfter: t0 + 10 * DAY_MS, caConnection: 'ca-two' }),
      );
      await store.recordCertificate(
        certificate('u1', clock, { holder: USER_U, profile: 'user_profile', notAfter: t0 + 20 * DAY_MS }),
      );
      await store.recordCertificate(certificate('b2', clock, { holder: DEVICE_B, notAfter: t0 + 5 * DAY_MS }));
      await store.setRevocation('ca-one', 'b2', { state: 'revoked', at: t0, reason: 'keyCompromise' });
      const serials = async (query: Parameters<typeof peer.findCertificates>[0]) =>
        (await peer.findCertificates(query)).map((r) => r.serial);

      expect(await serials({})).toEqual(['b2', 'b1', 'u1', 'a1']);
      expect(await serials({ device: 'dir-dev-a' })).toEqual(['u1', 'a1']); // the user session names device A
      expect(await serials({ device: 'SER-B' })).toEqual(['b2', 'b1']);
      expect(await serials({ user: 'ada.lovelace@EXAMPLE.com' })).toEqual(['u1']);
      expect(await serials({ user: 'dir-user-u' })).toEqual(['u1']);
      expect(await serials({ user: 'SER-A' })).toEqual([]);
      expect(await serials({ profile: 'user_profile' })).toEqual(['u1']);
      expect(await serials({ caConnection: 'ca-two' })).toEqual(['b1']);
      expect(await serials({ caConnection: 'ca-one', status: 'active' })).toEqual(['u1', 'a1']);
      expect(await serials({ status: 'revoked' })).toEqual(['b2']);
      expect(await serials({ status: 'active', notAfterBefore: t0 + 30 * DAY_MS })).toEqual(['b1', 'u1']);
      expect(await serials({ caConnection: 'ca-one', notAfterBefore: t0 + 30 * DAY_MS })).toEqual(['b2', 'u1']);
      expect(await serials({ device: 'SER-B', status: 'active', caConnection: 'ca-two' })).toEqual(['b1']);
      expect(await serials({ profile: 'device_profile', status: 'active', notAfterFrom: t0 + 30 * DAY_MS })).toEqual([
        'a1',
      ]);
      expect(await serials({ limit: 2 })).toEqual(['b2', 'b1']);
      expect(await serials({ device: 'dir-dev-a', profile: 'device_profile', limit: 1 })).toEqual(['a1']);
      // Counts (the expiry gauges): the same filters, the limit ignored.
      const expiring = { caConnection: 'ca-one', status: 'active', notAfterFrom: t0 } as const;
      expect(await peer.countCertificates({ ...expiring, notAfterBefore: t0 + 30 * DAY_MS })).toBe(1);
      expect(await peer.countCertificates({ ...expiring, notAfterBefore: t0 + 91 * DAY_MS })).toBe(2);
      expect(await peer.countCertificates({ ...expiring, notAfterBefore: t0 + 7 * DAY_MS })).toBe(0);
      expect(await peer.countCertificates({ device: 'SER-B', limit: 1 })).toBe(2);
    });

    it('records revocations: a held request keeps the certificate active, an effective one is final', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.recordCertificate(certificate('r1', clock));
      expect(
        await store.setRevocation('ca-one', 'nope', { state: 'revoked', at: clock.now(), reason: 'unspecified' }),
      ).toBeUndefined();
      const held = await store.setRevocation('ca-one', 'r1', {
        state: 'pending_approval',
        at: clock.now(),
        reason: 'cessationOfOperation',
        requestId: 'req-9',
      });
      expect(held).toMatchObject({ status: 'active', revocation: { state: 'pending_approval', requestId: 'req-9' } });
      clock.advance(60_000);
      const revoked = await peer.setRevocation('ca-one', 'r1', {
        state: 'revoked',
        at: clock.now(),
        reason: 'keyCompromise',
      });
      expect(revoked).toMatchObject({
        status: 'revoked',
        statusChangedAt: clock.now(),
        revocation: { state: 'revoked', at: clock.now(), reason: 'keyCompromise' },
      });
      const revokedAt = clock.now();
      clock.advance(60_000);
      const again = await store.setRevocation('ca-one', 'r1', {
        state: 'revoked',
        at: clock.now(),
        reason: 'affiliationChanged',
      });
      expect(again?.revocation).toEqual({ state: 'revoked', at: revokedAt, reason: 'keyCompromise' });
      expect((await peer.getCertificate('ca-one', 'r1'))?.revocation).toEqual(again?.revocation);
      // A revoked certificate is not superseded by a renewal, and is never "active" again.
      clock.advance(DAY_MS);
      const renewal = await store.recordCertificate(certificate('r2', clock));
      expect(renewal.superseded).toEqual([]);
      expect((await peer.getCertificate('ca-one', 'r1'))?.status).toBe('revoked');
    });

    it('counts the revocations of each connection: one per certificate that becomes revoked, in the same write', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.recordCertificate(certificate('c1', clock));
      await store.recordCertificate(certificate('c2', clock, { holder: DEVICE_B }));
      await store.recordCertificate(certificate('c3', clock, { holder: USER_U, caConnection: 'ca-two' }));
      expect(await peer.revocationCount('ca-one')).toBe(0);
      const at = clock.now();
      await store.setRevocation('ca-one', 'c1', { state: 'pending_approval', at, reason: 'keyCompromise' });
      expect(await peer.revocationCount('ca-one')).toBe(0); // held by the CA: on no CRL yet
      await store.setRevocation('ca-one', 'c1', { state: 'revoked', at, reason: 'keyCompromise' });
      expect(await peer.revocationCount('ca-one')).toBe(1);
      await peer.setRevocation('ca-one', 'c1', { state: 'revoked', at, reason: 'superseded' }); // final: no change
      await store.setRevocation('ca-one', 'nope', { state: 'revoked', at, reason: 'unspecified' });
      expect(await store.revocationCount('ca-one')).toBe(1);
      await peer.setRevocation('ca-one', 'c2', { state: 'revoked', at, reason: 'superseded' });
      expect(await store.revocationCount('ca-one')).toBe(2);
      expect(await store.revocationCount('ca-two')).toBe(0);
      await store.setRevocation('ca-two', 'c3', { state: 'revoked', at, reason: 'unspecified' });
      expect(await peer.revocationCount('ca-two')).toBe(1);
      expect(await peer.revocationCount('ca-one')).toBe(2);
      // A CRL keeps the count it was read at, whatever the count does afterwards.
      const der = Uint8Array.from(randomBytes(100));
      const crl = { caConnection: 'ca-one', crlNumber: 1, thisUpdate: at, nextUpdate: at + DAY_MS, entries: 2, der };
      expect(await store.putCrl({ ...crl, revocationsListed: 2 })).toBe(true);
      await store.recordCertificate(certificate('c4', clock, { holder: USER_U }));
      await store.setRevocation('ca-one', 'c4', { state: 'revoked', at, reason: 'unspecified' });
      expect(await peer.revocationCount('ca-one')).toBe(3);
      expect((await peer.getCrl('ca-one'))?.revocationsListed).toBe(2);
      expect(await peer.putCrl({ ...crl, revocationsListed: 1 })).toBe(false); // a refused CRL changes nothing
      expect((await peer.getCrl('ca-one'))?.revocationsListed).toBe(2);
      expect(await peer.putCrl({ ...crl, crlNumber: 2, revocationsListed: 3 })).toBe(true);
      expect((await store.getCrl('ca-one'))?.revocationsListed).toBe(3);
      expect(await store.revocationCount('ca-one')).toBe(3);
    });

    it('keeps one CRL per connection: a higher number replaces it, an equal or lower one is refused', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      expect(await store.getCrl('ca-one')).toBeUndefined();
      const crl = (crlNumber: number, der: Uint8Array) => ({
        caConnection: 'ca-one',
        crlNumber,
        thisUpdate: clock.now(),
        nextUpdate: clock.now() + 7 * DAY_MS,
        entries: crlNumber * 10,
        der,
        revocationsListed: crlNumber * 2,
      });
      const small = Uint8Array.from(randomBytes(300));
      expect(await store.putCrl(crl(1, small))).toBe(true);
      expect(await peer.getCrl('ca-one')).toEqual(crl(1, small));
      expect(await peer.getCrl('ca-two')).toBeUndefined();
      expect(await peer.putCrl(crl(1, Uint8Array.from(randomBytes(10))))).toBe(false);
      // Several megabytes: a CRL of ~100,000 serials is larger than one Firestore document.
      const large = Uint8Array.from(randomBytes(2_500_000));
      clock.advance(60_000);
      expect(await peer.putCrl(crl(3, large))).toBe(true);
      expect(await store.putCrl(crl(2, small))).toBe(false);
      const stored = await store.getCrl('ca-one');
      expect(stored?.crlNumber).toBe(3);
      expect(stored && Buffer.from(stored.der).equals(Buffer.from(large))).toBe(true);
      expect(await store.putCrl(crl(4, small))).toBe(true);
      expect(await peer.getCrl('ca-one')).toEqual(crl(4, small));
    });

    it('finds a process by its correlation id', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-corr', clock, 0, 'corr-XYZ'));
      await store.create(newProcess('p-other', clock, 0, 'corr-ABC'));
      expect((await peer.findByCorrelationId('corr-XYZ'))?.processId).toBe('p-corr');
      expect(await peer.findByCorrelationId('corr-none')).toBeUndefined();
    });

    it('returns finished records intact: every field written comes back', async () => {
      const clock = new TestClock();
      const { store, peer } = await open(clock);
      await store.create(newProcess('p-full', clock));
      await store.tryLease('p-full', 'a', LEASE_MS);
      const patch = {
        step: 'report_failure',
        claimedAt: clock.now() - 5_000,
        caConnection: 'ca',
        profile: 'device_profile',
        spki: 'MFkw',
        rendered: RENDERED,
        signDataAt: clock.now() - 1_000,
        signDataOperation: 'customers/C/certificateProvisioningProcesses/p/operations/op1',
        signatureDeadline: clock.now() + 900_000,
        csr: 'MIIB',
        issueAttempts: 2,
        issueResults: 1,
        caDeadline: clock.now() + 1_000_000,
        certificatePem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
        failure: { reason: 'ca_rejected', userMessage: 'No (reference x)' },
        attempts: 3,
        lastError: 'RetryableError: 503',
        holder: USER_U,
      } as const;
      await store.update('p-full', 'a', patch);
      const read = (await peer.get('p-full')) as ProcessRecord;
      expect(read).toMatchObject(patch);
    });
  });
}
