/**
 * `certprov dead-letter replay` against the real Pub/Sub emulator: notifications parked while the deployment was
 * wrong (the adapter's Google permissions were missing: 403 on every call) are replayed after the fix, and their
 * certificates are issued — judged by openssl. A message leaves the dead-letter subscription only once republished.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { replayDeadLetters } from '../../src/pubsub/dead-letter-replay.ts';
import type { KeyPool } from '../../src/sandbox/index.ts';
import { AdapterRig } from '../support/adapter-rig.ts';
import { testKeyPool } from '../support/keys.ts';
import { verifyCertificate } from '../support/openssl.ts';
import {
  emulatorClientOptions,
  freshSubscription,
  rigPubsub,
  sleep,
  type FreshSubscription,
} from '../support/pubsub.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');

function certprov(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let pool: KeyPool;
let subscription: FreshSubscription;
let rig: AdapterRig;
let deadLetterSubscription: string;
let topic: string;

beforeAll(async () => {
  pool = await testKeyPool();
  subscription = await freshSubscription('replay', {
    deadLetterMaxDeliveryAttempts: 5,
    retryBackoffSeconds: { min: 0, max: 1 },
  });
  deadLetterSubscription = subscription.deadLetter?.subscription.name ?? '';
  topic = subscription.topic.name;
  // The memory store holds a message until its process finishes, at most maxExtension: with the deployment
  // broken, every delivery is handed back after a second, and the dead-letter policy parks it after five.
  rig = await AdapterRig.start({ pubsub: rigPubsub(subscription), config: { pubsub: { maxExtension: '1s' } } });
});

afterAll(async () => {
  await rig?.stop();
  await subscription?.cleanup();
});

/** What the dead-letter subscription holds, without taking anything off it (a dry run). */
async function parked(): Promise<string[]> {
  const lines: string[] = [];
  await replayDeadLetters({
    deadLetterSubscription,
    topic,
    limit: 100,
    dryRun: true,
    customer: 'my_customer',
    report: (line) => lines.push(line),
    pullTimeoutMs: 2_000,
    clientOptions: emulatorClientOptions(),
  });
  return lines;
}

describe('certprov dead-letter replay', () => {
  it('replays notifications parked while the deployment was wrong; their certificates are issued', async () => {
    rig.tenant.forbidden = true; // the adapter's service account lacks its Chrome role: 403 everywhere
    const ids = [
      rig.tenant.createProcess({ key: pool.next('ec-p256') }),
      rig.tenant.createProcess({ key: pool.next('rsa-2048') }),
      rig.tenant.createProcess({
        key: pool.next('ec-p256'),
        subject: { kind: 'user', userPrimaryEmail: 'parked@example.com', userDirectoryApiId: 'u-parked' },
      }),
    ];
    for (const id of ids) await rig.notify(id, { encoding: 'protobuf', attributes: { origin: 'admin-console' } });

    const deadline = Date.now() + 90_000;
    let seen = await parked();
    while (seen.length < ids.length) {
      if (Date.now() > deadline) throw new Error(`only ${seen.length} parked after 90 s: ${seen.join('\n')}`);
      await sleep(1_000);
      seen = await parked();
    }
    // The dry run names each parked process, and left them all parked (asked twice, same answer).
    for (const id of ids) expect(seen.join('\n')).toContain(`process ${id}`);
    expect(await parked()).toHaveLength(ids.length);
    for (const id of ids) expect(rig.tenant.process(id).issuedCertificate).toBeUndefined();

    // The fix: permissions granted, the adapter restarted (its memory store starts empty).
    await rig.stopAdapter();
    rig.tenant.forbidden = false;
    await rig.startAdapter();

    const first = await certprov([
      'dead-letter',
      'replay',
      '--subscription',
      deadLetterSubscription,
      '--topic',
      topic,
      '--limit',
      '1',
    ]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^replayed 1 message\(s\) from /m);
    // The emulator answers a pull as soon as it has messages; 2 s of nothing means drained (the default 10 s is
    // for operators against the real service).
    const rest = await certprov([
      'dead-letter',
      'replay',
      '--pull-timeout',
      '2s',
      '--project',
      'certprov-test',
      '--subscription',
      deadLetterSubscription.split('/').pop() as string,
      '--topic',
      topic.split('/').pop() as string,
    ]);
    expect(rest.code).toBe(0);
    expect(rest.stdout).toMatch(/^replayed 2 message\(s\) from /m);

    await rig.tenant.waitUntilFinished(ids, 60_000);
    for (const id of ids) {
      const process = rig.tenant.process(id);
      expect(process.failureMessage, id).toBeUndefined();
      const verdict = await verifyCertificate(process.issuedCertificate as string, rig.caCertificatePem);
      expect(verdict.ok, verdict.stderr).toBe(true);
      expect(rig.tenant.counters(id)).toMatchObject({ signDataCalls: 1, uploads: 1 });
    }
    // Nothing is left parked, and the replayed messages were acknowledged by the adapter, not parked again.
    expect(await parked()).toEqual([]);
    const nothing = await certprov([
      'dead-letter',
      'replay',
      '--pull-timeout',
      '2s',
      '--subscription',
      deadLetterSubscription,
      '--topic',
      topic,
    ]);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/^replayed 0 message\(s\)/m);
  }, 300_000);

  it('a usage error exits 2 with the help (the cases: test/unit/cli/dead-letter.test.ts)', async () => {
    const run = await certprov(['dead-letter', 'replay', '--topic', 't']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--subscription \(the dead-letter subscription\) and --topic are required/);
    expect(run.stderr).toContain('certprov dead-letter replay --subscription DL --topic T');
  });

  it('a topic that does not exist → exit 1, nothing taken off the dead-letter subscription', async () => {
    const run = await certprov([
      'dead-letter',
      'replay',
      '--subscription',
      deadLetterSubscription,
      '--topic',
      'projects/certprov-test/topics/no-such-topic',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/topic projects\/certprov-test\/topics\/no-such-topic does not exist/);
  });
});
