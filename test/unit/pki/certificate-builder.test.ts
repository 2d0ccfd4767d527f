import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  SubjectAlternativeName,
  id_ce_authorityKeyIdentifier,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../src/errors.ts';
import {
  SignatureMismatchError,
  IssuerExpiredError,
  buildLeafCertificate,
  buildSelfSignedCaCertificate,
  certificateMatchesSpki,
  parseCertificate,
  randomSerialNumber,
  signerFromPrivateKey,
  spkiOfCertificate,
  type TbsSigner,
  type LeafCertificateOptions,
  type SigningAlgorithm,
} from '../../../src/pki/certificate-builder.ts';
import { bytesEqual, toHex } from '../../../src/pki/der.ts';
import { keyIdentifierOf } from '../../../src/pki/extensions.ts';
import { encodePem } from '../../../src/pki/pem.ts';
import { ecdsaRawToDer } from '../../../src/pki/proof-of-possession.ts';
import { hashOf } from '../../../src/pki/signature-algorithms.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { SubjectAttribute } from '../../../src/pki/types.ts';
import { testKeyPool } from '../../support/keys.ts';
import {
  certificateText,
  openssl,
  spkiDerOfCertificate,
  subjectLines,
  verifyCertificate,
  withTempDir,
} from '../../support/openssl.ts';

const DAY = 86_400_000;
const NOW = new Date('2030-06-15T12:00:00.500Z');

function attr(type: string, value: string): SubjectAttribute {
  return { type, oid: SUBJECT_ATTRIBUTE_TYPES[type]!.oid, value };
}

const PROFILE: LeafCertificateOptions['profile'] = {
  subject: [[attr('CN', 'a,b+c@example.com')], [attr('O', 'Example')]],
  subjectAltNames: [{ type: 'email', value: 'a,b+c@example.com' }],
  validityMs: 30 * DAY,
  extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
};

function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
}

async function makeCa(
  privateKey: KeyObject,
  options: { algorithm?: SigningAlgorithm; validityDays?: number; now?: Date } = {},
) {
  const signer = signerFromPrivateKey(privateKey, options.algorithm);
  const built = await buildSelfSignedCaCertificate({
    subject: [[attr('CN', `Test CA ${signer.algorithm}`)], [attr('O', 'certprov tests')]],
    spkiDer: spkiOf(privateKey),
    signer,
    validityMs: (options.validityDays ?? 365) * DAY,
    now: options.now ?? NOW,
  });
  return { signer, pem: built.pem, issuer: parseCertificate(built.pem) };
}

const atTime = Math.floor(NOW.getTime() / 1000) + 60;

