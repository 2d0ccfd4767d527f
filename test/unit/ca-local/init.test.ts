import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCaExistsError, initLocalCa } from '../../../src/ca/local/init.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { certificateText, openssl, subjectLines, verifyCertificate } from '../../support/openssl.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'certprov-init-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function publicKeysMatch(caDir: string): Promise<boolean> {
  const fromKey = await openssl(['pkey', '-in', 'ca.key.pem', '-pubout'], { cwd: caDir });
  const fromCert = await openssl(['x509', '-in', 'ca.cert.pem', '-noout', '-pubkey'], { cwd: caDir });
  return fromKey.code === 0 && fromKey.stdout === fromCert.stdout;
}

describe('initLocalCa', () => {
  it('writes a PKCS#8 key (mode 0600) and a self-signed CA certificate openssl accepts', async () => {
    const caDir = path.join(dir, 'nested', 'ca');
    const result = await initLocalCa({ directory: caDir });
    expect(result.keyPath).toBe(path.join(caDir, 'ca.key.pem'));
    expect(result.certificatePath).toBe(path.join(caDir, 'ca.cert.pem'));
    expect((await stat(result.keyPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(result.keyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(await readFile(result.certificatePath, 'utf8')).toBe(result.certificatePem);
    expect(await publicKeysMatch(caDir)).toBe(true);

    const verdict = await verifyCertificate(result.certificatePem, result.certificatePem);
    expect(verdict.ok, verdict.stderr).toBe(true);
    const text = await certificateText(result.certificatePem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(/Subject Key Identifier/);
    expect(text).toMatch(/ecdsa-with-SHA256/);
    expect(text).toMatch(/NIST CURVE: P-256/);
    expect(await readdir(caDir)).toEqual(['ca.cert.pem', 'ca.key.pem']);
  });

  it('creates an RSA-3072 CA with --key rsa', async () => {
    const result = await initLocalCa({ directory: dir, keyType: 'rsa' });
    const text = await certificateText(result.certificatePem);
    expect(text).toMatch(/Public-Key: \(3072 bit\)/);
    expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(await publicKeysMatch(dir)).toBe(true);
    expect((await verifyCertificate(result.certificatePem, result.certificatePem)).ok).toBe(true);
  });

  it('uses the given subject and validity', async () => {
    const now = new Date('2031-01-01T00:00:00Z');
    const result = await initLocalCa({
      directory: dir,
      subject: 'CN=Example Trial CA,O=Example\\, Inc.,C=DE',
      validityDays: 30,
      now,
    });
    expect(await subjectLines(result.certificatePem, 'x509')).toEqual([
      'CN=Example Trial CA',
      'O=Example, Inc.',
      'C=DE',
    ]);
    expect(result.notAfter.toISOString()).toBe('2031-01-31T00:00:00.000Z');
    expect(result.notBefore.getTime()).toBeLessThan(now.getTime());
    expect(parseCertificate(result.certificatePem).notAfter).toEqual(result.notAfter);
  });

  it('gives each CA a distinct default subject', async () => {
    const a = await initLocalCa({ directory: path.join(dir, 'a') });
    const b = await initLocalCa({ directory: path.join(dir, 'b') });
    const [subjectA] = await subjectLines(a.certificatePem, 'x509');
    const [subjectB] = await subjectLines(b.certificatePem, 'x509');
    expect(subjectA).toMatch(/^CN=certprov local CA [0-9a-f]{8}$/);
    expect(subjectA).not.toBe(subjectB);
  });

  it('refuses placeholders in the subject and a non-positive validity', async () => {
    await expect(initLocalCa({ directory: dir, subject: 'CN={{user.userPrimaryEmail}}' })).rejects.toThrow(
      /placeholders/,
    );
    await expect(initLocalCa({ directory: dir, validityDays: 0 })).rejects.toThrow(/validityDays/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses to overwrite an existing CA and leaves it untouched', async () => {
    const first = await initLocalCa({ directory: dir });
    const keyBefore = await readFile(first.keyPath, 'utf8');
    await expect(initLocalCa({ directory: dir })).rejects.toBeInstanceOf(LocalCaExistsError);
    await expect(initLocalCa({ directory: dir, keyType: 'rsa' })).rejects.toThrow(
      /already holds a local CA \(ca\.key\.pem exists\); pass --force/,
    );
    expect(await readFile(first.keyPath, 'utf8')).toBe(keyBefore);
    expect(await readFile(first.certificatePath, 'utf8')).toBe(first.certificatePem);
    expect(await readdir(dir)).toEqual(['ca.cert.pem', 'ca.key.pem']);
  });

  it('refuses when only the certificate exists', async () => {
    await writeFile(path.join(dir, 'ca.cert.pem'), 'placeholder');
    await expect(initLocalCa({ directory: dir })).rejects.toThrow(/ca\.cert\.pem exists/);
    expect(await readdir(dir)).toEqual(['ca.cert.pem']);
  });

  it('replaces an existing CA with force, keeping the key private', async () => {
    const first = await initLocalCa({ directory: dir });
    const second = await initLocalCa({ directory: dir, force: true });
    expect(second.certificatePem).not.toBe(first.certificatePem);
    expect(await readFile(second.certificatePath, 'utf8')).toBe(second.certificatePem);
    expect((await stat(second.keyPath)).mode & 0o777).toBe(0o600);
    expect(await publicKeysMatch(dir)).toBe(true);
    expect(await readdir(dir)).toEqual(['ca.cert.pem', 'ca.key.pem']);
  });
});
