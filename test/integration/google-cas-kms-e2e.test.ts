/**
 * The Google CAs end to end, as deployed: `certprov run` as its own OS process, Google's Pub/Sub and Firestore
 * emulators, the sandbox tenant (simulated ChromeOS clients with real keys), credentials from a fake GKE metadata
 * server (Application Default Credentials, as Workload Identity gives them), and the loopback fakes of CAS and KMS.
 * openssl judges every certificate against the CA's chain.
 *
 * - google-cas: a SIGKILL after CAS created a certificate but before its answer reached the adapter (so before the
 *   result was recorded). The restarted adapter must end with exactly one certificate per process, none lost, none
 *   twice. The fake also forgets the request ids in between (CAS keeps them for a limited time), so the certificate
 *   id derived from the process is what prevents the duplicate: ALREADY_EXISTS, then a read-back.
 * - google-kms: one AsymmetricSign per certificate, leaves chaining to the parent through the KMS CA certificate.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SandboxTenant, type KeyPool } from '../../src/sandbox/index.ts';
import { FakeCas } from '../fakes/google-cas/fake-cas.ts';
import { FakeKms } from '../fakes/google-kms/fake-kms.ts';
import { createKmsIssuingCa, type KmsCaFixture } from '../fakes/google-kms/kms-ca-fixture.ts';
import {
  AdapterProcess,
  CRASH_TEST_SCHEDULER,
  killAllAdapters,
  writeAdapterConfig,
} from '../support/adapter-process.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { FIRESTORE_TEST_PROJECT, rawFirestore, uniqueCollection } from '../support/firestore.ts';
import { testKeyPool } from '../support/keys.ts';
import { spkiDerOfCertificate, verifyCertificate } from '../support/openssl.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';

let pool: KeyPool;
let work: string;
let metadata: FakeMetadataServer;
let tenant: SandboxTenant;
const collections: string[] = [];
const subscriptions: FreshSubscription[] = [];

beforeAll(async () => {
  pool = await testKeyPool();
  work = await mkdtemp(path.join(tmpdir(), 'certprov-google-e2e-'));
  metadata = await FakeMetadataServer.start();
  tenant = await SandboxTenant.start({});
});

afterAll(async () => {
  await killAllAdapters();
  await tenant?.close();
  await metadata?.close();
  for (const subscription of subscriptions) await subscription.cleanup();
  const firestore = rawFirestore();
  for (const collection of collections) {
    await firestore.recursiveDelete(firestore.collection(collection)).catch(() => undefined);
    await firestore.recursiveDelete(firestore.collection(`${collection}-coordination`)).catch(() => undefined);
  }
  await firestore.terminate();
  await rm(work, { recursive: true, force: true });
});

/** A `certprov run` configuration on Firestore and a fresh subscription, with `caConnection` as the CA. */
async function adapterConfig(label: string, caConnection: Record<string, unknown>) {
  const subscription = await freshSubscription(label, { ackDeadlineSeconds: 10 });
  subscriptions.push(subscription);
  const collection = uniqueCollection(label);
  collections.push(collection);
  const configFile = await writeAdapterConfig(path.join(work, `${label}.json`), {
    instanceId: `certprov-${label}`,
    chrome: { endpoint: tenant.endpoint, credentials: 'none', signatureTimeout: '30s', requestTimeout: '5s' },
    pubsub: { subscription: subscription.subscriptionName, closeTimeout: '3s' },
    store: { type: 'firestore', projectId: FIRESTORE_TEST_PROJECT, collection },
    scheduler: CRASH_TEST_SCHEDULER,
    caConnections: { default_ca_config: caConnection },
    profiles: {
      device_profile: {
        subject: 'CN={{device.serialNumber}},O=Example Org',
        subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
        validity: '30d',
        extendedKeyUsages: ['clientAuth'],
      },
      user_profile: {
        subject: 'CN={{user.userPrimaryEmail}},O=Example Org',
        subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
        validity: '30d',
        extendedKeyUsages: ['clientAuth'],
      },
    },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    shutdown: { gracePeriod: '3s' },
  });
  let replicas = 0;
  const spawnAdapter = () => {
    replicas += 1;
    return AdapterProcess.spawn({
      configFile,
      name: `${label}-${replicas}`,
      logFile: path.join(work, `${label}-${replicas}.log`),
      env: {
        PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
        FIRESTORE_EMULATOR_HOST: inject('firestoreEmulatorHost'),
        GOOGLE_CLOUD_PROJECT: FIRESTORE_TEST_PROJECT,
        // Application Default Credentials from the metadata server, as on GKE with Workload Identity.
        GCE_METADATA_HOST: metadata.host,
        GOOGLE_APPLICATION_CREDENTIALS: '',
        CLOUDSDK_CONFIG: work,
        NO_PROXY: '127.0.0.1,localhost',
      },
    });
  };
  const notify = (id: string) =>
    tenant.notify(id, { encoding: 'json-camel' }, async (data, attributes) => {
      await subscription.publish(data, attributes);
    });
  return { spawnAdapter, notify };
}