describe('buildLeafCertificate', () => {
  it.each([
    ['ES256 (EC P-256 CA)', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, undefined],
    ['ES384 (EC P-384 CA)', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, undefined],
    ['RS256 (RSA CA)', 'rsa', undefined],
    ['PS256 (RSA CA, as Key Vault can sign)', 'rsa', 'PS256'],
  ] as const)('issues leaves that openssl verifies, signed %s', async (_name, caKey, algorithm) => {
    const pool = await testKeyPool();
    const caPrivate = caKey === 'rsa' ? pool.next('rsa-2048').privateKey : caKey();
    const ca = await makeCa(caPrivate, { algorithm });
    for (const poolType of ['rsa-2048', 'ec-p256'] as const) {
      const device = pool.next(poolType);
      const leaf = await buildLeafCertificate({
        issuer: ca.issuer,
        spkiDer: new Uint8Array(device.spkiDer),
        profile: PROFILE,
        signer: ca.signer,
        now: NOW,
      });
      const verdict = await verifyCertificate(leaf.pem, ca.pem, { purpose: 'sslclient', atTime });
      expect(verdict.ok, `${poolType}: ${verdict.stdout}${verdict.stderr}`).toBe(true);
    }
  });

  it('writes the extensions of DESIGN.md: CA:false, keyUsage by key type, EKU, SAN, SKI, AKI', async () => {
    const pool = await testKeyPool();
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const ecLeaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array(pool.next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
    });
    const ecText = await certificateText(ecLeaf.pem);
    expect(ecText).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(ecText).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(ecText).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication/);
    expect(ecText).toMatch(/Subject Alternative Name:\s+email:a,b\+c@example.com/);
    expect(ecText).toContain('Issuer: O=certprov tests,CN=Test CA ES256');
    const rsaLeaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array(pool.next('rsa-2048').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
    });
    expect(await certificateText(rsaLeaf.pem)).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
  });

  it('keeps the email with "," and "+" as one CN', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
    });
    expect(await subjectLines(leaf.pem, 'x509')).toEqual(['CN=a,b+c@example.com', 'O=Example']);
  });

  it('carries the device SPKI byte for byte', async () => {
    const device = (await testKeyPool()).next('rsa-2048');
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array(device.spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
    });
    expect(bytesEqual(spkiOfCertificate(leaf.pem), device.spkiDer)).toBe(true);
    expect(bytesEqual(await spkiDerOfCertificate(leaf.pem), device.spkiDer)).toBe(true);
    expect(certificateMatchesSpki(leaf.pem, new Uint8Array(device.spkiDer))).toBe(true);
    expect(certificateMatchesSpki(leaf.pem, new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer))).toBe(false);
    expect(certificateMatchesSpki(leaf.pem + leaf.pem, new Uint8Array(device.spkiDer))).toBe(false);
    expect(certificateMatchesSpki('garbage', new Uint8Array(device.spkiDer))).toBe(false);
  });

  it('backdates notBefore and caps notAfter at the profile validity', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, {
      now: new Date(NOW.getTime() - DAY),
    });
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
      backdateMs: 10 * 60_000,
    });
    expect(leaf.notBefore.toISOString()).toBe('2030-06-15T11:50:00.000Z');
    expect(leaf.notAfter.toISOString()).toBe('2030-07-15T12:00:00.000Z');
    const parsed = parseCertificate(leaf.pem);
    expect(parsed.notBefore).toEqual(leaf.notBefore);
    expect(parsed.notAfter).toEqual(leaf.notAfter);
  });

  it('never outlives the CA and never starts before it', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { validityDays: 10 });
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
      backdateMs: DAY,
    });
    expect(leaf.notAfter).toEqual(ca.issuer.notAfter);
    expect(leaf.notBefore).toEqual(ca.issuer.notBefore);
    const verdict = await verifyCertificate(leaf.pem, ca.pem, { atTime });
    expect(verdict.ok, verdict.stderr).toBe(true);
  });

  it('refuses to issue from an expired CA', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { validityDays: 1 });
    const later = new Date(NOW.getTime() + 2 * DAY);
    await expect(
      buildLeafCertificate({
        issuer: ca.issuer,
        spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
        profile: PROFILE,
        signer: ca.signer,
        now: later,
      }),
    ).rejects.toBeInstanceOf(IssuerExpiredError);
  });

  it('refuses a device key outside policy (RSA-1024 → key_policy)', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const promise = buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('rsa-1024').spkiDer),
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
    });
    await expect(promise).rejects.toBeInstanceOf(TerminalError);
    await expect(promise).rejects.toMatchObject({ reason: 'key_policy' });
  });

  it('makes the SAN critical when the subject is empty (RFC 5280 §4.2.1.6)', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: { ...PROFILE, subject: [], subjectAltNames: [{ type: 'uri', value: 'urn:chromeos:device:x1' }] },
      signer: ca.signer,
      now: NOW,
    });
    expect(await certificateText(leaf.pem)).toMatch(/Subject Alternative Name: critical\s+URI:urn:chromeos:device:x1/);
    const verdict = await verifyCertificate(leaf.pem, ca.pem, { atTime });
    expect(verdict.ok, verdict.stderr).toBe(true);
    const san = parseCertificate(leaf.pem).asn1.tbsCertificate.extensions!.find(
      (e) => e.extnID === id_ce_subjectAltName,
    )!;
    expect(AsnConvert.parse(san.extnValue, SubjectAlternativeName)[0]?.uniformResourceIdentifier).toBe(
      'urn:chromeos:device:x1',
    );
  });

  it('computes the SKI like openssl does (SHA-1 of the public key bits, RFC 5280 method 1)', async () => {
    const device = (await testKeyPool()).next('ec-p256');
    await withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'key.pem'), device.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const made = await openssl(
        ['req', '-new', '-x509', '-key', 'key.pem', '-subj', '/CN=ski', '-days', '1', '-out', 'cert.pem'],
        { cwd: dir },
      );
      expect(made.code, made.stderr).toBe(0);
      const ski = await openssl(['x509', '-in', 'cert.pem', '-noout', '-ext', 'subjectKeyIdentifier'], { cwd: dir });
      const opensslSki = /([0-9A-F]{2}(:[0-9A-F]{2}){19})/.exec(ski.stdout)?.[1]?.replace(/:/g, '').toLowerCase();
      expect(toHex(keyIdentifierOf(new Uint8Array(device.spkiDer)))).toBe(opensslSki);
    });
  });

  it('derives the AKI from the issuer key when the issuer certificate has no SKI', async () => {
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const issuerPem = await withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'key.pem'), caKey.export({ type: 'pkcs8', format: 'pem' }));
      await writeFile(
        path.join(dir, 'req.cnf'),
        '[req]\ndistinguished_name=dn\nx509_extensions=v3\nprompt=no\n[dn]\nCN=CA without SKI\n[v3]\nbasicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=none\nauthorityKeyIdentifier=none\n',
      );
      const made = await openssl(
        ['req', '-new', '-x509', '-key', 'key.pem', '-config', 'req.cnf', '-days', '3650', '-out', 'ca.pem'],
        { cwd: dir },
      );
      expect(made.code, made.stderr).toBe(0);
      return readFile(path.join(dir, 'ca.pem'), 'utf8');
    });
    const issuer = parseCertificate(issuerPem);
    expect(issuer.subjectKeyIdentifier).toBeUndefined();
    const leaf = await buildLeafCertificate({
      issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: signerFromPrivateKey(caKey),
    });
    const aki = parseCertificate(leaf.pem).asn1.tbsCertificate.extensions!.find(
      (e) => e.extnID === id_ce_authorityKeyIdentifier,
    )!;
    const keyId = new Uint8Array(AsnConvert.parse(aki.extnValue, AuthorityKeyIdentifier).keyIdentifier!.buffer);
    // A P-256 SPKI ends with the 65-byte uncompressed point: the subjectPublicKey bits.
    expect(toHex(keyId)).toBe(createHash('sha1').update(spkiOf(caKey).subarray(-65)).digest('hex'));
    // Not -x509_strict: it rejects the openssl-made issuer for lacking an SKI, which is the point of this test.
    const verdict = await verifyCertificate(leaf.pem, issuerPem, { strict: false });
    expect(verdict.ok, verdict.stderr).toBe(true);
  });

  it('uses the given serial, or a random positive 128-bit one', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const spkiDer = new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer);
    const fixed = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer,
      profile: PROFILE,
      signer: ca.signer,
      now: NOW,
      serial: Uint8Array.of(0x01, 0x02, 0x03),
    });
    expect(fixed.serialHex).toBe('010203');
    expect(parseCertificate(fixed.pem).serialHex).toBe('010203');
    const serials = Array.from({ length: 200 }, () => randomSerialNumber());
    for (const s of serials) {
      expect(s.length).toBe(16);
      expect(s[0]).toBeGreaterThanOrEqual(1);
      expect(s[0]).toBeLessThanOrEqual(0x7f);
    }
    expect(new Set(serials.map(toHex)).size).toBe(200);
    await expect(
      buildLeafCertificate({
        issuer: ca.issuer,
        spkiDer,
        profile: PROFILE,
        signer: ca.signer,
        now: NOW,
        serial: Uint8Array.of(0x80),
      }),
    ).rejects.toThrow(/positive/);
    await expect(
      buildLeafCertificate({
        issuer: ca.issuer,
        spkiDer,
        profile: PROFILE,
        signer: ca.signer,
        now: NOW,
        serial: Uint8Array.of(0),
      }),
    ).rejects.toThrow(/zero/);
  });
});

