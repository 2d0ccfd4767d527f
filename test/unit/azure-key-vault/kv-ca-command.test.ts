/**
 * `certprov kv-ca` against the fake vault, one test per scenario of the seed's pending-request lifecycle: create
 * (CSR for the parent CA), status in every state, merge, cancel, delete — and for each refusal Key Vault can give
 * (409, 403, 400, 404, request_id mismatch), a message that says what to do next.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { kvCaCommand } from '../../../src/cli/kv-ca.ts';
import { UsageError } from '../../../src/cli/command.ts';
import { ConfigError } from '../../../src/errors.ts';
import { FAKE_KEY_VAULT_TOKEN, FakeKeyVault } from '../../fakes/key-vault/fake-key-vault.ts';
import { OpensslParentCa } from '../../fakes/key-vault/issuing-ca-fixture.ts';
import { testKeyPool } from '../../support/keys.ts';
import { csrText, verifyCsr } from '../../support/openssl.ts';

let vault: FakeKeyVault;
let dir: string;
let parent: OpensslParentCa;
let configFile: string;
let rsaKey: KeyObject;
let out: string[];
let err: string[];

beforeAll(async () => {
  rsaKey = (await testKeyPool()).next('rsa-2048').privateKey;
  vault = await FakeKeyVault.start({
    keyFactory: (spec) =>
      spec.kty.startsWith('RSA') ? rsaKey : generateKeyPairSync('ec', { namedCurve: spec.crv ?? 'P-256' }).privateKey,
  });
  vault.addIssuer('mydigicert', 'DigiCert');
  dir = await mkdtemp(path.join(tmpdir(), 'certprov-kv-ca-'));
  parent = await OpensslParentCa.create(dir);
  await writeFile(path.join(dir, 'token'), FAKE_KEY_VAULT_TOKEN);
  configFile = path.join(dir, 'certprov.yaml');
  await writeFile(
    configFile,
    JSON.stringify({
      caConnections: {
        kv_ca: {
          type: 'azure-key-vault',
          vaultUrl: vault.url,
          certificateName: 'device-issuing-ca',
          allowInsecureConnection: true,
          disableChallengeResourceVerification: true,
          credential: { type: 'static-token', token: { file: 'token' } },
          retry: { initialDelay: '10ms', maxDelay: '40ms' },
        },
        trial: { type: 'local', directory: 'ca' },
      },
      profiles: {},
    }),
  );
});
afterAll(async () => {
  await vault?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void out.push(args.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void err.push(args.join(' ')));
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs `certprov kv-ca …` for a certificate name; returns the exit code. */
function kvCa(sub: string, name: string, ...args: string[]): Promise<number> {
  return kvCaCommand.run([sub, '--config', configFile, '--certificate-name', name, ...args]);
}

async function json<T>(sub: string, name: string, ...args: string[]): Promise<T> {
  const before = out.length;
  const code = await kvCa(sub, name, '--json', ...args);
  expect(code, err.join('\n')).toBe(0);
  return JSON.parse(out.slice(before).join('\n')) as T;
}

interface Pending {
  requestId: string;
  status: string;
  statusDetails?: string;
  issuerName?: string;
  cancellationRequested: boolean;
  error?: { code: string; message: string };
  target?: string;
  csrPem?: string;
}

const stderr = () => err.join('\n');

