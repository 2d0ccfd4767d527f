/**
 * The fake Key Vault rejects what the real one rejects (DESIGN.md §7), checked with plain HTTP requests — not the
 * SDK — against reference/azure-keyvault.md and its seeds: the 401 challenge, `api-version` (URL-decoded, never
 * optional), `X-HTTP-METHOD`, digest signing per algorithm, and the pending-request lifecycle's status codes and
 * bodies. The digest signer it uses is checked against node's own verify.
 */
import { constants, createHash, createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDigest } from '../../fakes/key-vault/digest-signing.ts';
import { CREATE_CONFLICT_MESSAGE, FAKE_KEY_VAULT_TOKEN, FakeKeyVault } from '../../fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa, OpensslParentCa } from '../../fakes/key-vault/issuing-ca-fixture.ts';
import { testKeyPool } from '../../support/keys.ts';
import { verifyCsr } from '../../support/openssl.ts';

let rsaKey: KeyObject;
let vault: FakeKeyVault;

beforeAll(async () => {
  // One RSA key for the whole file, from the run's pool (RSA generation is slow).
  rsaKey = (await testKeyPool()).next('rsa-2048').privateKey;
  vault = await FakeKeyVault.start({
    keyFactory: (spec) =>
      spec.kty.startsWith('RSA') ? rsaKey : generateKeyPairSync('ec', { namedCurve: spec.crv ?? 'P-256' }).privateKey,
  });
});
afterAll(() => vault.close());

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  options: { query?: string; json?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const query = options.query ?? 'api-version=7.5';
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? FAKE_KEY_VAULT_TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${vault.url}${path}${query === '' ? '' : `?${query}`}`, {
    method,
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

const errorOf = (reply: Reply) => reply.body.error as { code: string; message: string };

describe('digest signing (what Key Vault does: no second hash)', () => {
  const data = Buffer.from('the TBSCertificate bytes');
  it.each(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const)(
    '%s over a digest verifies as a signature over the data',
    (alg) => {
      const hash = `sha${alg.slice(2)}`;
      const signature = signDigest(alg, rsaKey, createHash(hash).update(data).digest());
      const publicKey = createPublicKey(rsaKey);
      const options = alg.startsWith('PS')
        ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 }
        : publicKey;
      expect(verify(hash, data, options, signature)).toBe(true);
      expect(verify(hash, Buffer.from('other bytes'), options, signature)).toBe(false);
    },
  );

  it.each([
    ['ES256', 'P-256', 64],
    ['ES384', 'P-384', 96],
    ['ES512', 'P-521', 132],
  ] as const)('%s over a digest is raw r||s of %s (%i bytes) that verifies', (alg, curve, length) => {
    const key = generateKeyPairSync('ec', { namedCurve: curve });
    const hash = `sha${alg.slice(2)}`;
    for (let i = 0; i < 5; i += 1) {
      const signature = signDigest(alg, key.privateKey, createHash(hash).update(data).digest());
      expect(signature).toHaveLength(length);
      expect(verify(hash, data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)).toBe(true);
    }
  });
});

describe('REST conventions', () => {
  it('answers a token-less request with 401 and the WWW-Authenticate challenge (authority/tenant, resource)', async () => {
    const reply = await call('GET', '/keys/nothing', { token: null });
    expect(reply.status).toBe(401);
    expect(reply.headers.get('www-authenticate')).toBe(
      `Bearer authorization="https://login.microsoftonline.com/${vault.tenantId}", resource="https://vault.azure.net"`,
    );
  });

  it('answers an unknown token with the same 401 challenge', async () => {
    const reply = await call('GET', '/keys/nothing', { token: 'not-a-token' });
    expect(reply.status).toBe(401);
    expect(reply.headers.get('www-authenticate')).toContain('resource="https://vault.azure.net"');
  });

  it('a Managed HSM names its own resource in the challenge', async () => {
    const hsm = await FakeKeyVault.start({ kind: 'managed-hsm' });
    try {
      const reply = await fetch(`${hsm.url}/keys/k?api-version=7.5`);
      expect(reply.headers.get('www-authenticate')).toContain('resource="https://managedhsm.azure.net"');
      const certificates = await fetch(`${hsm.url}/certificates/c/pending?api-version=7.5`, {
        headers: { authorization: `Bearer ${FAKE_KEY_VAULT_TOKEN}` },
      });
      expect(certificates.status).toBe(404);
    } finally {
      await hsm.close();
    }
  });

  it.each([
    { label: 'missing', query: '' },
    { label: 'empty', query: 'api-version=' },
    { label: 'unknown', query: 'api-version=1999-01-01' },
  ])('rejects a $label api-version with 400 BadParameter', async ({ query }) => {
    const reply = await call('GET', '/keys/nothing', { query });
    expect(reply.status).toBe(400);
    expect(errorOf(reply).code).toBe('BadParameter');
  });

  it('URL-decodes the query key: api%2Dversion (as the SDK sends it) is api-version', async () => {
    const { kid } = vault.createKey('decoded', { kty: 'EC' });
    const reply = await call('GET', new URL(kid).pathname, { query: 'api%2Dversion=2025-07-01' });
    expect(reply.status).toBe(200);
    expect(vault.requests.at(-1)?.apiVersion).toBe('2025-07-01');
    expect(vault.requests.at(-1)?.rawQuery).toBe('?api%2Dversion=2025-07-01');
  });

  it('honours X-HTTP-METHOD on a POST (PATCH and DELETE of a pending request)', async () => {
    await call('POST', '/certificates/override/create', {
      json: { policy: { x509_props: { subject: 'CN=o' }, key_props: { kty: 'EC' }, issuer: { name: 'Unknown' } } },
    });
    const patched = await call('POST', '/certificates/override/pending', {
      headers: { 'x-http-method': 'PATCH' },
      json: { cancellation_requested: true },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.cancellation_requested).toBe(true);
    const deleted = await call('POST', '/certificates/override/pending', { headers: { 'x-http-method': 'DELETE' } });
    expect(deleted.status).toBe(200);
    expect((await call('GET', '/certificates/override/pending')).status).toBe(404);
  });

  it('answers 403 with Key Vault wording when a permission is missing', async () => {
    vault.permissions.delete('keys/get');
    try {
      const reply = await call('GET', '/keys/anything');
      expect(reply.status).toBe(403);
      expect(errorOf(reply).code).toBe('Forbidden');
      expect(errorOf(reply).message).toContain('does not have keys get permission');
    } finally {
      vault.permissions.add('keys/get');
    }
  });
});

describe('keys: get and sign', () => {
  it('returns the public JWK with kid (version included) and key_ops', async () => {
    const { kid, version } = vault.createKey('jwk', { kty: 'EC-HSM', crv: 'P-384' });
    const reply = await call('GET', `/keys/jwk/${version}`);
    const key = reply.body.key as Record<string, unknown>;
    expect(key).toMatchObject({ kid, kty: 'EC-HSM', crv: 'P-384', key_ops: ['sign', 'verify'] });
    expect(key.d).toBeUndefined();
  });

  it.each([
    { alg: 'ES256', kty: 'EC', crv: 'P-256', digest: 32 },
    { alg: 'ES384', kty: 'EC', crv: 'P-384', digest: 48 },
    { alg: 'RS256', kty: 'RSA', digest: 32 },
    { alg: 'PS256', kty: 'RSA', digest: 32 },
    { alg: 'RS512', kty: 'RSA', digest: 64 },
  ] as const)('$alg signs a $digest-byte digest with the versioned kid', async ({ alg, kty, digest, ...rest }) => {
    const { kid, version } = vault.createKey(`sign-${alg}`, { kty, ...('crv' in rest ? { crv: rest.crv } : {}) });
    const data = Buffer.from('data');
    const hash = `sha${alg.slice(2)}`;
    const value = createHash(hash).update(data).digest();
    expect(value).toHaveLength(digest);
    const reply = await call('POST', `/keys/sign-${alg}/${version}/sign`, {
      json: { alg, value: value.toString('base64url') },
    });
    expect(reply.status).toBe(200);
    expect(reply.body.kid).toBe(kid);
    const signature = Buffer.from(reply.body.value as string, 'base64url');
    const publicKey = createPublicKey(vault.privateKeyOf(`sign-${alg}`, version)!);
    const options = alg.startsWith('ES')
      ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
      : alg.startsWith('PS')
        ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: digest }
        : publicKey;
    expect(verify(hash, data, options, signature)).toBe(true);
  });

  it.each([
    { label: 'a digest of the wrong length for the algorithm', kty: 'EC', alg: 'ES256', bytes: 48 },
    { label: 'an algorithm of the other key family', kty: 'EC', alg: 'RS256', bytes: 32 },
    { label: 'an ECDSA algorithm of another curve', kty: 'EC', alg: 'ES384', bytes: 48 },
    { label: 'ECDSA on an RSA key', kty: 'RSA', alg: 'ES256', bytes: 32 },
  ] as const)('refuses $label with 400 BadParameter', async ({ kty, alg, bytes }) => {
    const { version } = vault.createKey('refuse', { kty });
    const reply = await call('POST', `/keys/refuse/${version}/sign`, {
      json: { alg, value: Buffer.alloc(bytes, 1).toString('base64url') },
    });
    expect(reply.status).toBe(400);
    expect(errorOf(reply).code).toBe('BadParameter');
  });

  it('refuses to sign with a disabled key version (403) and an unknown version (404 KeyNotFound)', async () => {
    const { version } = vault.createKey('disabled', { kty: 'EC' });
    vault.setKeyEnabled('disabled', version, false);
    const body = { alg: 'ES256', value: Buffer.alloc(32).toString('base64url') };
    expect((await call('POST', `/keys/disabled/${version}/sign`, { json: body })).status).toBe(403);
    const missing = await call('POST', `/keys/disabled/${'0'.repeat(32)}/sign`, { json: body });
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('KeyNotFound');
  });
});

describe('certificates: the pending-request lifecycle of the seed', () => {
  const manualPolicy = (subject: string) => ({
    policy: {
      x509_props: { subject, key_usage: ['keyCertSign', 'cRLSign'] },
      key_props: { kty: 'EC', crv: 'P-256', exportable: false },
      issuer: { name: 'Unknown' },
    },
  });

  it('create → 202, Location with request_id, pending body with a CSR openssl verifies', async () => {
    const reply = await call('POST', '/certificates/manual/create', { json: manualPolicy('CN=Manual CA') });
    expect(reply.status).toBe(202);
    const requestId = reply.body.request_id as string;
    expect(reply.headers.get('location')).toBe(
      `${vault.url}/certificates/manual/pending?api-version=7.5&request_id=${requestId}`,
    );
    expect(reply.body).toMatchObject({
      id: `${vault.url}/certificates/manual/pending`,
      issuer: { name: 'Unknown' },
      status: 'inProgress',
      status_details: 'Pending certificate created. Please Perform Merge to complete the request.',
    });
    const csr = Buffer.from(reply.body.csr as string, 'base64');
    expect((await verifyCsr(new Uint8Array(csr))).ok).toBe(true);
  });

  it("create while a request is inProgress → 409 with the seed's body", async () => {
    await call('POST', '/certificates/twice/create', { json: manualPolicy('CN=Twice') });
    const reply = await call('POST', '/certificates/twice/create', { json: manualPolicy('CN=Twice') });
    expect(reply.status).toBe(409);
    expect(reply.body).toEqual({ error: { code: 'Forbidden', message: CREATE_CONFLICT_MESSAGE } });
  });

  it('request_id is a filter: another id → 404 PendingCertificateNotFound', async () => {
    const created = await call('POST', '/certificates/filter/create', { json: manualPolicy('CN=Filter') });
    const requestId = created.body.request_id as string;
    expect(
      (await call('GET', '/certificates/filter/pending', { query: `api-version=7.5&request_id=${requestId}` })).status,
    ).toBe(200);
    const other = await call('GET', '/certificates/filter/pending', { query: 'api-version=7.5&request_id=0000' });
    expect(other.status).toBe(404);
    expect(errorOf(other).code).toBe('PendingCertificateNotFound');
  });

  it('an issuer-backed request: create says InProgress, merge is 403 while in progress, cancel is only a request', async () => {
    vault.addIssuer('mydigicert', 'DigiCert');
    const created = await call('POST', '/certificates/ordered/create', {
      json: {
        policy: {
          x509_props: { subject: 'CN=Ordered' },
          key_props: { kty: 'EC' },
          issuer: { name: 'mydigicert', cty: 'OV-SSL' },
        },
      },
    });
    expect(created.status).toBe(202);
    expect(created.body.status).toBe('InProgress');
    const merge = await call('POST', '/certificates/ordered/pending/merge', { json: { x5c: ['MIIB'] } });
    expect(merge.status).toBe(403);
    expect(merge.body).toEqual({
      error: {
        code: 'Forbidden',
        message: 'Merge is forbidden on pending object created with issuer : mydigicert while it is in progess.',
      },
    });
    const cancel = await call('PATCH', '/certificates/ordered/pending', { json: { cancellation_requested: true } });
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ cancellation_requested: true, status: 'inProgress' });
    vault.settlePending('ordered', 'cancelled', { code: 'Cancelled', message: 'request rejected' });
    const again = await call('PATCH', '/certificates/ordered/pending', { json: { cancellation_requested: true } });
    expect(again.status).toBe(400);
    const status = await call('GET', '/certificates/ordered/pending');
    expect(status.body).toMatchObject({
      status: 'cancelled',
      error: { code: 'Cancelled', message: 'request rejected' },
    });
    // Not inProgress any more: a new create may overwrite it.
    expect(
      (await call('POST', '/certificates/ordered/create', { json: manualPolicy('CN=Ordered again') })).status,
    ).toBe(202);
  });

  it('merge: a certificate for another key → 400; the right one → 201, Location, bundle; pending then completed', async () => {
    const fixture = await createIssuingCa(vault, { certificateName: 'merged' });
    try {
      expect(fixture.fake.certificateVersions('merged')).toEqual([fixture.version]);
      const created = await call('POST', '/certificates/merge-target/create', {
        json: manualPolicy('CN=Merge target'),
      });
      const parent = await OpensslParentCa.create(fixture.dir, '/CN=other root');
      // A certificate for the other request's key: Key Vault refuses it.
      const wrong = await fixture.parent.sign(await pendingCsr('merge-other'));
      const refused = await call('POST', '/certificates/merge-target/pending/merge', { json: { x5c: [derOf(wrong)] } });
      expect(refused.status).toBe(400);
      expect(errorOf(refused).message).toBe("Public key from x509 certificate and key of this instance doesn't match");
      const right = await parent.sign(pemOfCsr(created.body.csr as string));
      const merged = await call('POST', '/certificates/merge-target/pending/merge', {
        json: { x5c: [derOf(right), derOf(parent.rootPem)] },
      });
      expect(merged.status).toBe(201);
      const version = (merged.body.id as string).split('/').at(-1) as string;
      expect(merged.headers.get('location')).toBe(`${vault.url}/certificates/merge-target?api-version=7.5`);
      expect(merged.body).toMatchObject({
        kid: `${vault.url}/keys/merge-target/${version}`,
        sid: `${vault.url}/secrets/merge-target/${version}`,
        cer: derOf(right),
        attributes: { enabled: true },
      });
      const pending = await call('GET', '/certificates/merge-target/pending');
      expect(pending.body).toMatchObject({ status: 'completed', target: `${vault.url}/certificates/merge-target` });
      expect((await call('GET', `/certificates/merge-target/${version}`)).body.cer).toBe(derOf(right));
    } finally {
      await fixture.close();
    }
  });

  it('delete → 200 with the pending object; then GET → 404 PendingCertificateNotFound', async () => {
    await call('POST', '/certificates/deleted/create', { json: manualPolicy('CN=Deleted') });
    const deleted = await call('DELETE', '/certificates/deleted/pending');
    expect(deleted.status).toBe(200);
    expect(deleted.body.status).toBe('inProgress');
    const gone = await call('GET', '/certificates/deleted/pending');
    expect(gone.status).toBe(404);
    expect(errorOf(gone).code).toBe('PendingCertificateNotFound');
  });
});

describe('throttling and scripted faults', () => {
  it('returns 429 on every n-th request, with Retry-After when configured', async () => {
    const { version } = vault.createKey('throttled', { kty: 'EC' });
    vault.throttle({ every: 2, retryAfter: '3', match: /throttled/ });
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 4; i += 1) {
        const reply = await call('GET', `/keys/throttled/${version}`);
        statuses.push(reply.status);
        if (reply.status === 429) {
          retryAfter = reply.headers.get('retry-after');
          expect(errorOf(reply).code).toBe('Throttled');
        }
      }
      expect(statuses).toEqual([200, 429, 200, 429]);
      expect(retryAfter).toBe('3');
      vault.throttle({ every: 1, match: /throttled/ });
      const bare = await call('GET', `/keys/throttled/${version}`);
      expect(bare.status).toBe(429);
      expect(bare.headers.get('retry-after')).toBeNull();
    } finally {
      vault.throttle(undefined);
    }
  });
});

// Helpers for the merge test: CSRs of other pending requests, DER of PEM text.
async function pendingCsr(name: string): Promise<string> {
  const created = await call('POST', `/certificates/${name}/create`, {
    json: { policy: { x509_props: { subject: `CN=${name}` }, key_props: { kty: 'EC' }, issuer: { name: 'Unknown' } } },
  });
  return pemOfCsr(created.body.csr as string);
}

function pemOfCsr(base64: string): string {
  return `-----BEGIN CERTIFICATE REQUEST-----\n${(base64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

function derOf(pem: string): string {
  const match = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  return (match?.[1] ?? '').replace(/\s+/g, '');
}
