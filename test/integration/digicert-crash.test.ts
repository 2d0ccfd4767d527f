/**
 * Never two DigiCert orders for one process, proven with a real crash (DESIGN.md §5, issue 4): `certprov run` runs
 * as its own OS process on each durable store — Firestore (the emulator) and the single-replica sqlite file — and
 * the Pub/Sub emulator; the fake CertCentral creates the
 * order and never answers, and the test SIGKILLs the adapter right there — after DigiCert took the order, before the
 * adapter could record it. A second `certprov run` must find that order (process-id custom field) instead of
 * ordering again, and finish the process with a certificate openssl verifies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { SandboxTenant, type KeyPool } from '../../src/sandbox/index.ts';
import { TEST_API_KEY, digicertConnectionBlock } from '../fakes/digicert/connection.ts';
import { FakeCertCentral } from '../fakes/digicert/fake-certcentral.ts';
import { FIRESTORE_TEST_PROJECT, rawFirestore, uniqueCollection } from '../support/firestore.ts';
import { CRASH_TEST_SCHEDULER } from '../support/adapter-process.ts';
import { testKeyPool } from '../support/keys.ts';
import { verifyCertificate } from '../support/openssl.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');

interface Adapter {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const STORES = ['firestore', 'sqlite'] as const;

describe.each(STORES)('on the %s store', (storeType) => {
  let pool: KeyPool;
  let work: string;
  let subscription: FreshSubscription;
  let tenant: SandboxTenant;
  let fake: FakeCertCentral;
  let collection: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    pool = await testKeyPool();
    work = await mkdtemp(path.join(tmpdir(), 'certprov-digicert-crash-'));
    subscription = await freshSubscription(`digicert-crash-${storeType}`, { ackDeadlineSeconds: 10 });
    tenant = await SandboxTenant.start({});
    fake = await FakeCertCentral.start({ apiKey: TEST_API_KEY });
    collection = uniqueCollection('digicert-crash');
    await writeFile(path.join(work, 'digicert.key'), TEST_API_KEY, { mode: 0o600 });
    const config = {
      instanceId: 'certprov-crash-test',
      chrome: { endpoint: tenant.endpoint, credentials: 'none', signatureTimeout: '30s', requestTimeout: '5s' },
      pubsub: { subscription: subscription.subscriptionName, closeTimeout: '3s' },
      store:
        storeType === 'firestore'
          ? { type: 'firestore', projectId: FIRESTORE_TEST_PROJECT, collection }
          : { type: 'sqlite', path: path.join(work, 'state', 'certprov.db') },
      scheduler: CRASH_TEST_SCHEDULER,
      caConnections: { default_ca_config: digicertConnectionBlock(fake, { statusPollInterval: '1s' }) },
      profiles: {
        // client_authentication_plus issues to users only (a device process carries no email).
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}}',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
      },
      http: { host: '127.0.0.1', port: 0 },
      log: { level: 'debug' },
      shutdown: { gracePeriod: '3s' },
    };
    await writeFile(path.join(work, 'certprov.yaml'), stringify(config));
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await fake?.close();
    await tenant?.close();
    await subscription?.cleanup();
    const firestore = rawFirestore();
    await firestore.recursiveDelete(firestore.collection(collection)).catch(() => undefined);
    await firestore.recursiveDelete(firestore.collection(`${collection}-coordination`)).catch(() => undefined);
    await firestore.terminate();
    await rm(work, { recursive: true, force: true });
  });

  function startAdapter(): Adapter {
    const child = spawn(process.execPath, [MAIN, 'run', '--config', path.join(work, 'certprov.yaml')], {
      cwd: ROOT,
      env: {
        ...process.env,
        PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
        FIRESTORE_EMULATOR_HOST: inject('firestoreEmulatorHost'),
        GOOGLE_CLOUD_PROJECT: FIRESTORE_TEST_PROJECT,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-200_000)));
    child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-200_000)));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    return { child, output: () => output, exited };
  }

  describe('a crash between the order POST and its record', () => {
    it('SIGKILL after DigiCert took the order: the restarted adapter finds it and orders nothing more', async () => {
      // The order is created, then the answer never comes: the adapter dies waiting for it.
      fake.injectFault('order', { kind: 'hang', afterApply: true });
      const id = tenant.createProcess({
        key: pool.next('rsa-2048'),
        subject: { kind: 'user', userPrimaryEmail: 'crash@example.com', userDirectoryApiId: 'u-crash-1' },
      });
      const first = startAdapter();
      const ordered = fake.nextOrder();
      await tenant.notify(id, { encoding: 'json-camel' }, async (data, attributes) => {
        await subscription.publish(data, attributes);
      });
      let deadline: NodeJS.Timeout | undefined;
      const order = await Promise.race([
        ordered,
        first.exited.then(() => {
          throw new Error(`the first adapter exited before ordering:\n${first.output()}`);
        }),
        new Promise<never>((_, reject) => {
          deadline = setTimeout(() => reject(new Error(`no order within 60 s:\n${first.output()}`)), 60_000);
        }),
      ]).finally(() => clearTimeout(deadline));
      first.child.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');
      expect(fake.ordersForProcess(id).map((o) => o.id)).toEqual([order.id]);
      expect(tenant.process(id).issuedCertificate).toBeUndefined();

      const second = startAdapter();
      try {
        await tenant.waitUntilFinished([id], 60_000).catch((error: unknown) => {
          throw new Error(`${String(error)}\nsecond adapter output:\n${second.output().slice(-20_000)}`);
        });
        expect(tenant.process(id).failureMessage).toBeUndefined();
        const pem = tenant.process(id).issuedCertificate as string;
        const verdict = await verifyCertificate(pem, fake.ca.rootPem, {
          untrusted: [fake.ca.intermediatePem],
          purpose: 'sslclient',
        });
        expect(verdict.ok, verdict.stderr).toBe(true);
        // Exactly one order for the process, and the second adapter never POSTed.
        expect(fake.ordersForProcess(id)).toHaveLength(1);
        expect(fake.count('order')).toBe(1);
        expect(fake.count('list-orders')).toBeGreaterThanOrEqual(1);
        expect(second.output()).toContain('found the DigiCert order of an earlier attempt');
        expect(tenant.counters(id).signDataCalls).toBe(1);
      } finally {
        second.child.kill('SIGTERM');
        await waitFor(
          () => second.child.exitCode !== null || second.child.signalCode !== null,
          15_000,
          'the second adapter to stop',
        );
      }
    });
  });
});
