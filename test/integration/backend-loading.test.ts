/**
 * A backend's SDK is loaded only when a connection uses it (issue 15 item 6): `certprov run` as an OS process, with a
 * local CA, until it is ready (subscribed to the Pub/Sub emulator); a module hook in that process
 * (test/support/module-trace.ts) lists every module it loaded. The Azure SDKs, the CAS, KMS and Cloud Storage clients
 * must not be among them, and the Firestore client only with the Firestore store. The Pub/Sub client, which `run`
 * always needs, must be: the hook sees what the process loads.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { initLocalCa } from '../../src/ca/local/init.ts';
import { SandboxTenant } from '../../src/sandbox/index.ts';
import { baseRigConfig } from '../support/adapter-rig.ts';
import { MAIN, ROOT } from '../support/certprov-cli.ts';
import { tracedPackages } from '../support/module-trace.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';

const MODULE_TRACE = path.join(ROOT, 'test/support/module-trace.ts');

/** SDKs of backends and features the configurations below do not use. */
const UNUSED_SDKS = [
  '@azure/identity',
  '@azure/keyvault-keys',
  '@azure/keyvault-certificates',
  '@azure/core-rest-pipeline',
  '@google-cloud/security-private-ca',
  '@google-cloud/kms',
  '@google-cloud/storage',
];

let work: string;
let tenant: SandboxTenant;
let subscription: FreshSubscription;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-backend-loading-'));
  await initLocalCa({ directory: path.join(work, 'ca'), keyType: 'ec' });
  tenant = await SandboxTenant.start();
  subscription = await freshSubscription('backend-loading');
});
afterAll(async () => {
  await Promise.allSettled([tenant.close(), subscription.cleanup()]);
  await rm(work, { recursive: true, force: true });
});

/** Starts `certprov run` with `store`, waits until it is ready, stops it, and returns the packages it had loaded. */
async function packagesLoadedByRun(store: Record<string, unknown>): Promise<Set<string>> {
  const label = String(store.type);
  const trace = path.join(work, `${label}.trace`);
  const config = path.join(work, `${label}.json`);
  const raw = baseRigConfig(tenant.endpoint, path.join(work, 'ca'), subscription.subscriptionName);
  await writeFile(config, JSON.stringify({ ...raw, store, log: { level: 'info' } }));
  const child = spawn(process.execPath, ['--import', MODULE_TRACE, MAIN, 'run', '--config', config], {
    cwd: ROOT,
    env: {
      ...process.env,
      PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
      FIRESTORE_EMULATOR_HOST: inject('firestoreEmulatorHost'),
      CERTPROV_MODULE_TRACE: trace,
    },
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor(() => output.includes('"adapter started"') || child.exitCode !== null, 30_000, 'adapter started');
    expect(output).toContain('"adapter started"');
    // Ready: what a connection loads on creation is loaded by now.
    return tracedPackages(await readFile(trace, 'utf8'));
  } finally {
    child.kill('SIGTERM');
    expect(await exited, output).toBe(0);
  }
}

describe('certprov run with the local CA', () => {
  it('on the sqlite store loads Pub/Sub and no Azure, CAS, KMS, Cloud Storage or Firestore SDK', async () => {
    const packages = await packagesLoadedByRun({ type: 'sqlite', path: path.join(work, 'state.db') });
    expect(packages).toContain('@google-cloud/pubsub');
    for (const sdk of [...UNUSED_SDKS, '@google-cloud/firestore']) expect(packages, sdk).not.toContain(sdk);
    expect([...packages].filter((p) => p.startsWith('@azure/'))).toEqual([]);
  });

  it('on the Firestore store loads the Firestore client and still no Azure, CAS, KMS or Cloud Storage SDK', async () => {
    const packages = await packagesLoadedByRun({
      type: 'firestore',
      projectId: 'certprov-test',
      collection: `backend-loading-${Date.now().toString(36)}`,
    });
    expect(packages).toContain('@google-cloud/firestore');
    for (const sdk of UNUSED_SDKS) expect(packages, sdk).not.toContain(sdk);
  });
});
