/**
 * The Entra credential paths of the Key Vault backend, end to end in a child process (`node src/main.ts kv-ca
 * status`), as an operator runs them:
 *
 * - `client-secret` with the secret read from a file;
 * - `gke-federation`: google-auth-library gets a Google ID token for api://AzureADTokenExchange from the metadata
 *   server (loopback fake, GCE_METADATA_HOST), ClientAssertionCredential presents it to Entra, which checks it
 *   against the app's federated credential (issuer https://accounts.google.com, subject = the service account's
 *   numeric id) — no secret anywhere;
 * - `default` (DefaultAzureCredential) through its environment path.
 *
 * The Entra fake serves TLS with a CA made by openssl (MSAL refuses http authorities); the child trusts it through
 * NODE_EXTRA_CA_CERTS, read at process start (DESIGN.md §7). The fake vault accepts only tokens that fake issued.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEntra } from '../support/fake-entra.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { FAKE_KEY_VAULT_TOKEN, FakeKeyVault } from '../fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa, type IssuingCaFixture } from '../fakes/key-vault/issuing-ca-fixture.ts';
import { testKeyPool } from '../support/keys.ts';

const TENANT = '7d3c0000-0000-4000-8000-00000000a2e1';
const SECRET_APP = '0b5e0000-0000-4000-8000-000000000001';
const FEDERATED_APP = '0b5e0000-0000-4000-8000-000000000002';
const MISMATCHED_APP = '0b5e0000-0000-4000-8000-000000000003';
const CLIENT_SECRET = 'not-a-real-secret~value.1234';

let metadata: FakeMetadataServer;
let entra: FakeEntra;
let vault: FakeKeyVault;
let fixture: IssuingCaFixture;
let dir: string;
let emptyGcloud: string;
const vaultTokens: string[] = [];

beforeAll(async () => {
  const pool = await testKeyPool();
  metadata = await FakeMetadataServer.start({
    idTokenKey: pool.next('rsa-2048').privateKey,
    serviceAccountUniqueId: '104857600000000000042',
  });
  entra = await FakeEntra.start([
    { tenantId: TENANT, clientId: SECRET_APP, clientSecret: CLIENT_SECRET },
    {
      tenantId: TENANT,
      clientId: FEDERATED_APP,
      federated: [
        {
          issuer: 'https://accounts.google.com',
          subject: metadata.serviceAccountUniqueId,
          issuerKey: metadata.idTokenPublicKey,
        },
      ],
    },
    {
      tenantId: TENANT,
      clientId: MISMATCHED_APP,
      federated: [
        {
          issuer: 'https://accounts.google.com',
          subject: '999999999999999999999',
          issuerKey: metadata.idTokenPublicKey,
        },
      ],
    },
  ]);
  vault = await FakeKeyVault.start({
    tenantId: TENANT,
    // The fixture enrols the CA in-process with the fake's own token; the child processes must use Entra's.
    acceptToken: (token) => {
      vaultTokens.push(token);
      return token === FAKE_KEY_VAULT_TOKEN || entra.issued(token);
    },
  });
  fixture = await createIssuingCa(vault, { certificateName: 'federated-ca' });
  dir = await mkdtemp(path.join(tmpdir(), 'certprov-kv-auth-'));
  emptyGcloud = await mkdtemp(path.join(tmpdir(), 'certprov-gcloud-'));
  await writeFile(path.join(dir, 'client-secret'), `${CLIENT_SECRET}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await fixture?.close();
  await vault?.close();
  await entra?.close();
  await metadata?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(emptyGcloud, { recursive: true, force: true });
});

interface Child {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node src/main.ts kv-ca status` with a config whose credential is `credential`, in a clean environment. */
async function kvCaStatus(credential: Record<string, unknown>, extraEnv: Record<string, string> = {}): Promise<Child> {
  const config = path.join(dir, `config-${Math.random().toString(16).slice(2)}.yaml`);
  await writeFile(
    config,
    JSON.stringify({
      caConnections: { kv_ca: { ...fixture.connection(), certificateVersion: undefined, credential } },
    }),
  );
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    NODE_EXTRA_CA_CERTS: entra.caFile,
    GCE_METADATA_HOST: metadata.host,
    CLOUDSDK_CONFIG: emptyGcloud,
    NO_PROXY: '127.0.0.1,localhost',
    ...extraEnv,
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['src/main.ts', 'kv-ca', 'status', '--config', config, '--json'],
      { cwd: path.resolve(import.meta.dirname, '../..'), env, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr }),
    );
  });
}