/** An issuer-backed pending request made by someone else (the portal, another tool). */
async function issuerBackedRequest(name: string): Promise<void> {
  const response = await fetch(`${vault.url}/certificates/${name}/create?api-version=7.5`, {
    method: 'POST',
    headers: { authorization: `Bearer ${FAKE_KEY_VAULT_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      policy: {
        x509_props: { subject: `CN=${name}` },
        key_props: { kty: 'EC' },
        issuer: { name: 'mydigicert', cty: 'OV-SSL' },
      },
    }),
  });
  expect(response.status).toBe(202);
}

async function chainFor(csrPem: string, options: { ca?: boolean; extensions?: string } = {}): Promise<string> {
  const file = path.join(dir, `chain-${Math.random().toString(16).slice(2)}.pem`);
  await writeFile(file, (await parent.sign(csrPem, options)) + parent.rootPem);
  return file;
}

describe('create', () => {
  it('starts a manual request (issuer Unknown, non-exportable EC key) and prints a CSR openssl verifies', async () => {
    const csrFile = path.join(dir, 'create.csr');
    expect(
      await kvCa('create', 'created', '--subject', 'CN=Example Device Issuing CA,O=Example', '--csr-out', csrFile),
    ).toBe(0);
    const text = out.join('\n');
    expect(text).toContain('status           inProgress');
    expect(text).toContain('-----BEGIN CERTIFICATE REQUEST-----');
    expect(text).toContain('certprov kv-ca merge');
    const csr = await readFile(csrFile, 'utf8');
    expect(text).toContain(csr.trim());
    expect((await verifyCsr(csr)).ok).toBe(true);
    const dump = await csrText(csr);
    expect(dump).toContain('CN=Example Device Issuing CA');
    expect(dump).toContain('Certificate Sign, CRL Sign');
    expect(dump).toMatch(/ASN1 OID: prime256v1/);
    const create = vault.requests.find((r) => r.path === '/certificates/created/create' && r.authorized);
    expect(create?.status).toBe(202);
  });

  it('makes an HSM-backed RSA key with --key rsa --hsm', async () => {
    const pending = await json<Pending>(
      'create',
      'hsm-rsa',
      '--subject',
      'CN=HSM CA',
      '--key',
      'rsa',
      '--rsa-bits',
      '2048',
      '--hsm',
    );
    const key = (await (
      await fetch(`${vault.url}/keys/hsm-rsa?api-version=7.5`, {
        headers: { authorization: `Bearer ${FAKE_KEY_VAULT_TOKEN}` },
      })
    ).json()) as { key: { kty: string } };
    expect(key.key.kty).toBe('RSA-HSM');
    expect(await csrText(pending.csrPem ?? '')).toContain('Public-Key: (2048 bit)');
  });

  it('409 while our own request is inProgress: says to merge it or delete it', async () => {
    await json('create', 'conflict', '--subject', 'CN=Conflict');
    expect(await kvCa('create', 'conflict', '--subject', 'CN=Conflict')).toBe(1);
    expect(stderr()).toContain('still inProgress');
    expect(stderr()).toContain('409');
    expect(stderr()).toContain('kv-ca merge --chain FILE');
    expect(stderr()).toContain('kv-ca delete-pending');
  });

  it('409 while an issuer-backed request is inProgress: says to wait for it or delete it', async () => {
    await issuerBackedRequest('ordered-elsewhere');
    expect(await kvCa('create', 'ordered-elsewhere', '--subject', 'CN=Mine')).toBe(1);
    expect(stderr()).toContain('issuer mydigicert');
    expect(stderr()).toMatch(/wait until .*completed, failed or cancelled/);
    expect(stderr()).toContain('does not necessarily cancel the order');
  });

  it('a missing certificates/create permission names it and the role', async () => {
    vault.permissions.delete('certificates/create');
    try {
      expect(await kvCa('create', 'no-permission', '--subject', 'CN=x')).toBe(1);
      expect(stderr()).toContain('certificates/create');
      expect(stderr()).toContain('Key Vault Certificates Officer');
    } finally {
      vault.permissions.add('certificates/create');
    }
  });
});

describe('the new key must be able to sign', () => {
  it('create reads the new key_ops and refuses a key without sign, with the fix; status prints the key_ops', async () => {
    vault.certificateKeyOps = ['verify'];
    try {
      expect(await kvCa('create', 'no-sign', '--subject', 'CN=No Sign')).toBe(1);
    } finally {
      vault.certificateKeyOps = undefined;
    }
    expect(stderr()).toMatch(/key_ops \[verify\] without sign/);
    expect(stderr()).toMatch(/--ops sign verify/);
    expect(stderr()).toContain('kv-ca delete-pending');
    out.length = 0;
    expect(await kvCa('status', 'no-sign')).toBe(0);
    expect(out.join('\n')).toMatch(/key_ops {10}verify {2}← cannot sign/);
  });

  it('a key that can sign: create succeeds and status prints its key_ops', async () => {
    expect(await kvCa('create', 'can-sign', '--subject', 'CN=Can Sign')).toBe(0);
    out.length = 0;
    expect(await kvCa('status', 'can-sign')).toBe(0);
    expect(out.join('\n')).toMatch(/key_ops {10}sign, verify\n/);
  });
});

describe('status', () => {
  it('inProgress: request id, details, the CSR, and what to do next', async () => {
    const created = await json<Pending>('create', 'status-progress', '--subject', 'CN=Status');
    const status = await json<Pending>('status', 'status-progress');
    expect(status).toMatchObject({
      requestId: created.requestId,
      status: 'inProgress',
      issuerName: 'Unknown',
      statusDetails: 'Pending certificate created. Please Perform Merge to complete the request.',
    });
    expect(status.csrPem).toBe(created.csrPem);
    expect(await kvCa('status', 'status-progress')).toBe(0);
    expect(out.join('\n')).toContain('basicConstraints=critical,CA:true,pathlen:0');
  });

  it('--request-id filters: the current id answers, another one says the request was overwritten', async () => {
    const first = await json<Pending>('create', 'status-filter', '--subject', 'CN=Filter');
    expect((await json<Pending>('status', 'status-filter', '--request-id', first.requestId)).status).toBe('inProgress');
    await json('delete-pending', 'status-filter');
    const second = await json<Pending>('create', 'status-filter', '--subject', 'CN=Filter 2');
    expect(await kvCa('status', 'status-filter', '--request-id', first.requestId)).toBe(1);
    expect(stderr()).toContain(`is ${second.requestId}, not ${first.requestId}`);
    expect(stderr()).toContain('without --request-id');
  });

  it('failed (issuer error): shows the error and how to go on', async () => {
    await issuerBackedRequest('status-failed');
    vault.settlePending('status-failed', 'failed', {
      code: 'CertificateIssuerError',
      message: 'The issuer rejected the order',
    });
    const status = await json<Pending>('status', 'status-failed');
    expect(status).toMatchObject({
      status: 'failed',
      error: { code: 'CertificateIssuerError', message: 'The issuer rejected the order' },
    });
    expect(await kvCa('status', 'status-failed')).toBe(0);
    expect(out.join('\n')).toContain('error            CertificateIssuerError: The issuer rejected the order');
    expect(out.join('\n')).toContain('kv-ca create` starts a new request');
  });

  it('cancelled: shows the error', async () => {
    await issuerBackedRequest('status-cancelled');
    vault.settlePending('status-cancelled', 'cancelled', { code: 'RequestRejected', message: 'request rejected' });
    expect(await json<Pending>('status', 'status-cancelled')).toMatchObject({
      status: 'cancelled',
      error: { code: 'RequestRejected' },
    });
  });

  it('deleted or overwritten: 404 PendingCertificateNotFound, with what to do', async () => {
    await json('create', 'status-deleted', '--subject', 'CN=Deleted');
    await json('delete-pending', 'status-deleted');
    expect(await kvCa('status', 'status-deleted')).toBe(1);
    expect(stderr()).toContain('no pending request');
    expect(stderr()).toContain('PendingCertificateNotFound');
    expect(stderr()).toContain('kv-ca create');
  });

  it('a certificate name the vault does not know', async () => {
    expect(await kvCa('status', 'never-created')).toBe(1);
    expect(stderr()).toContain('no pending request for certificate never-created');
    expect(stderr()).toContain('check certificateName');
  });
});

