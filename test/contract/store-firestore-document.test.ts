/**
 * What the Firestore store promises beyond the shared contract: the document layout the indexes and the TTL policy
 * depend on, reading records of other versions (rolling upgrades), and how an unreachable Firestore surfaces.
 */
import { Timestamp, type Firestore } from '@google-cloud/firestore';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DeploymentFaultError } from '../../src/errors.ts';
import { DOCUMENT_SCHEMA_MAJOR, IncompatibleRecordError } from '../../src/store/firestore-document.ts';
import type { FirestoreProcessStore } from '../../src/store/firestore.ts';
import { firestoreTestStore, rawFirestore, uniqueCollection } from '../support/firestore.ts';
import { freePort } from '../support/emulators.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { inject } from 'vitest';
import { allowLeftover } from '../support/leak-check.ts';

// The store gives up on a call after its request timeout; the Firestore client keeps retrying it on its own timers
// (up to its own minute-long deadline), and `terminate()` does not cancel them. Those timers are the client's, not
// ours, and end by themselves: the leak check lets this file (its unreachable-Firestore cases) leave timers, and still
// checks every other kind of resource.
allowLeftover('Timeout', "the Firestore client's own retry timers for calls the store abandoned at its timeout");

const raw: Firestore = rawFirestore();
const stores: FirestoreProcessStore[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  await raw.terminate();
});

function open(options: Parameters<typeof firestoreTestStore>[0] = {}): {
  store: FirestoreProcessStore;
  collection: string;
} {
  const collection = options.collection ?? uniqueCollection('layout');
  const store = firestoreTestStore({ ...options, collection });
  stores.push(store);
  return { store, collection };
}

