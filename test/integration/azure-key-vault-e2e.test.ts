/**
 * The Key Vault CA end to end: Google's Pub/Sub emulator → the adapter → sandbox tenant (simulated ChromeOS clients
 * with real keys) → the Key Vault backend → the fake vault (official SDKs) → upload. Every certificate is judged by
 * openssl against the merged chain: the parent root as trust anchor, the Key Vault CA certificate as intermediate.
 *
 * 1. In-process (the same Adapter `run` uses): one Key Vault sign per certificate with the pinned key; 429s at a
 *    steady rate are absorbed; a missing keys/sign permission is a deployment fault (no setFailure, not ready) that
 *    resolves itself once the permission is granted; rotation while running.
 * 2. `certprov run` in a child process with secretless GKE → Azure federation: metadata server → Google ID token →
 *    Entra (TLS fake, NODE_EXTRA_CA_CERTS) → vault token → signatures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KeyPool } from '../../src/sandbox/index.ts';
import { SandboxTenant } from '../../src/sandbox/index.ts';
import { FAKE_KEY_VAULT_TOKEN, FakeKeyVault } from '../fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa, type IssuingCaFixture } from '../fakes/key-vault/issuing-ca-fixture.ts';
import { AdapterRig, rigConfig } from '../support/adapter-rig.ts';
import { FakeEntra } from '../support/fake-entra.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { testKeyPool } from '../support/keys.ts';
import { spkiDerOfCertificate, verifyCertificate } from '../support/openssl.ts';
import { freshSubscription, waitFor, type FreshSubscription } from '../support/pubsub.ts';

let pool: KeyPool;

beforeAll(async () => {
  pool = await testKeyPool();
});

async function expectVerified(
  tenant: SandboxTenant,
  id: string,
  fixture: { parent: { rootPem: string } },
  caPem: string,
): Promise<string> {
  const resource = tenant.process(id);
  expect(resource?.failureMessage, `process ${id} failed`).toBeUndefined();
  const pem = resource?.issuedCertificate as string;
  expect(pem, `process ${id} has no certificate`).toBeDefined();
  const verdict = await verifyCertificate(pem, fixture.parent.rootPem, { untrusted: [caPem], purpose: 'sslclient' });
  expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);
  const spki = Buffer.from(resource?.subjectPublicKeyInfo as string, 'base64');
  expect((await spkiDerOfCertificate(pem)).equals(spki)).toBe(true);
  return pem;
}

describe('in-process adapter with the Pub/Sub emulator', () => {
  let subscription: FreshSubscription;
  let vault: FakeKeyVault;
  let fixture: IssuingCaFixture;
  let rig: AdapterRig;

  beforeAll(async () => {
    vault = await FakeKeyVault.start();
    fixture = await createIssuingCa(vault, { certificateName: 'e2e-issuing-ca' });
    subscription = await freshSubscription('kv-e2e', { retryBackoffSeconds: { min: 0, max: 1 } });
    rig = await AdapterRig.start({
      pubsub: {
        topicPublish: (data, attributes) => subscription.publish(data, attributes),
        subscription: subscription.subscriptionName,
        clientOptions: subscription.clientOptions,
      },
      config: { caConnections: { kv_ca: fixture.connection() } },
    });
  });
  afterAll(async () => {
    await rig?.stop();
    await subscription?.cleanup();
    await fixture?.close();
    await vault?.close();
  });

  const create = (count: number) =>
    rig.tenant.createProcesses(count, {
      pool,
      ecShare: 0.5,
      userShare: 0.5,
      affiliatedShare: 0.5,
      caConnection: 'kv_ca',
    });

  it('issues every kind of device and user with one Key Vault sign per certificate, by the pinned key', async () => {
    const ids = create(8);
    const signsBefore = vault.signOperations.length;
    await Promise.all(ids.map((id) => rig.notify(id)));
    await rig.tenant.waitUntilFinished(ids, 30_000);
    for (const id of ids) {
      await expectVerified(rig.tenant, id, fixture, fixture.caPem);
      expect(rig.tenant.counters(id).signDataCalls).toBe(1);
      expect(rig.tenant.counters(id).uploads).toBe(1);
    }
    const signs = vault.signOperations.slice(signsBefore);
    expect(signs).toHaveLength(ids.length);
    expect(new Set(signs.map((s) => s.kid))).toEqual(new Set([`${vault.url}/keys/e2e-issuing-ca/${fixture.version}`]));
    expect(
      await rig.counter('certprov_ca_certificates_issued_total', { backend: 'azure-key-vault' }),
    ).toBeGreaterThanOrEqual(ids.length);
  });

  it('absorbs 429s at a steady rate (every 3rd sign) without failing a device', async () => {
    vault.throttle({ every: 3, match: /\/sign$/ });
    try {
      const ids = create(6);
      const before = vault.requests.filter((r) => r.status === 429).length;
      await Promise.all(ids.map((id) => rig.notify(id)));
      await rig.tenant.waitUntilFinished(ids, 30_000);
      for (const id of ids) await expectVerified(rig.tenant, id, fixture, fixture.caPem);
      expect(vault.requests.filter((r) => r.status === 429).length - before).toBeGreaterThan(0);
      expect(await rig.counter('certprov_retries_total', { where: 'keyvault' })).toBeGreaterThan(0);
    } finally {
      vault.throttle(undefined);
    }
  });

  it('a missing keys/sign permission: no setFailure, the replica reports not ready; granted again, the device gets its certificate', async () => {
    vault.permissions.delete('keys/sign');
    const [id] = create(1) as [string];
    try {
      await rig.notify(id);
      await waitFor(
        () => rig.adapter.health.activeFaults().some((f) => f.component === 'keyvault'),
        20_000,
        'a keyvault deployment fault',
      );
      const fault = rig.adapter.health.activeFaults().find((f) => f.component === 'keyvault');
      expect(fault?.message).toContain('keys/sign');
      expect(rig.adapter.health.isReady).toBe(false);
      expect(rig.tenant.process(id)?.failureMessage).toBeUndefined();
      expect(rig.tenant.counters(id).setFailures).toBe(0);
    } finally {
      vault.permissions.add('keys/sign');
    }
    await rig.tenant.waitUntilFinished([id], 30_000);
    await expectVerified(rig.tenant, id, fixture, fixture.caPem);
    await waitFor(
      () => !rig.adapter.health.activeFaults().some((f) => f.component === 'keyvault'),
      5_000,
      'the fault to clear',
    );
  });

  it('a rotation in the vault does not move the running adapter off its pinned version', async () => {
    const next = await fixture.rotate();
    const ids = create(2);
    const signsBefore = vault.signOperations.length;
    await Promise.all(ids.map((id) => rig.notify(id)));
    await rig.tenant.waitUntilFinished(ids, 30_000);
    for (const id of ids) await expectVerified(rig.tenant, id, fixture, fixture.caPem);
    expect(vault.signOperations.slice(signsBefore).every((s) => s.kid.endsWith(`/${fixture.version}`))).toBe(true);
    expect(next.version).not.toBe(fixture.version);
  });
});

describe('`certprov run` in a child process, federated from "GKE" to Azure without secrets', () => {
  const TENANT = '7d3c0000-0000-4000-8000-00000000e2e0';
  const APP = '0b5e0000-0000-4000-8000-0000000000e2';
  let metadata: FakeMetadataServer;
  let entra: FakeEntra;
  let vault: FakeKeyVault;
  let fixture: IssuingCaFixture;
  let tenant: SandboxTenant;
  let subscription: FreshSubscription;
  let dir: string;
  let child: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    metadata = await FakeMetadataServer.start({ idTokenKey: pool.next('rsa-2048').privateKey });
    entra = await FakeEntra.start([
      {
        tenantId: TENANT,
        clientId: APP,
        federated: [
          {
            issuer: 'https://accounts.google.com',
            subject: metadata.serviceAccountUniqueId,
            issuerKey: metadata.idTokenPublicKey,
          },
        ],
      },
    ]);
    const caKey = pool.next('rsa-2048').privateKey;
    vault = await FakeKeyVault.start({
      tenantId: TENANT,
      acceptToken: (t) => t === FAKE_KEY_VAULT_TOKEN || entra.issued(t),
      // The RSA CA key from the run's pool: generating RSA keys per test is too slow.
      keyFactory: () => caKey,
    });
    fixture = await createIssuingCa(vault, { certificateName: 'gke-issuing-ca', key: { type: 'rsa', rsaBits: 2048 } });
    tenant = await SandboxTenant.start();
    subscription = await freshSubscription('kv-run-child', { retryBackoffSeconds: { min: 0, max: 1 } });
    dir = await mkdtemp(path.join(tmpdir(), 'certprov-kv-run-'));
  });
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    await subscription?.cleanup();
    await tenant?.close();
    await fixture?.close();
    await vault?.close();
    await entra?.close();
    await metadata?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('provisions devices: ID token → Entra → vault token → one signature each; SIGTERM drains and exits 0', async () => {
    const config = path.join(dir, 'certprov.yaml');
    const { credential: _unused, ...connection } = fixture.connection({ rsaSignatureAlgorithm: 'PS256' });
    await writeFile(
      config,
      JSON.stringify({
        ...rigConfig({
          endpoint: tenant.endpoint,
          subscription: subscription.subscriptionName,
          caConnections: {
            kv_ca: {
              ...connection,
              credential: {
                type: 'gke-federation',
                tenantId: TENANT,
                clientId: APP,
                authorityHost: entra.authorityHost,
                disableInstanceDiscovery: true,
              },
            },
          },
        }),
        instanceId: 'certprov-kv-child',
        log: { level: 'info' },
      }),
    );
    // An empty gcloud configuration directory: no developer credentials leak into the child.
    const emptyGcloud = path.join(dir, 'gcloud');
    child = spawn(process.execPath, ['src/main.ts', 'run', '--config', config], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        // No store configured: `run` keeps its sqlite file here, not in the repository.
        CERTPROV_DATA_DIR: dir,
        NODE_EXTRA_CA_CERTS: entra.caFile,
        GCE_METADATA_HOST: metadata.host,
        CLOUDSDK_CONFIG: emptyGcloud,
        PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
        NO_PROXY: '127.0.0.1,localhost',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child?.on('exit', (code) => resolve(code)));
    await waitFor(() => output.includes('adapter started') || child?.exitCode !== null, 30_000, 'the adapter to start');
    expect(output).toContain('adapter started');

    const ids = tenant.createProcesses(4, { pool, ecShare: 0.5, userShare: 0.5, caConnection: 'kv_ca' });
    const signsBefore = vault.signOperations.length;
    await Promise.all(
      ids.map((id) =>
        tenant.notify(id, { encoding: 'json-camel' }, (data, attributes) =>
          subscription.publish(data, attributes).then(() => undefined),
        ),
      ),
    );
    await tenant.waitUntilFinished(ids, 60_000);
    for (const id of ids) await expectVerified(tenant, id, fixture, fixture.caPem);

    const signs = vault.signOperations.slice(signsBefore);
    expect(signs).toHaveLength(ids.length);
    expect(signs.every((s) => s.alg === 'PS256' && s.kid.endsWith(`/${fixture.version}`))).toBe(true);
    expect(metadata.idTokenRequests().length).toBeGreaterThanOrEqual(1);
    expect(entra.requests.filter((r) => r.method === 'assertion' && r.status === 200).length).toBeGreaterThanOrEqual(1);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('Key Vault CA ready');
  });
});