describe('merge', () => {
  it('completes the request: prints the certificateVersion to pin; status then says completed', async () => {
    const created = await json<Pending>('create', 'merge-ok', '--subject', 'CN=Merge OK CA,O=Example');
    const merged = await json<{ version: string; kid: string; subject: string }>(
      'merge',
      'merge-ok',
      '--chain',
      await chainFor(created.csrPem ?? ''),
    );
    expect(merged.version).toMatch(/^[0-9a-f]{32}$/);
    expect(merged.kid).toBe(`${vault.url}/keys/merge-ok/${merged.version}`);
    expect(merged.subject).toBe('CN=Merge OK CA, O=Example');
    expect(vault.certificateVersions('merge-ok')).toEqual([merged.version]);
    const status = await json<Pending>('status', 'merge-ok');
    expect(status).toMatchObject({ status: 'completed', target: `${vault.url}/certificates/merge-ok` });
  });

  it('prints the roll-out instructions', async () => {
    const created = await json<Pending>('create', 'merge-text', '--subject', 'CN=Merge text');
    expect(await kvCa('merge', 'merge-text', '--chain', await chainFor(created.csrPem ?? ''))).toBe(0);
    expect(out.join('\n')).toMatch(/set caConnections\.kv_ca\.certificateVersion: [0-9a-f]{32} and roll it out/);
  });

  it('403 while an issuer-backed request is inProgress: says to wait, cancel, or merge after failed/cancelled', async () => {
    await issuerBackedRequest('merge-issuer');
    const pending = await json<Pending>('status', 'merge-issuer');
    expect(await kvCa('merge', 'merge-issuer', '--chain', await chainFor(pending.csrPem ?? ''))).toBe(1);
    expect(stderr()).toContain('created with issuer mydigicert and is still inProgress');
    expect(stderr()).toContain('after failed or cancelled, a certificate obtained out of band can be merged');
    const merge = vault.requests.filter((r) => r.path === '/certificates/merge-issuer/pending/merge' && r.authorized);
    expect(merge.map((r) => r.status)).toEqual([403]);
  });

  it('after the issuer request failed, a certificate obtained out of band can be merged', async () => {
    await issuerBackedRequest('merge-after-failure');
    vault.settlePending('merge-after-failure', 'failed', { code: 'CertificateIssuerError', message: 'no' });
    const pending = await json<Pending>('status', 'merge-after-failure');
    const merged = await json<{ version: string }>(
      'merge',
      'merge-after-failure',
      '--chain',
      await chainFor(pending.csrPem ?? ''),
    );
    expect(merged.version).toMatch(/^[0-9a-f]{32}$/);
  });

  it.each([
    { label: 'a certificate for another key', advice: 'CSR that `certprov kv-ca status` prints' },
    { label: 'a chain in the wrong order', advice: 'leaf first' },
    { label: 'a certificate that is not a CA', advice: 'CA:true', says: 'basicConstraints cA is not set' },
    {
      label: 'a CA certificate without keyCertSign',
      advice: 'keyCertSign',
      says: 'the CA certificate: keyUsage lacks keyCertSign',
      extensions: 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,digitalSignature,cRLSign\n',
    },
    {
      label: 'a CA certificate whose EKU excludes clientAuth',
      advice: 'includes clientAuth',
      says: 'the CA certificate: extendedKeyUsage (serverAuth) excludes clientAuth',
      extensions:
        'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\n',
    },
  ])('refuses $label before asking Key Vault', async ({ label, advice, says, extensions }) => {
    const name = `merge-refuse-${label.length}`;
    const created = await json<Pending>('create', name, '--subject', 'CN=Refuse');
    let chain: string;
    if (label.includes('another key')) {
      const other = await json<Pending>('create', `${name}-other`, '--subject', 'CN=Other');
      chain = await chainFor(other.csrPem ?? '');
    } else if (label.includes('order')) {
      chain = path.join(dir, `${name}.pem`);
      await writeFile(chain, parent.rootPem + (await parent.sign(created.csrPem ?? '')));
    } else if (extensions !== undefined) {
      chain = await chainFor(created.csrPem ?? '', { extensions });
    } else {
      chain = await chainFor(created.csrPem ?? '', { ca: false });
    }
    const mergesBefore = vault.requests.filter((r) => r.path.endsWith('/pending/merge')).length;
    expect(await kvCa('merge', name, '--chain', chain)).toBe(1);
    expect(stderr()).toContain(advice);
    if (says !== undefined) expect(stderr()).toContain(says);
    expect(vault.requests.filter((r) => r.path.endsWith('/pending/merge')).length).toBe(mergesBefore);
  });

  it('no pending request: 404 with what to do', async () => {
    const created = await json<Pending>('create', 'merge-gone', '--subject', 'CN=Gone');
    const chain = await chainFor(created.csrPem ?? '');
    await json('delete-pending', 'merge-gone');
    expect(await kvCa('merge', 'merge-gone', '--chain', chain)).toBe(1);
    expect(stderr()).toContain('no pending request');
  });
});