/** The process's certificate verifies against `rootPem` (through `untrusted`) and carries the device key. */
async function expectVerified(id: string, rootPem: string, untrusted: string[] = []): Promise<string> {
  const resource = tenant.process(id);
  expect(resource.failureMessage, `process ${id} failed`).toBeUndefined();
  const pem = resource.issuedCertificate as string;
  expect(pem, `process ${id} has no certificate`).toBeDefined();
  const verdict = await verifyCertificate(pem, rootPem, { untrusted, purpose: 'sslclient' });
  expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);
  const spki = Buffer.from(resource.subjectPublicKeyInfo as string, 'base64');
  expect((await spkiDerOfCertificate(pem)).equals(spki)).toBe(true);
  return pem;
}

const createProcesses = (count: number) =>
  tenant.createProcesses(count, { pool, ecShare: 0.5, userShare: 0.5, affiliatedShare: 0.5 });

describe('google-cas: SIGKILL between CreateCertificate and its record (Firestore)', () => {
  let cas: FakeCas;
  let caPem: string;
  let caPool: string;

  beforeAll(async () => {
    cas = await FakeCas.start();
    ({ name: caPool, caPem } = await cas.createPool({ maximumLifetimeDays: 397 }));
  });
  afterAll(() => cas?.close());

  it('the restarted adapter ends with exactly one certificate per process: 0 lost, 0 duplicate', async () => {
    const { spawnAdapter, notify } = await adapterConfig('cas-crash', {
      type: 'google-cas',
      caPool,
      endpoint: cas.url,
      requestTimeout: '60s',
    });
    const ids = createProcesses(6);
    // The first CreateCertificate is applied by CAS, and its answer never comes: the adapter dies waiting.
    cas.server.hangAfterApplying(1, /^POST .*\/certificates$/);
    const first = spawnAdapter();
    await first.waitStarted();
    for (const id of ids) await notify(id);
    await waitFor(() => cas.certificateCount >= 1, 60_000, 'CAS to create the first certificate');
    await first.kill();
    expect(await first.exited).toBe('SIGKILL');
    const createdBeforeCrash = cas.certificateCount;
    const issuedBeforeCrash = ids.filter((id) => tenant.process(id).issuedCertificate !== undefined).length;
    // At least the hung one is at CAS without having reached its device.
    expect(createdBeforeCrash).toBeGreaterThan(issuedBeforeCrash);
    // More than CAS's request-id memory passes: only the certificate id can tell a repeat now.
    cas.forgetRequestIds();

    const second = spawnAdapter();
    await tenant.waitUntilFinished(ids, 90_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\nsecond adapter log: ${second.logFile}`);
    });
    for (const id of ids) {
      await expectVerified(id, caPem);
      expect(tenant.counters(id).signDataCalls, `process ${id}: the device was asked once`).toBe(1);
      expect(tenant.counters(id).uploads, `process ${id}: one upload`).toBe(1);
    }
    // Exactly one certificate per process at CAS: none lost, none twice.
    expect(cas.certificateCount).toBe(ids.length);
    const lines = await second.logLines();
    expect(lines.some((l) => String(l.message).startsWith('CAS already holds the certificate of this process'))).toBe(
      true,
    );
    await second.stop();
  }, 180_000);
});

describe('google-kms: end to end with the Pub/Sub emulator (Firestore)', () => {
  let kms: FakeKms;
  let fixture: KmsCaFixture;

  beforeAll(async () => {
    kms = await FakeKms.start({ rsaKey: () => pool.next('rsa-2048').privateKey });
    fixture = await createKmsIssuingCa(kms);
  });
  afterAll(async () => {
    await fixture?.close();
    await kms?.close();
  });

  it('issues devices and users with one AsymmetricSign per certificate; leaves chain to the parent', async () => {
    const { spawnAdapter, notify } = await adapterConfig(
      'kms-e2e',
      fixture.connection({
        caCertificateFile: path.join(fixture.dir, 'kms-ca.pem'),
        chainFile: path.join(fixture.dir, 'parent.pem'),
      }),
    );
    const adapter = spawnAdapter();
    await adapter.waitStarted();
    const ids = createProcesses(6);
    const signsBefore = kms.signCalls;
    for (const id of ids) await notify(id);
    await tenant.waitUntilFinished(ids, 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\nadapter log: ${adapter.logFile}`);
    });
    for (const id of ids) {
      await expectVerified(id, fixture.parent.rootPem, [fixture.caPem]);
      expect(tenant.counters(id).uploads).toBe(1);
    }
    expect(kms.signCalls - signsBefore).toBe(ids.length);
    await adapter.stop();
  }, 120_000);
});