const authority = () => ({ authorityHost: entra.authorityHost, disableInstanceDiscovery: true });

describe('Key Vault credentials in a child process', () => {
  it('client-secret: the secret comes from a file, Entra issues the token, the vault accepts it', async () => {
    const before = entra.requests.length;
    const child = await kvCaStatus({
      type: 'client-secret',
      tenantId: TENANT,
      clientId: SECRET_APP,
      clientSecret: { file: 'client-secret' },
      ...authority(),
    });
    expect(child.code, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toMatchObject({ certificateName: 'federated-ca', status: 'completed' });
    const requests = entra.requests.slice(before);
    expect(requests).toEqual([
      {
        tenantId: TENANT,
        clientId: SECRET_APP,
        scope: 'https://vault.azure.net/.default',
        method: 'secret',
        status: 200,
      },
    ]);
    expect(vaultTokens.some((t) => entra.issued(t))).toBe(true);
    expect(child.stdout + child.stderr).not.toContain(CLIENT_SECRET);
  });

  it('gke-federation: a Google ID token from the metadata server is the client assertion; no secret exists', async () => {
    const idBefore = metadata.idTokenRequests().length;
    const before = entra.requests.length;
    const child = await kvCaStatus({
      type: 'gke-federation',
      tenantId: TENANT,
      clientId: FEDERATED_APP,
      ...authority(),
    });
    expect(child.code, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toMatchObject({ status: 'completed' });
    const idRequests = metadata.idTokenRequests().slice(idBefore);
    expect(idRequests.length).toBeGreaterThanOrEqual(1);
    expect(idRequests[0]?.query.get('audience')).toBe('api://AzureADTokenExchange');
    expect(idRequests[0]?.flavor).toBe('Google');
    expect(entra.requests.slice(before)).toEqual([
      {
        tenantId: TENANT,
        clientId: FEDERATED_APP,
        scope: 'https://vault.azure.net/.default',
        method: 'assertion',
        status: 200,
      },
    ]);
  });

  it('default: DefaultAzureCredential takes the environment path (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)', async () => {
    const before = entra.requests.length;
    const child = await kvCaStatus(
      { type: 'default', ...authority() },
      { AZURE_TENANT_ID: TENANT, AZURE_CLIENT_ID: SECRET_APP, AZURE_CLIENT_SECRET: CLIENT_SECRET },
    );
    expect(child.code, child.stderr).toBe(0);
    expect(entra.requests.slice(before).map((r) => [r.clientId, r.method, r.status])).toEqual([
      [SECRET_APP, 'secret', 200],
    ]);
  });

  it("a wrong client secret: exit 1 with Entra's reason and what to check, and the secret never printed", async () => {
    await writeFile(path.join(dir, 'wrong-secret'), 'wrong-secret-value-9876');
    const child = await kvCaStatus({
      type: 'client-secret',
      tenantId: TENANT,
      clientId: SECRET_APP,
      clientSecret: { file: 'wrong-secret' },
      ...authority(),
    });
    expect(child.code).toBe(1);
    expect(child.stderr).toContain('AADSTS7000215');
    expect(child.stderr).toContain('what to do: check credential');
    expect(child.stdout + child.stderr).not.toContain('wrong-secret-value-9876');
  });

  it('federation without a matching federated credential: exit 1 naming AADSTS70021', async () => {
    const child = await kvCaStatus({
      type: 'gke-federation',
      tenantId: TENANT,
      clientId: MISMATCHED_APP,
      ...authority(),
    });
    expect(child.code).toBe(1);
    expect(child.stderr).toContain('AADSTS70021');
    expect(child.stderr).toContain("Assertion Subject: '104857600000000000042'");
  });

  it('federation when the pod has no Google identity: exit 1 saying to set up Workload Identity', async () => {
    metadata.tokenFailureStatus = 404;
    try {
      const child = await kvCaStatus({
        type: 'gke-federation',
        tenantId: TENANT,
        clientId: FEDERATED_APP,
        ...authority(),
      });
      expect(child.code).toBe(1);
      expect(child.stderr).toContain('could not get a Google ID token');
      expect(child.stderr).toContain('Workload Identity');
    } finally {
      metadata.tokenFailureStatus = undefined;
    }
  });
});