describe('cancel and delete-pending', () => {
  it('cancel while inProgress: cancellation requested, status may stay inProgress', async () => {
    await issuerBackedRequest('cancel-me');
    const cancelled = await json<Pending>('cancel', 'cancel-me');
    expect(cancelled).toMatchObject({ cancellationRequested: true, status: 'inProgress' });
    expect(await kvCa('cancel', 'cancel-me')).toBe(0);
    expect(out.join('\n')).toContain('Cancellation is a request, not a guarantee');
  });

  it('cancel when not inProgress: 400, with what to do', async () => {
    const created = await json<Pending>('create', 'cancel-done', '--subject', 'CN=Done');
    await json('merge', 'cancel-done', '--chain', await chainFor(created.csrPem ?? ''));
    expect(await kvCa('cancel', 'cancel-done')).toBe(1);
    expect(stderr()).toContain('is not inProgress, so it cannot be cancelled');
    expect(stderr()).toContain('kv-ca delete-pending');
  });

  it('delete-pending removes the request (and warns it may not cancel an order); twice → 404 with advice', async () => {
    await issuerBackedRequest('delete-me');
    expect(await kvCa('delete-pending', 'delete-me')).toBe(0);
    expect(out.join('\n')).toContain('does not necessarily cancel an order');
    expect(await kvCa('delete-pending', 'delete-me')).toBe(1);
    expect(stderr()).toContain('no pending request');
    // Not inProgress any more: a new create works.
    expect(await kvCa('create', 'delete-me', '--subject', 'CN=Again')).toBe(0);
  });
});

