/**
 * `certprov check-config --probe` as an operator runs it (a child process): Workload Identity through a loopback
 * metadata server, the Chrome API as the sandbox tenant, the subscription on Google's Pub/Sub emulator, a local CA.
 * It must report each check in a table, fail with a hint for each problem, and change nothing anywhere.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { initLocalCa } from '../../src/ca/local/init.ts';
import { SANDBOX_METHODS, SandboxTenant } from '../../src/sandbox/index.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { FIRESTORE_TEST_PROJECT, rawFirestore, uniqueCollection } from '../support/firestore.ts';
import { freshSubscription, type FreshSubscription } from '../support/pubsub.ts';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');
const TOKEN = 'ya29.probe-test-token-0b7c2f';
const SERVICE_ACCOUNT = 'certprov@probe-project.iam.gserviceaccount.com';

let work: string;
let caDirectory: string;
let metadata: FakeMetadataServer;
let tenant: SandboxTenant;
let withDeadLetter: FreshSubscription;
let plain: FreshSubscription;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-probe-'));
  caDirectory = path.join(work, 'ca');
  await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=certprov probe test CA' });
  metadata = await FakeMetadataServer.start({ accessToken: TOKEN, serviceAccountEmail: SERVICE_ACCOUNT });
  tenant = await SandboxTenant.start({ expectedToken: TOKEN });
  [withDeadLetter, plain] = await Promise.all([
    freshSubscription('probe-dl', { deadLetterMaxDeliveryAttempts: 7 }),
    freshSubscription('probe-plain'),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([withDeadLetter?.cleanup(), plain?.cleanup(), tenant?.close(), metadata?.close()]);
  await rm(work, { recursive: true, force: true });
});

async function configFile(
  name: string,
  overrides: { subscription: string; caDirectory?: string; store?: Record<string, unknown> },
): Promise<string> {
  const file = path.join(work, `${name}.yaml`);
  const config = {
    instanceId: 'certprov-probe-test',
    chrome: { endpoint: tenant.endpoint, credentials: 'google-default' },
    pubsub: { subscription: overrides.subscription },
    store: overrides.store ?? { type: 'memory' },
    caConnections: { default_ca_config: { type: 'local', directory: overrides.caDirectory ?? caDirectory } },
    profiles: { device_profile: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
  };
  await writeFile(file, JSON.stringify(config));
  return file;
}

/** Runs the CLI with Application Default Credentials pointed at the fake metadata server only. */
async function certprov(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GCE_METADATA_HOST: metadata.host,
    CLOUDSDK_CONFIG: work,
    PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
    FIRESTORE_EMULATOR_HOST: inject('firestoreEmulatorHost'),
    NO_PROXY: '127.0.0.1,localhost',
  };
  delete env.GOOGLE_APPLICATION_CREDENTIALS;
  delete env.METADATA_SERVER_DETECTION;
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(REPO, 'src/main.ts'), ...args], {
      cwd: REPO,
      env,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function row(stdout: string, component: string, check: string): string {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${component} `) && l.includes(check));
  if (line === undefined) throw new Error(`no row ${component} / ${check} in:\n${stdout}`);
  return line;
}

function requestsSoFar(): Record<string, number> {
  return { ...tenant.requests };
}

describe('certprov check-config --probe', () => {
  it('without --probe contacts nothing', async () => {
    const before = requestsSoFar();
    const tokenRequests = metadata.tokenRequests().length;
    const result = await certprov([
      'check-config',
      '--config',
      await configFile('static', { subscription: withDeadLetter.subscriptionName }),
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('is valid');
    expect(result.stdout).not.toContain('Probes');
    expect(requestsSoFar()).toEqual(before);
    expect(metadata.tokenRequests().length).toBe(tokenRequests);
  });

  it('reports every check passing, with the identity and the subscription settings, and changes nothing', async () => {
    const before = requestsSoFar();
    const result = await certprov([
      'check-config',
      '--probe',
      '--config',
      await configFile('good', { subscription: withDeadLetter.subscriptionName }),
    ]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(row(result.stdout, 'google', 'access token')).toMatch(
      /\bok\s+token obtained for certprov@probe-project\.iam\.gserviceaccount\.com/,
    );
    expect(row(result.stdout, 'chrome', 'credentials accepted')).toMatch(/\bok\s+.*NOT_FOUND for a probe id/);
    expect(row(result.stdout, 'pubsub', 'subscription exists')).toMatch(
      new RegExp(`\\bok\\s+${withDeadLetter.subscriptionName}`),
    );
    expect(row(result.stdout, 'pubsub', 'dead-letter policy')).toMatch(
      /\bok\s+to projects\/certprov-test\/topics\/.*-dl after 7 delivery attempts/,
    );
    expect(row(result.stdout, 'pubsub', 'exactly-once delivery')).toMatch(/\bok\s+disabled/);
    expect(row(result.stdout, 'ca:default_ca_config', 'local')).toMatch(/\bok\s+local CA in /);
    expect(row(result.stdout, 'store', 'process store')).toMatch(/\bskip\s+memory store/);
    expect(result.stdout).toContain('all checks passed');
    // Read-only: one GET of a process that does not exist, with the token; nothing claimed, signed, uploaded.
    const after = requestsSoFar();
    for (const method of SANDBOX_METHODS)
      expect((after[method] ?? 0) - (before[method] ?? 0), method).toBe(method === 'get' ? 1 : 0);
    expect(result.stdout + result.stderr).not.toContain(TOKEN);
  });

  it('reads from Firestore when it is the store, writing nothing', async () => {
    const collection = uniqueCollection('probe');
    const result = await certprov([
      'check-config',
      '--probe',
      '--config',
      await configFile('firestore', {
        subscription: withDeadLetter.subscriptionName,
        store: { type: 'firestore', projectId: FIRESTORE_TEST_PROJECT, collection },
      }),
    ]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(row(result.stdout, 'store', 'process store')).toMatch(
      new RegExp(`\\bok\\s+firestore ${FIRESTORE_TEST_PROJECT}/\\(default\\)/${collection}: readable`),
    );
    const firestore = rawFirestore();
    try {
      expect((await firestore.collection(collection).get()).size).toBe(0);
    } finally {
      await firestore.terminate();
    }
  });

  it('a subscription without a dead-letter policy is a warning, not a failure', async () => {
    const result = await certprov([
      'check-config',
      '--probe',
      '--config',
      await configFile('nodl', { subscription: plain.subscriptionName }),
    ]);
    expect(result.code).toBe(0);
    expect(row(result.stdout, 'pubsub', 'dead-letter policy')).toMatch(/\bwarn\s+none/);
    expect(result.stdout).toContain('hint: run `certprov setup-pubsub`');
    expect(result.stdout).toContain('all checks passed (1 warning)');
  });

  // A CA directory that does not exist never reaches the probe: check-config refuses it first, with exit 2 (as run
  // does; test/unit/cli/startup-failures.test.ts). The probe reports what only the remote services can tell.
  it('fails with a hint for each problem: refused credentials, missing subscription', async () => {
    tenant.forbidden = true;
    try {
      const result = await certprov([
        'check-config',
        '--probe',
        '--config',
        await configFile('bad', { subscription: 'projects/certprov-test/subscriptions/no-such-subscription' }),
      ]);
      expect(result.code).toBe(1);
      expect(row(result.stdout, 'google', 'access token')).toMatch(/\bok\b/);
      expect(row(result.stdout, 'chrome', 'credentials accepted')).toMatch(/\bFAIL\b.*403/);
      expect(row(result.stdout, 'pubsub', 'subscription exists')).toMatch(
        /\bFAIL\s+projects\/certprov-test\/subscriptions\/no-such-subscription does not exist/,
      );
      expect(row(result.stdout, 'ca:default_ca_config', 'local')).toMatch(/\bok\b/);
      expect(result.stdout).toContain('hint: create it with `certprov setup-pubsub`');
      expect(result.stdout).toMatch(/hint: grant the adapter's service account access to the Chrome Management API/);
      expect(result.stdout).toContain('2 checks failed');
    } finally {
      tenant.forbidden = false;
    }
  });

  it('refuses a missing CA directory before probing, naming the field (exit 2)', async () => {
    const result = await certprov([
      'check-config',
      '--probe',
      '--config',
      await configFile('noca', {
        subscription: withDeadLetter.subscriptionName,
        caDirectory: path.join(work, 'no-ca-here'),
      }),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr + result.stdout).toMatch(/caConnections\.default_ca_config/);
  });

  it('fails when no token can be obtained (Workload Identity not bound)', async () => {
    metadata.tokenFailureStatus = 404;
    try {
      const result = await certprov([
        'check-config',
        '--probe',
        '--config',
        await configFile('notoken', { subscription: withDeadLetter.subscriptionName }),
      ]);
      expect(result.code).toBe(1);
      expect(row(result.stdout, 'google', 'access token')).toMatch(/\bFAIL\s+no token/);
      expect(result.stdout).toContain(
        'hint: no Application Default Credentials: on GKE bind the Kubernetes service account',
      );
      expect(row(result.stdout, 'chrome', 'credentials accepted')).toMatch(/\bFAIL\b/);
    } finally {
      metadata.tokenFailureStatus = undefined;
    }
  });
});
