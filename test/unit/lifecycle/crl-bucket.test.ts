/**
 * The Cloud Storage copy of a connection's CRL (`crl.bucket`): the official client, pointed at a loopback fake of the
 * JSON API upload endpoint that rejects what Cloud Storage rejects, receives the DER of each new CRL (openssl parses
 * the stored object) with its content type and Cache-Control. A failed upload loses nothing (the CRL is stored), is
 * logged as a deployment fault naming the role to grant, and is uploaded at the next check once the role is granted.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StorageOptions } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectCa, type CaConnection } from '../../../src/ca/connection.ts';
import { crlSettingsSchema } from '../../../src/ca/crl-settings.ts';
import { localCaConfigSchema } from '../../../src/ca/local/config.ts';
import { localBackend } from '../../../src/ca/local/index.ts';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { CRL_CONTENT_TYPE, CRL_OBJECT_CACHE_CONTROL, CrlBucketUploader } from '../../../src/lifecycle/crl-bucket.ts';
import {
  CrlPublisher,
  crlPublications,
  publishCrl,
  type CrlDependencies,
  type CrlPublication,
} from '../../../src/lifecycle/crl.ts';
import { createLogger, silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { fakeGoogleAuth } from '../../fakes/google-kms/kms-ca-fixture.ts';
import { FakeGcs } from '../../fakes/google-storage/fake-gcs.ts';
import { LogCapture } from '../../support/adapter-rig.ts';
import { openssl } from '../../support/openssl.ts';

const TOKEN = 'crl-uploader-token';
const BUCKET = 'certprov-crls';
let work: string;
let gcs: FakeGcs;
const connections: CaConnection[] = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-crl-bucket-'));
  await initLocalCa({ directory: path.join(work, 'ca'), keyType: 'ec', subject: 'CN=CRL bucket test CA' });
  gcs = await FakeGcs.start();
  gcs.acceptToken(TOKEN);
});
afterAll(async () => {
  await Promise.all(connections.map((c) => c.abilities.background?.close() ?? Promise.resolve()));
  await gcs?.close();
  await rm(work, { recursive: true, force: true });
});

async function publicationWith(name: string, crl: Record<string, unknown>): Promise<CrlPublication> {
  const config = localCaConfigSchema.parse({
    type: 'local',
    directory: path.join(work, 'ca'),
    crl: { url: `http://pki.example.com/crl/${name}.crl`, ...crl },
  });
  const connection = await connectCa(localBackend, name, config, {
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    baseDir: work,
  });
  connections.push(connection);
  const [publication] = crlPublications([connection]);
  return publication!;
}

function capturedLog(): { logs: LogCapture; log: ReturnType<typeof createLogger> } {
  const logs = new LogCapture();
  return { logs, log: createLogger({ level: 'info', destination: logs }) };
}

function uploader(log = silentLogger(), token = TOKEN): CrlBucketUploader {
  return new CrlBucketUploader(log, {
    apiEndpoint: gcs.url,
    useAuthWithCustomEndpoint: true,
    // The client's own copy of google-auth-library types its AuthClient apart; at run time any AuthClient works.
    authClient: fakeGoogleAuth(token) as unknown as NonNullable<StorageOptions['authClient']>,
    projectId: 'certprov-test',
  });
}

function deps(bucket: CrlBucketUploader, log = silentLogger()): CrlDependencies {
  return {
    store: new MemoryProcessStore(),
    owner: 'replica-a',
    log,
    now: Date.now,
    signal: new AbortController().signal,
    bucket,
  };
}

async function crlTextOf(der: Buffer): Promise<string> {
  const file = path.join(work, `object-${Date.now()}-${Math.random()}.crl`);
  await writeFile(file, der);
  const parsed = await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']);
  expect(parsed.code, parsed.stderr).toBe(0);
  return parsed.stdout;
}

describe('the Cloud Storage copy of a CRL', () => {
  it('uploads the signed DER as <connection>.crl with application/pkix-crl and Cache-Control', async () => {
    gcs.createBucket(BUCKET, [TOKEN]);
    const publication = await publicationWith('bucket_ca', { bucket: BUCKET });
    const d = deps(uploader());
    const first = await publishCrl(d, publication);
    expect(first.status).toBe('published');
    const object = gcs.object(BUCKET, 'bucket_ca.crl');
    expect(object?.contentType).toBe(CRL_CONTENT_TYPE);
    expect(object?.cacheControl).toBe(CRL_OBJECT_CACHE_CONTROL);
    expect(object?.bytes.equals(Buffer.from((await d.store.getCrl('bucket_ca'))!.der))).toBe(true);
    expect(await crlTextOf(object!.bytes)).toMatch(/X509v3 CRL Number:\s*\n\s*1\b/);

    // The next CRL replaces the object.
    expect((await publishCrl(d, publication, { force: true })).status).toBe('published');
    expect(await crlTextOf(gcs.object(BUCKET, 'bucket_ca.crl')!.bytes)).toMatch(/X509v3 CRL Number:\s*\n\s*2\b/);
  });

  it('uses crl.object as the object name', async () => {
    gcs.createBucket('pki.example.com', [TOKEN]);
    const publication = await publicationWith('named_ca', { bucket: 'pki.example.com', object: 'crl/wifi.crl' });
    expect((await publishCrl(deps(uploader()), publication)).status).toBe('published');
    expect(gcs.object('pki.example.com', 'crl/wifi.crl')?.contentType).toBe(CRL_CONTENT_TYPE);
    expect(gcs.object('pki.example.com', 'named_ca.crl')).toBeUndefined();
  });

  it('keeps the CRL when the role is missing, logs the role to grant, and uploads at the next check', async () => {
    gcs.createBucket('ungranted-crls');
    const publication = await publicationWith('ungranted_ca', { bucket: 'ungranted-crls', checkInterval: '1s' });
    const { logs, log } = capturedLog();
    const bucket = uploader(log);
    const d = deps(bucket, log);
    const publisher = new CrlPublisher(d, [publication]);
    publisher.start();
    try {
      await vi.waitFor(() => expect(bucket.isStale('ungranted_ca')).toBe(true), { timeout: 10_000 });
      // Stored (and so served) regardless.
      expect((await d.store.getCrl('ungranted_ca'))?.crlNumber).toBe(1);
      expect(gcs.object('ungranted-crls', 'ungranted_ca.crl')).toBeUndefined();
      const fault = logs.entries().find((l) => l['component'] === 'gcs');
      expect(fault).toMatchObject({ level: 'error', errorClass: 'deployment', bucket: 'ungranted-crls' });
      expect(String(fault?.['hint'])).toContain('roles/storage.objectCreator');
      expect(String(fault?.['message'])).toContain('stale');

      gcs.grant('ungranted-crls', TOKEN);
      await vi.waitFor(() => expect(bucket.isStale('ungranted_ca')).toBe(false), { timeout: 10_000 });
      const object = gcs.object('ungranted-crls', 'ungranted_ca.crl');
      // The same CRL (number 1: not due again), now in the bucket.
      expect(await crlTextOf(object!.bytes)).toMatch(/X509v3 CRL Number:\s*\n\s*1\b/);
      expect((await d.store.getCrl('ungranted_ca'))?.crlNumber).toBe(1);
    } finally {
      await publisher.stop();
    }
  });

  it('reports an unknown bucket (404) and a refused credential (401) as deployment faults', async () => {
    const unknown = await publicationWith('unknown_bucket_ca', { bucket: 'no-such-bucket' });
    const { logs, log } = capturedLog();
    const bucket = uploader(log);
    expect((await publishCrl(deps(bucket, log), unknown)).status).toBe('published');
    expect(bucket.isStale('unknown_bucket_ca')).toBe(true);
    expect(gcs.requests).toContain('POST /upload/storage/v1/b/no-such-bucket/o → 404');

    const badToken = uploader(log, 'not-a-token');
    expect(
      (await publishCrl(deps(badToken, log), await publicationWith('bad_token_ca', { bucket: BUCKET }))).status,
    ).toBe('published');
    expect(badToken.isStale('bad_token_ca')).toBe(true);
    expect(gcs.requests).toContain(`POST /upload/storage/v1/b/${BUCKET}/o → 401`);
    expect(
      logs
        .entries()
        .filter((l) => l['component'] === 'gcs')
        .map((l) => l['errorClass']),
    ).toEqual(['deployment', 'deployment']);
  });

  it('the fake rejects what Cloud Storage rejects: no token 401, wrong method or upload type 400', async () => {
    const upload = `${gcs.url}/upload/storage/v1/b/${BUCKET}/o`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await fetch(`${upload}?uploadType=multipart&name=x`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${upload}?uploadType=multipart&name=x`, { method: 'PUT', headers: auth })).status).toBe(400);
    expect((await fetch(`${upload}?uploadType=media&name=x`, { method: 'POST', headers: auth })).status).toBe(400);
    expect((await fetch(`${upload}?name=x`, { method: 'POST', headers: auth })).status).toBe(400);
    expect(
      (await fetch(`${upload}?uploadType=multipart&name=x`, { method: 'POST', headers: auth, body: 'not multipart' }))
        .status,
    ).toBe(400);
  });
});

describe('crl.bucket and crl.object settings', () => {
  const url = 'http://pki.example.com/crl/a.crl';
  it.each(['certprov-crls', 'pki.example.com', 'a_b-c.d9', 'abc'])('accepts the bucket name %s', (bucket) => {
    expect(crlSettingsSchema.safeParse({ url, bucket }).success).toBe(true);
  });
  it.each([
    'gs://certprov-crls',
    'Certprov',
    'ab',
    'a'.repeat(64),
    '-crls',
    'crls-',
    'googcrls',
    'my-google-crls',
    '192.168.1.1',
    'a..b',
  ])('refuses the bucket name %s', (bucket) => {
    expect(crlSettingsSchema.safeParse({ url, bucket }).success).toBe(false);
  });
  it('refuses an object without a bucket, and an object name GCS refuses', () => {
    expect(crlSettingsSchema.safeParse({ url, object: 'a.crl' }).success).toBe(false);
    expect(crlSettingsSchema.safeParse({ url, bucket: 'crls', object: 'a\nb' }).success).toBe(false);
    expect(crlSettingsSchema.safeParse({ url, bucket: 'crls', object: '..' }).success).toBe(false);
    expect(crlSettingsSchema.safeParse({ url, bucket: 'crls', object: 'x'.repeat(1025) }).success).toBe(false);
    expect(crlSettingsSchema.safeParse({ url, bucket: 'crls', object: 'crl/wifi.crl' }).success).toBe(true);
  });
});