describe('Firestore store: document layout', () => {
  it('writes the query fields, the lease map, the profile as JSON and expireAt as a Timestamp', async () => {
    const { store, collection } = open({ finishedRetentionMs: 60_000 });
    await store.create({ processId: 'p1', customer: 'C1', correlationId: 'c1', dueAt: 1_000 });
    let document = (await raw.collection(collection).doc('p1').get()).data();
    expect(document).toMatchObject({
      schemaMajor: DOCUMENT_SCHEMA_MAJOR,
      schemaVersion: 1,
      active: true,
      availableAt: 1_000,
      step: 'start',
    });

    await store.tryLease('p1', 'r1', 30_000);
    document = (await raw.collection(collection).doc('p1').get()).data();
    const expiresAt = (document?.lease as { expiresAt: number }).expiresAt;
    expect(document?.lease).toEqual({ owner: 'r1', expiresAt });
    // A leased record becomes available to others when its lease expires.
    expect(document?.availableAt).toBe(expiresAt);

    await store.update('p1', 'r1', {
      rendered: {
        name: 'p',
        subject: [[{ type: 'CN', oid: '2.5.4.3', value: 'x' }]],
        subjectAltNames: [],
        validityMs: 1,
        extendedKeyUsages: [],
      },
    });
    document = (await raw.collection(collection).doc('p1').get()).data();
    expect(typeof document?.rendered).toBe('string');

    const before = Date.now();
    await store.update('p1', 'r1', { step: 'done', outcome: 'issued' }, { release: true });
    document = (await raw.collection(collection).doc('p1').get()).data();
    expect(document?.active).toBe(false);
    expect(document?.lease).toBeUndefined();
    expect(document?.expireAt).toBeInstanceOf(Timestamp);
    const expireAt = (document?.expireAt as Timestamp).toMillis();
    expect(expireAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(expireAt).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('stores process ids that are not valid document ids under a stable derived id', async () => {
    const { store } = open();
    for (const id of ['a/b', '..', '__x__']) {
      const { created } = await store.create({ processId: id, customer: 'C1', correlationId: 'c', dueAt: 0 });
      expect(created).toBe(true);
      expect((await store.get(id))?.processId).toBe(id);
      expect((await store.create({ processId: id, customer: 'C1', correlationId: 'd', dueAt: 0 })).created).toBe(false);
    }
  });
});

describe('Firestore store: records of other versions', () => {
  it('reads a newer record of the same major and preserves the fields it does not know when writing', async () => {
    const { store, collection } = open();
    await raw
      .collection(collection)
      .doc('newer')
      .create({
        schemaMajor: DOCUMENT_SCHEMA_MAJOR,
        schemaVersion: 7,
        processId: 'newer',
        customer: 'C1',
        correlationId: 'c-newer',
        step: 'await_signature',
        // issueAttempts/issueResults/attempts missing (an older writer), plus fields from the future:
        dueAt: 0,
        version: 3,
        createdAt: 1,
        updatedAt: 2,
        futureField: { nested: ['kept'] },
        futureCounter: 42,
        active: true,
        availableAt: 0,
      });
    const read = await store.get('newer');
    expect(read).toMatchObject({
      schemaVersion: 7,
      step: 'await_signature',
      issueAttempts: 0,
      attempts: 0,
      version: 3,
    });
    expect(read).not.toHaveProperty('futureField');

    const due = await store.findDue(Date.now(), 10);
    expect(due.map((r) => r.processId)).toEqual(['newer']);
    await store.tryLease('newer', 'r1', 30_000);
    await store.update('newer', 'r1', { attempts: 1 }, { release: true });
    const document = (await raw.collection(collection).doc('newer').get()).data();
    expect(document).toMatchObject({
      futureField: { nested: ['kept'] },
      futureCounter: 42,
      attempts: 1,
      schemaVersion: 7,
      version: 5,
    });
  });

  it('finds the due records an older version wrote, continuing work first (no field the due-queries need is new)', async () => {
    const { store, collection } = open();
    /** A record as the first release of this layout wrote it: schemaVersion 1, the query fields of then. */
    const older = (processId: string, step: string, dueAt: number) => ({
      schemaMajor: DOCUMENT_SCHEMA_MAJOR,
      schemaVersion: 1,
      processId,
      customer: 'C1',
      correlationId: `c-${processId}`,
      step,
      issueAttempts: 0,
      issueResults: 0,
      attempts: 0,
      dueAt,
      version: 1,
      createdAt: 0,
      updatedAt: 0,
      active: true,
      availableAt: dueAt,
    });
    await raw
      .collection(collection)
      .doc('old-start')
      .create(older('old-start', 'start', 1_000));
    await raw
      .collection(collection)
      .doc('old-check')
      .create(older('old-check', 'await_signature', 5_000));
    await raw
      .collection(collection)
      .doc('old-upload')
      .create(older('old-upload', 'upload', 4_000));
    await store.create({ processId: 'new-start', customer: 'C1', correlationId: 'c-new', dueAt: 2_000 });

    const ids = async (limit: number, reserveForStarts = 0) =>
      (await store.findDue(10_000, limit, { reserveForStarts })).map((r) => r.processId);
    expect(await ids(10)).toEqual(['old-upload', 'old-check', 'old-start', 'new-start']);
    expect(await ids(2)).toEqual(['old-upload', 'old-check']);
    expect(await ids(2, 1)).toEqual(['old-upload', 'old-start']);
  });

  it('leaves a record at a step it does not know to the newer replicas that do', async () => {
    const { store, collection } = open();
    await store.create({ processId: 'later-step', customer: 'C1', correlationId: 'c', dueAt: 0 });
    await raw.collection(collection).doc('later-step').update({ step: 'some_future_step' });
    expect(await store.findDue(Date.now(), 10)).toEqual([]);
    expect(await store.tryLease('later-step', 'r1', 30_000)).toBeUndefined();
  });

  it('refuses a record of another layout major as a store deployment fault', async () => {
    const { store, collection } = open();
    await raw
      .collection(collection)
      .doc('major2')
      .create({
        schemaMajor: DOCUMENT_SCHEMA_MAJOR + 1,
        processId: 'major2',
        customer: 'C1',
        step: 'start',
        active: true,
        availableAt: 0,
      });
    const error: unknown = await store.get('major2').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompatibleRecordError);
    expect((error as DeploymentFaultError).component).toBe('store');
    expect(await store.findDue(Date.now(), 10)).toEqual([]);
  });
});

describe('Firestore store: an unreachable Firestore', () => {
  it('surfaces a hung Firestore as a store deployment fault within the request timeout, and recovers', async () => {
    const proxy = await startTcpProxy(inject('firestoreEmulatorHost'));
    proxies.push(proxy);
    const { store } = open({ host: proxy.host, requestTimeoutMs: 700 });
    await store.create({ processId: 'p', customer: 'C1', correlationId: 'c', dueAt: 0 });
    proxy.freeze();
    const started = Date.now();
    const error: unknown = await store.tryLease('p', 'r1', 30_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).component).toBe('store');
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(store.findDue(Date.now(), 10)).rejects.toBeInstanceOf(DeploymentFaultError);
    proxy.thaw();
    proxy.cut();
    // After the connections were reset the client reconnects; the record is as it was (or leased by r1 if the
    // frozen write landed late — never anything else).
    const record = await store.get('p');
    expect(record?.step).toBe('start');
    expect([undefined, 'r1']).toContain(record?.lease?.owner);
  });

  it('a write that timed out but landed is recognised by its write id: answered as written, not decided again', async () => {
    const proxy = await startTcpProxy(inject('firestoreEmulatorHost'));
    proxies.push(proxy);
    const { store, collection } = open({ host: proxy.host, requestTimeoutMs: 600 });
    await store.create({ processId: 'p', customer: 'C1', correlationId: 'c', dueAt: 0 });
    await store.tryLease('p', 'r1', 30_000);
    // The releasing write is sent into a hung connection: no answer within the timeout. The store reads the record
    // again (sent into the same hung connection); the connection resumes before that read's timeout, and the write
    // lands. Decided again, the release would find no lease of r1's and throw LeaseLostError — a step re-run.
    proxy.freeze();
    const thaw = setTimeout(() => proxy.thaw(), 900);
    const released = await store.update('p', 'r1', { step: 'await_signature', dueAt: 5 }, { release: true });
    clearTimeout(thaw);
    expect(released).toMatchObject({ step: 'await_signature', dueAt: 5 });
    expect(released.lease).toBeUndefined();
    const document = (await raw.collection(collection).doc('p').get()).data();
    expect(document).toMatchObject({ step: 'await_signature', dueAt: 5, version: 3 }); // created, leased, released
    expect(document?.lease).toBeUndefined();

    // Likewise a create that timed out but landed is reported as created (the intake's "process received").
    proxy.freeze();
    const thawAgain = setTimeout(() => proxy.thaw(), 900);
    const created = await store.create({ processId: 'q', customer: 'C1', correlationId: 'cq', dueAt: 0 });
    clearTimeout(thawAgain);
    expect(created.created).toBe(true);
    expect(created.record.correlationId).toBe('cq');
  });

  it('surfaces a Firestore nobody listens on as a store deployment fault', async () => {
    const port = await freePort();
    const { store } = open({ host: `127.0.0.1:${port}`, requestTimeoutMs: 500 });
    const error: unknown = await store
      .create({ processId: 'p', customer: 'C1', correlationId: 'c', dueAt: 0 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).component).toBe('store');
  });
});