describe('pluggable signers', () => {
  it('works with a remote-style signer that hashes, signs the digest and returns raw r||s converted to DER', async () => {
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ca = await makeCa(caKey);
    let digestSeen = '';
    // What the Key Vault backend does: hash the TBS locally, send the digest, get raw r||s back.
    const remote: TbsSigner = {
      algorithm: 'ES256',
      sign: (tbs) => {
        digestSeen = createHash(hashOf('ES256')).update(tbs).digest('hex');
        const raw = sign('sha256', tbs, { key: caKey, dsaEncoding: 'ieee-p1363' });
        return Promise.resolve(ecdsaRawToDer(new Uint8Array(raw)));
      },
    };
    const leaf = await buildLeafCertificate({
      issuer: ca.issuer,
      spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
      profile: PROFILE,
      signer: remote,
      now: NOW,
    });
    expect(digestSeen).toMatch(/^[0-9a-f]{64}$/);
    expect((await verifyCertificate(leaf.pem, ca.pem, { atTime })).ok).toBe(true);
  });

  it.each([
    ['returns random bytes', (_tbs: Uint8Array, _key: KeyObject) => new Uint8Array(72).fill(7)],
    [
      'returns raw r||s where DER is needed',
      (tbs: Uint8Array, key: KeyObject) => new Uint8Array(sign('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' })),
    ],
    [
      'signs with another key',
      (tbs: Uint8Array) =>
        new Uint8Array(sign('sha256', tbs, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)),
    ],
    [
      'signs something else',
      (_tbs: Uint8Array, key: KeyObject) => new Uint8Array(sign('sha256', Buffer.from('x'), key)),
    ],
  ])('catches a signer that %s before the certificate leaves', async (_name, produce) => {
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ca = await makeCa(caKey);
    const broken: TbsSigner = { algorithm: 'ES256', sign: (tbs) => Promise.resolve(produce(tbs, caKey)) };
    await expect(
      buildLeafCertificate({
        issuer: ca.issuer,
        spkiDer: new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer),
        profile: PROFILE,
        signer: broken,
        now: NOW,
      }),
    ).rejects.toBeInstanceOf(SignatureMismatchError);
  });

  it('signerFromPrivateKey accepts a WebCrypto CryptoKey and picks the algorithm from the key', async () => {
    const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
    const signer = signerFromPrivateKey(pair.privateKey);
    expect(signer.algorithm).toBe('ES384');
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
    const ca = await makeCa(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }));
    expect(ca.signer.algorithm).toBe('ES384');
    expect(() => signerFromPrivateKey(createPublicKey(createPrivateKey(encodePem('PRIVATE KEY', pkcs8))))).toThrow(
      /private key/,
    );
  });
});

describe('buildSelfSignedCaCertificate', () => {
  it('makes a CA certificate openssl accepts as its own trust anchor', async () => {
    const ca = await makeCa(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const text = await certificateText(ca.pem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(/Subject Key Identifier/);
    expect(ca.issuer.isCa).toBe(true);
    expect(bytesEqual(ca.issuer.subjectNameDer, ca.issuer.issuerNameDer)).toBe(true);
    expect((await verifyCertificate(ca.pem, ca.pem, { atTime })).ok).toBe(true);
  });
});
