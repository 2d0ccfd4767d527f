/**
 * Published CRLs of a self-run CA, judged by openssl: an adapter (sandbox tenant, local CA with a `crl` block,
 * sqlite store) issues leaves that carry cRLDistributionPoints and caIssuers; `certprov revoke`, a separate OS
 * process on the same store, revokes one and signs a new CRL; the adapter serves it at the URL in the leaf's own
 * cRLDistributionPoints; `openssl verify -crl_check` rejects the revoked leaf and accepts the others, and the CRL
 * verifies against the CA with a growing crlNumber.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import type { CertificateRecord } from '../../../src/store/inventory.ts';
import { AdapterRig, rigConfig } from '../../support/adapter-rig.ts';
import { certprov } from '../../support/certprov-cli.ts';
import { testKeyPool } from '../../support/keys.ts';
import { openssl } from '../../support/openssl.ts';

let work: string;
let rig: AdapterRig;
let configFile: string;
let caPem: string;
let leaves: CertificateRecord[] = [];
const CONNECTION = 'default_ca_config';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function fetchCrl(url: string): Promise<{ der: Buffer; headers: Headers }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return { der: Buffer.from(await response.arrayBuffer()), headers: response.headers };
}

async function crlText(der: Buffer): Promise<string> {
  const file = path.join(work, `crl-${Date.now()}.der`);
  await writeFile(file, der);
  const verified = await openssl([
    'crl',
    '-inform',
    'DER',
    '-in',
    file,
    '-CAfile',
    path.join(work, 'ca.pem'),
    '-noout',
    '-verify',
    '-text',
  ]);
  expect(verified.code, verified.stderr).toBe(0);
  expect(verified.stderr + verified.stdout).toContain('verify OK');
  return verified.stdout;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-crl-'));
  const caDir = path.join(work, 'ca');
  caPem = (await initLocalCa({ directory: caDir, keyType: 'ec', subject: 'CN=CRL test CA' })).certificatePem;
  await writeFile(path.join(work, 'ca.pem'), caPem);
  const port = await freePort();
  const crl = {
    url: `http://127.0.0.1:${port}/crl/${CONNECTION}.crl`,
    caIssuersUrl: `http://127.0.0.1:${port}/ca/${CONNECTION}.crt`,
    validity: '2d',
  };
  const caConnections = { [CONNECTION]: { type: 'local', directory: caDir, crl } };
  const store = { type: 'sqlite', path: path.join(work, 'certprov.db') };
  rig = await AdapterRig.start({
    logLevel: 'info',
    serveHttp: true,
    caConnections,
    config: { store, http: { host: '127.0.0.1', port } },
  });
  const pool = await testKeyPool();
  const ids = [1, 2, 3].map((n) =>
    rig.tenant.createProcess({
      key: pool.next('ec-p256'),
      subject: { kind: 'device', serialNumber: `SER-CRL-${n}`, deviceDirectoryApiId: `dir-crl-${n}` },
    }),
  );
  for (const id of ids) await rig.notify(id);
  await rig.tenant.waitUntilFinished(ids, 20_000);
  leaves = await rig.adapter.store.findCertificates({ caConnection: CONNECTION });
  expect(leaves).toHaveLength(3);
  const raw = rigConfig({
    endpoint: 'http://127.0.0.1:9',
    subscription: 'projects/certprov-test/subscriptions/provisioning',
    caConnections,
  });
  configFile = path.join(work, 'certprov.yaml');
  await writeFile(configFile, stringify({ ...raw, store, log: { level: 'info' } }));
}, 120_000);

afterAll(async () => {
  await rig?.stop();
  await rm(work, { recursive: true, force: true });
});

async function leafUrls(pem: string): Promise<{ crl: string; caIssuers: string }> {
  const file = path.join(work, 'leaf-text.pem');
  await writeFile(file, pem);
  const text = (await openssl(['x509', '-in', file, '-noout', '-text'])).stdout;
  const crl = /X509v3 CRL Distribution Points:\s*\n\s*Full Name:\s*\n\s*URI:(\S+)/.exec(text)?.[1];
  const caIssuers = /CA Issuers - URI:(\S+)/.exec(text)?.[1];
  expect(crl, text).toBeDefined();
  expect(caIssuers, text).toBeDefined();
  return { crl: crl!, caIssuers: caIssuers! };
}

describe('CRLs of a self-run CA', () => {
  it('serves the first CRL (empty, number 1) at the URL the leaves carry, as application/pkix-crl', async () => {
    const { crl: url, caIssuers } = await leafUrls(leaves[0]!.certificatePem);
    expect(url).toMatch(new RegExp(`/crl/${CONNECTION}\\.crl$`));
    expect(caIssuers).toMatch(new RegExp(`/ca/${CONNECTION}\\.crt$`));
    await expect.poll(async () => (await fetch(url)).status, { timeout: 10_000 }).toBe(200);
    const { der, headers } = await fetchCrl(url);
    expect(headers.get('content-type')).toBe('application/pkix-crl');
    expect(headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    expect(headers.get('etag')).toBe('"1"');
    const text = await crlText(der);
    expect(text).toMatch(/Version 2/);
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*1\b/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);
    expect(text).toMatch(/Next Update:/);
    expect(text).toContain('No Revoked Certificates.');
    const notModified = await fetch(url, { headers: { 'if-none-match': '"1"' } });
    expect(notModified.status).toBe(304);
    expect((await fetch(url.replace(CONNECTION, 'no_such_connection'))).status).toBe(404);
  });

  it('after certprov revoke, openssl rejects the revoked leaf with the CRL from its own CDP and accepts the others', async () => {
    const [revoked, kept] = leaves as [CertificateRecord, CertificateRecord];
    const run = await certprov([
      'revoke',
      '--config',
      configFile,
      '--serial',
      revoked.serial,
      '--reason',
      'keyCompromise',
      '--yes',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`CRL of ${CONNECTION}: number 2 signed and stored`);

    const { crl: url } = await leafUrls(revoked.certificatePem);
    // Every replica reads the stored CRL again within seconds.
    await expect.poll(async () => (await fetch(url)).headers.get('etag'), { timeout: 15_000 }).toBe('"2"');
    const { der } = await fetchCrl(url);
    const text = await crlText(der);
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*2\b/);
    expect(text).toContain(`Serial Number: ${revoked.serial.toUpperCase()}`);
    expect(text).toContain('Key Compromise');

    const crlPem = path.join(work, 'crl.pem');
    const crlDer = path.join(work, 'crl.der');
    await writeFile(crlDer, der);
    expect((await openssl(['crl', '-inform', 'DER', '-in', crlDer, '-out', crlPem])).code).toBe(0);
    const verify = async (leaf: CertificateRecord) => {
      const file = path.join(work, `${leaf.serial}.pem`);
      await writeFile(file, leaf.certificatePem);
      return openssl(['verify', '-crl_check', '-CAfile', path.join(work, 'ca.pem'), '-CRLfile', crlPem, file]);
    };
    const rejected = await verify(revoked);
    expect(rejected.code).not.toBe(0);
    expect(rejected.stdout + rejected.stderr).toContain('certificate revoked');
    for (const leaf of leaves.filter((l) => l.serial !== revoked.serial)) {
      const accepted = await verify(leaf);
      expect(accepted.code, accepted.stderr).toBe(0);
    }
    expect(kept.serial).not.toBe(revoked.serial);
  });
});
