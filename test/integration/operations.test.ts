/**
 * Operations end to end: an adapter pulling from Google's Pub/Sub emulator, talking to the sandbox tenant with a
 * Google access token obtained the Workload Identity way (a loopback metadata server), issuing from a local CA.
 * What an SRE relies on is checked from the outside: /metrics scraped over HTTP must count exactly what happened
 * (the tenant's own request counters and outcomes are the judge), /healthz and /readyz must answer as documented,
 * and every log line must be JSON with a Cloud Logging severity and no token, key, CSR, signature or (above debug)
 * email or serial in it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Message } from '@google-cloud/pubsub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPersonal } from '../../src/observability/logger.ts';
import { statusClass } from '../../src/observability/metrics.ts';
import { SANDBOX_METHODS, type KeyPool } from '../../src/sandbox/index.ts';
import { AdapterRig } from '../support/adapter-rig.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { testKeyPool } from '../support/keys.ts';
import { freshSubscription, sleep, type FreshSubscription } from '../support/pubsub.ts';
import { probe, scrape, type Scrape } from './operations-scrape.ts';

const ENV_KEYS = [
  'GCE_METADATA_HOST',
  'GCE_METADATA_IP',
  'METADATA_SERVER_DETECTION',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'CLOUDSDK_CONFIG',
  'NO_PROXY',
  'no_proxy',
] as const;
const savedEnv = new Map<string, string | undefined>();
const ACCESS_TOKEN = 'ya29.operations-test-token-4c1d7e9b2a';

let pool: KeyPool;
let metadata: FakeMetadataServer;
let gcloudDir: string;
let subscription: FreshSubscription;
let rig: AdapterRig;
let port: number;

beforeAll(async () => {
  pool = await testKeyPool();
  // Application Default Credentials isolated from the machine: no key file, no gcloud file, the metadata server is ours.
  for (const key of ENV_KEYS) savedEnv.set(key, process.env[key]);
  for (const key of ENV_KEYS) Reflect.deleteProperty(process.env, key);
  metadata = await FakeMetadataServer.start({ accessToken: ACCESS_TOKEN });
  gcloudDir = await mkdtemp(path.join(tmpdir(), 'certprov-gcloud-'));
  process.env.GCE_METADATA_HOST = metadata.host;
  process.env.CLOUDSDK_CONFIG = gcloudDir;
  process.env.NO_PROXY = '127.0.0.1,localhost';

  subscription = await freshSubscription('operations', {
    deadLetterMaxDeliveryAttempts: 5,
    retryBackoffSeconds: { min: 0, max: 1 },
  });
  rig = await AdapterRig.start({
    pubsub: {
      topicPublish: (data, attributes) => subscription.publish(data, attributes),
      subscription: subscription.subscriptionName,
      clientOptions: subscription.clientOptions,
    },
    // The tenant answers 401 to anything without the metadata server's token.
    tenant: { expectedToken: ACCESS_TOKEN },
    config: { chrome: { credentials: 'google-default' } },
    serveHttp: true,
    logLevel: 'debug',
  });
  port = rig.adapter.httpPort;
});

afterAll(async () => {
  await rig?.stop();
  await subscription?.cleanup();
  await metadata?.close();
  for (const [key, value] of savedEnv) {
    if (value === undefined) Reflect.deleteProperty(process.env, key);
    else process.env[key] = value;
  }
  if (gcloudDir !== undefined) await rm(gcloudDir, { recursive: true, force: true });
});

/** Polls `check` every 100 ms until it resolves true; rejects with `what` after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('an end-to-end run, seen through /metrics, /healthz, /readyz and the logs', () => {
  const good: string[] = [];
  const failed: Record<'bad_signature' | 'device_refused' | 'unknown_profile', string> = {
    bad_signature: '',
    device_refused: '',
    unknown_profile: '',
  };
  let alreadyIssued = '';
  let final: Scrape;
  let malformedIds: string[] = [];

  it('is alive and ready once started', async () => {
    expect(await probe(port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await probe(port, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
  });

  it('counts what happened: issued, failed by reason, skipped, messages received/acked/nacked/malformed, requests', async () => {
    good.push(...rig.tenant.createProcesses(6, { pool, ecShare: 0.5, userShare: 0.5, affiliatedShare: 1 }));
    failed.bad_signature = rig.tenant.createProcess({ key: pool.next('ec-p256'), badSignature: true });
    failed.device_refused = rig.tenant.createProcess({ key: pool.next('rsa-2048'), deviceRefuses: true });
    failed.unknown_profile = rig.tenant.createProcess({ key: pool.next('ec-p256'), profile: 'no_such_profile' });
    alreadyIssued = rig.tenant.createProcess({ key: pool.next('ec-p256'), finished: 'issued' });
    const all = [...good, ...Object.values(failed), alreadyIssued];
    for (const id of all) await rig.notify(id);
    malformedIds = [await subscription.publish('hello world'), await subscription.publish(Buffer.alloc(12, 0xff))];

    // Ready throughout normal work.
    for (let i = 0; i < 3; i += 1) {
      expect((await probe(port, '/readyz')).status).toBe(200);
      await sleep(100);
    }
    await rig.tenant.waitUntilFinished(all, 30_000);
    // The memory store acknowledges when the process has finished; all ten are acked.
    await eventually(
      async () => (await scrape(port)).sum('certprov_messages_acked_total') === all.length,
      15_000,
      'ten acks',
    );

    // Undecodable messages are never acked: nacked until the dead-letter policy parks them.
    const parked = new Set<string>();
    const onParked = (m: Message) => {
      parked.add(m.data.toString('hex'));
      m.ack();
    };
    subscription.deadLetter?.subscription.on('message', onParked);
    try {
      await eventually(
        () => Promise.resolve(parked.size >= 2),
        30_000,
        'both undecodable messages on the dead-letter subscription',
      );
    } finally {
      subscription.deadLetter?.subscription.removeListener('message', onParked);
    }
    expect(parked).toEqual(
      new Set([Buffer.from('hello world').toString('hex'), Buffer.alloc(12, 0xff).toString('hex')]),
    );
    await sleep(300);

    final = await scrape(port);
    const s = final;
    expect(s.sum('certprov_processes_started_total')).toBe(all.length);
    expect(s.sum('certprov_processes_issued_total', { ca_connection: 'default_ca_config', backend: 'local' })).toBe(
      good.length,
    );
    expect(s.sum('certprov_processes_issued_total')).toBe(good.length);
    for (const reason of Object.keys(failed))
      expect(s.sum('certprov_processes_failed_total', { reason }), reason).toBe(1);
    expect(s.sum('certprov_processes_failed_total')).toBe(3);
    expect(s.sum('certprov_processes_skipped_total', { reason: 'already_finished' })).toBe(1);
    expect(s.sum('certprov_provisioning_duration_seconds_count')).toBe(all.length);
    expect(s.sum('certprov_provisioning_duration_seconds_count', { outcome: 'issued' })).toBe(good.length);

    // Messages: every delivery was acked or nacked; undecodable ones only nacked, counted once per delivery.
    const malformed = s.sum('certprov_messages_malformed_total');
    expect(malformed).toBeGreaterThanOrEqual(2 * 5 - 2); // ≈ maxDeliveryAttempts each (the emulator may count loosely)
    expect(s.sum('certprov_messages_nacked_total', { reason: 'malformed' })).toBe(malformed);
    expect(s.sum('certprov_messages_received_total')).toBe(
      s.sum('certprov_messages_acked_total') + s.sum('certprov_messages_nacked_total'),
    );
    expect(s.sum('certprov_messages_acked_total')).toBe(all.length);

    // Remote requests: what the adapter counted is what the tenant received, method by method.
    const seen = rig.tenant.requests;
    for (const method of SANDBOX_METHODS) {
      expect(s.sum('certprov_remote_requests_total', { api: 'chrome', method }), method).toBe(seen[method]);
    }
    expect(
      s.sum('certprov_remote_requests_total', {
        api: 'chrome',
        method: 'uploadCertificate',
        status_class: statusClass(200),
      }),
    ).toBe(good.length);
    expect(s.sum('certprov_remote_request_duration_seconds_count', { api: 'chrome' })).toBe(
      s.sum('certprov_remote_requests_total', { api: 'chrome' }),
    );
    // The local CA signed exactly the issued ones.
    expect(
      s.sum('certprov_ca_certificates_issued_total', { ca_connection: 'default_ca_config', backend: 'local' }),
    ).toBe(good.length);
    expect(await rig.issuances()).toBe(good.length);
    // Steps: one successful upload per issued process; the device signature wait observed for each signed one.
    expect(s.sum('certprov_step_duration_seconds_count', { step: 'upload', outcome: 'ok' })).toBe(good.length);
    expect(s.sum('certprov_signature_wait_seconds_count')).toBeGreaterThanOrEqual(good.length);
    // Nothing running, nothing faulty, ready, and the build it is.
    expect(s.sum('certprov_processes_in_flight')).toBe(0);
    expect(s.sum('certprov_deployment_fault_active')).toBe(0);
    expect(s.sum('certprov_ready')).toBe(1);
    // (The rig's Metrics carry no version; `run` sets it — test/integration/shutdown.test.ts scrapes that.)
    expect(s.sum('certprov_build_info', { node: process.versions.node })).toBe(1);
    // Every request carried the token (the tenant answers 401 otherwise).
    expect(s.sum('certprov_remote_requests_total', { status_class: '4xx' })).toBe(0);
    expect(metadata.tokenRequests().length).toBeGreaterThan(0);
    expect(malformedIds).toHaveLength(2);
  });

  it('logs one JSON line per state change of a process, with its id, step and correlation id', () => {
    const entries = rig.logs.entries();
    for (const entry of entries) {
      expect(['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL']).toContain(entry.severity);
      expect(typeof entry.message).toBe('string');
      expect(new Date(String(entry.time)).toISOString()).toBe(entry.time);
    }
    for (const id of good) {
      const lines = entries.filter(
        (e) => e.processId === id && (String(e.message).startsWith('process ') || e.message === 'process received'),
      );
      expect(lines[0]?.message, id).toBe('process received');
      const transitions = lines.filter((e) => String(e.message).startsWith('process → ')).map((e) => e.next);
      expect(transitions, id).toEqual(['await_signature', 'issue', 'upload']);
      expect(lines.at(-1)?.message).toBe('process done: issued');
      const correlation = new Set(lines.map((e) => e.correlationId));
      expect(correlation.size).toBe(1);
      expect([...correlation][0]).toMatch(/\S/);
      for (const line of lines) expect(line.step, String(line.message)).toBeDefined();
    }
    for (const [reason, id] of Object.entries(failed)) {
      const done = entries.find((e) => e.processId === id && e.message === 'process done: failed');
      expect(done?.reason, id).toBe(reason);
      // The user sees the correlation id; the same id is on the log lines that explain the failure.
      const message = rig.tenant.process(id).failureMessage;
      if (reason !== 'device_refused') expect(message).toContain(String(done?.correlationId));
    }
    const undecodable = entries.filter(
      (e) => e.message === 'undecodable provisioning notification; nacked for the dead-letter policy',
    );
    expect(new Set(undecodable.map((e) => e.messageId))).toEqual(new Set(malformedIds));
    expect(undecodable.every((e) => e.severity === 'WARNING')).toBe(true);
  });

  it('puts no token, key, CSR or signature in any line, and no email or serial above debug', async () => {
    const lines = rig.logs.lines;
    const all = lines.join('');
    expect(all).not.toContain(ACCESS_TOKEN);
    const caKey = await readFile(path.join(rig.caDirectory, 'ca.key.pem'), 'utf8');
    for (const keyLine of caKey.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l)))
      expect(all).not.toContain(keyLine);
    const personal: string[] = [];
    for (const id of [...good, ...Object.values(failed)]) {
      const resource = rig.tenant.process(id);
      for (const bytes of [resource.signData, resource.signature]) {
        if (bytes !== undefined) expect(all, `${id} signData/signature`).not.toContain(bytes.slice(0, 48));
      }
      const csr = (await rig.adapter.store.get(id))?.csr;
      if (csr !== undefined) expect(all, `${id} CSR`).not.toContain(csr.slice(0, 64));
      const email = resource.chromeOsUserSession?.userPrimaryEmail;
      const serial =
        resource.chromeOsDevice?.serialNumber ?? resource.chromeOsUserSession?.chromeOsDevice?.serialNumber;
      for (const value of [email, serial]) if (value !== undefined) personal.push(value);
    }
    expect(personal.length).toBeGreaterThanOrEqual(good.length);
    const aboveDebug = lines.filter((l) => (JSON.parse(l) as { severity: string }).severity !== 'DEBUG').join('');
    for (const value of personal) expect(aboveDebug, value).not.toContain(value);
    // Users are still traceable at info level, by hash.
    const emails = good
      .map((id) => rig.tenant.process(id).chromeOsUserSession?.userPrimaryEmail)
      .filter((e): e is string => e !== undefined);
    expect(emails.length).toBeGreaterThan(0);
    for (const email of emails) expect(aboveDebug).toContain(hashPersonal(email));
  });
});

describe('readiness follows deployment faults, not remote outages', () => {
  it('a refused credential (403) makes the replica unready without failing the process; it recovers by itself', async () => {
    rig.tenant.forbidden = true;
    const id = rig.tenant.createProcess({ key: pool.next('ec-p256') });
    await rig.notify(id);
    await eventually(async () => (await probe(port, '/readyz')).status === 503, 15_000, 'not ready');
    const notReady = await probe(port, '/readyz');
    expect(notReady.body).toContain('not ready: deployment fault (chrome)');
    expect((await probe(port, '/healthz')).status).toBe(200);
    const during = await scrape(port);
    expect(during.sum('certprov_ready')).toBe(0);
    expect(during.sum('certprov_deployment_fault_active', { component: 'chrome' })).toBe(1);
    expect(during.sum('certprov_deployment_faults_total', { component: 'chrome' })).toBeGreaterThanOrEqual(1);
    expect(rig.tenant.process(id).failureMessage).toBeUndefined();

    rig.tenant.forbidden = false;
    await rig.tenant.waitUntilFinished([id], 20_000);
    expect(rig.tenant.process(id).issuedCertificate).toBeDefined();
    await eventually(async () => (await probe(port, '/readyz')).status === 200, 10_000, 'ready again');
    expect((await scrape(port)).sum('certprov_deployment_fault_active', { component: 'chrome' })).toBe(0);
  });

  it('an outage (503 on every call) is retried and leaves the replica ready', async () => {
    const before = await scrape(port);
    rig.tenant.faults = { rate503: 1 };
    const id = rig.tenant.createProcess({ key: pool.next('ec-p256') });
    await rig.notify(id);
    await eventually(
      async () =>
        (await scrape(port)).sum('certprov_remote_requests_total', { status_class: '5xx' }) >
        before.sum('certprov_remote_requests_total', { status_class: '5xx' }) + 3,
      15_000,
      'failing requests',
    );
    for (let i = 0; i < 5; i += 1) {
      expect((await probe(port, '/readyz')).status).toBe(200);
      await sleep(150);
    }
    rig.tenant.faults = {};
    await rig.tenant.waitUntilFinished([id], 20_000);
    expect(rig.tenant.process(id).issuedCertificate).toBeDefined();
    const after = await scrape(port);
    expect(after.sum('certprov_retries_total', { where: 'chrome' })).toBeGreaterThan(
      before.sum('certprov_retries_total', { where: 'chrome' }),
    );
    expect(after.sum('certprov_deployment_fault_active')).toBe(0);
  });

  it('throttling (429) is counted in its own status class', async () => {
    const before = (await scrape(port)).sum('certprov_remote_requests_total', { status_class: '429' });
    rig.tenant.faults = { burst429: 2, methods: ['get'] };
    const id = rig.tenant.createProcess({ key: pool.next('ec-p256') });
    await rig.notify(id);
    await rig.tenant.waitUntilFinished([id], 20_000);
    rig.tenant.faults = {};
    expect(rig.tenant.process(id).issuedCertificate).toBeDefined();
    expect(
      (await scrape(port)).sum('certprov_remote_requests_total', {
        api: 'chrome',
        method: 'get',
        status_class: '429',
      }) - before,
    ).toBe(2);
  });
});