describe('transient failures of lifecycle calls', () => {
  const creates = (name: string) =>
    vault.requests.filter((r) => r.path === `/certificates/${name}/create` && r.authorized).map((r) => r.status);

  it('a 429 on create is retried: Key Vault did not apply it', async () => {
    vault.failNext(1, { status: 429, match: /\/certificates\/throttled-create\/create$/ });
    expect(await kvCa('create', 'throttled-create', '--subject', 'CN=Throttled')).toBe(0);
    expect(creates('throttled-create')).toEqual([429, 202]);
  });

  it('a 503 on create is not resent (it may have been applied): says to look with kv-ca status', async () => {
    vault.failNext(1, { status: 503, match: /\/certificates\/unclear-create\/create$/ });
    expect(await kvCa('create', 'unclear-create', '--subject', 'CN=Unclear')).toBe(1);
    expect(creates('unclear-create')).toEqual([503]);
    expect(stderr()).toContain('may have been applied');
    expect(stderr()).toContain('kv-ca status');
  });

  it('a 503 on status is retried (a read is safe to repeat)', async () => {
    await json('create', 'retried-status', '--subject', 'CN=Retried');
    vault.failNext(2, { status: 503, match: /\/certificates\/retried-status\/pending$/ });
    expect((await json<Pending>('status', 'retried-status')).status).toBe('inProgress');
  });
});

describe('usage', () => {
  it.each([
    { args: ['rotate'], message: 'expected one of' },
    { args: ['create', '--config', 'x.yaml'], message: 'create needs --subject' },
    { args: ['merge', '--config', 'x.yaml'], message: 'merge needs --chain' },
    { args: ['create', '--config', 'x.yaml', '--subject', 'CN=x', '--key', 'dsa'], message: '--key must be ec or rsa' },
  ])('$args → UsageError', async ({ args, message }) => {
    await expect(kvCaCommand.run(args)).rejects.toThrow(UsageError);
    await expect(kvCaCommand.run(args)).rejects.toThrow(message);
  });

  it('names the connection when the file has several', async () => {
    const file = path.join(dir, 'two.yaml');
    const block = { type: 'azure-key-vault', vaultUrl: 'https://a.vault.azure.net', certificateName: 'a' };
    await writeFile(file, JSON.stringify({ caConnections: { one: block, two: block } }));
    await expect(kvCaCommand.run(['status', '--config', file])).rejects.toThrow(
      /several azure-key-vault connections \(one, two\)/,
    );
  });

  it('reports configuration problems with their paths', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(
      file,
      JSON.stringify({
        caConnections: {
          kv: { type: 'azure-key-vault', vaultUrl: 'https://a.vault.azure.net', allowInsecureConnection: true },
        },
      }),
    );
    const error = await kvCaCommand.run(['status', '--config', file]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toContain(
      'caConnections.kv.allowInsecureConnection: is a test-only setting, accepted for loopback vault URLs only',
    );
  });
});
