import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkUploadedCertificate, rawSpkiOfCertificate } from '../../../src/sandbox/device-certificate.ts';
import { SandboxTenant, type KeyPool } from '../../../src/sandbox/index.ts';
import { testKeyPool } from '../../support/keys.ts';
import { createTestCa, type TestCa } from './sandbox-http.ts';

let pool: KeyPool;
let ca: TestCa;
const dir = mkdtempSync(path.join(tmpdir(), 'sandbox-cert-'));

beforeAll(async () => {
  [pool, ca] = await Promise.all([testKeyPool(), createTestCa()]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('checkUploadedCertificate', () => {
  it('slices the SPKI out of a certificate byte for byte (compared with openssl)', async () => {
    const key = pool.next('rsa-2048');
    const leaf = await ca.issueLeaf(key.spkiDer);
    const file = path.join(dir, 'leaf.pem');
    writeFileSync(file, leaf);
    const opensslSpki = execFileSync('sh', [
      '-c',
      `openssl x509 -in ${file} -noout -pubkey | openssl pkey -pubin -outform DER`,
    ]);
    const raw = rawSpkiOfCertificate(new X509Certificate(leaf).raw);
    expect(Buffer.from(raw)).toEqual(opensslSpki);
    expect(Buffer.from(raw)).toEqual(key.spkiDer);
  });

  it.each([
    ['accepts a leaf for the key', 'leaf', undefined],
    ['refuses a chain', 'chain', 'not-exactly-one-certificate'],
    ['refuses a leaf for another key', 'other', 'spki-mismatch'],
    ['refuses garbage inside PEM armour', 'garbage', 'unparseable'],
    ['refuses an empty string', 'empty', 'not-exactly-one-certificate'],
  ] as const)('%s', async (_label, kind, expected) => {
    const key = pool.next('ec-p256');
    const pem = {
      leaf: () => ca.issueLeaf(key.spkiDer),
      chain: async () => (await ca.issueLeaf(key.spkiDer)) + ca.certificatePem,
      other: () => ca.issueLeaf(pool.next('rsa-2048').spkiDer),
      garbage: () => Promise.resolve('-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----'),
      empty: () => Promise.resolve(''),
    }[kind];
    expect(checkUploadedCertificate(await pem(), key.spkiDer)).toBe(expected);
  });
});

describe('processes created already issued', () => {
  it.each(['rsa-2048', 'ec-p256'] as const)(
    'carry a %s certificate openssl accepts as self-signed for the device key',
    async (type) => {
      const tenant = await SandboxTenant.start();
      try {
        const key = pool.next(type);
        const pem = tenant.process(tenant.createProcess({ key, finished: 'issued' })).issuedCertificate ?? '';
        const file = path.join(dir, `issued-${type}.pem`);
        writeFileSync(file, pem);
        const out = execFileSync('openssl', ['verify', '-CAfile', file, '-partial_chain', file], { encoding: 'utf8' });
        expect(out.trim()).toBe(`${file}: OK`);
        expect(checkUploadedCertificate(pem, key.spkiDer)).toBeUndefined();
      } finally {
        await tenant.close();
      }
    },
  );
});
