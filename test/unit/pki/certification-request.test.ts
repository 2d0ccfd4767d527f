import { sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../src/errors.ts';
import {
  assembleCertificationRequest,
  buildCertificationRequestInfo,
  parseCertificationRequestInfo,
} from '../../../src/pki/certification-request.ts';
import { DerError, bytesEqual, readChildren, readSingle, sequence } from '../../../src/pki/der.ts';
import { encodePem } from '../../../src/pki/pem.ts';
import { ecdsaRawToDer, verifyProofOfPossession } from '../../../src/pki/proof-of-possession.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { DistinguishedName, KeyType, SubjectAltName, SubjectAttribute } from '../../../src/pki/types.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';
import { testKeyPool } from '../../support/keys.ts';
import { csrText, openssl, spkiDerOfCsr, subjectLines, verifyCsr, withTempDir } from '../../support/openssl.ts';

function attr(type: string, value: string): SubjectAttribute {
  return { type, oid: SUBJECT_ATTRIBUTE_TYPES[type]!.oid, value };
}

const SUBJECT: DistinguishedName = [
  [attr('CN', 'a,b+c@example.com')],
  [attr('O', 'Example, Inc.'), attr('OU', 'Devices')],
  [attr('C', 'DE')],
];
const SANS: SubjectAltName[] = [
  { type: 'email', value: 'a,b+c@example.com' },
  { type: 'dns', value: 'device-1.example.com' },
  { type: 'uri', value: 'urn:chromeos:device:abc123' },
  { type: 'upn', value: 'user@corp.example.com' },
];

/** The device's part: sign the info with its key, as ChromeOS does for signData. */
function deviceSign(
  key: DeviceKey,
  keyType: KeyType,
  data: Uint8Array,
  encoding: 'der' | 'ieee-p1363' = 'der',
): Uint8Array {
  return new Uint8Array(
    sign('sha256', data, keyType === 'ec' ? { key: key.privateKey, dsaEncoding: encoding } : key.privateKey),
  );
}

async function csrFor(keyType: KeyType, encoding: 'der' | 'ieee-p1363' = 'der') {
  const key = (await testKeyPool()).next(keyType === 'ec' ? 'ec-p256' : 'rsa-2048');
  const spkiDer = new Uint8Array(key.spkiDer);
  const cri = buildCertificationRequestInfo({
    subject: SUBJECT,
    subjectAltNames: SANS,
    spkiDer,
    extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
  });
  const signature = deviceSign(key, keyType, cri, encoding);
  const verified = verifyProofOfPossession({ spkiDer, data: cri, signature, keyType });
  return { key, spkiDer, cri, signature, csr: assembleCertificationRequest(cri, keyType, verified) };
}

describe('CertificationRequestInfo and CSR assembly', () => {
  it.each([
    ['RSA-2048', 'rsa', 'der'],
    ['EC P-256 (DER signature)', 'ec', 'der'],
    ['EC P-256 (raw r||s signature, converted)', 'ec', 'ieee-p1363'],
  ] as const)('openssl accepts a CSR assembled from a %s device signature', async (_name, keyType, encoding) => {
    const { csr, spkiDer } = await csrFor(keyType, encoding);
    const verdict = await verifyCsr(csr);
    expect(verdict.ok, verdict.stderr).toBe(true);
    expect(bytesEqual(await spkiDerOfCsr(csr), spkiDer)).toBe(true);
    const text = await csrText(encodePem('CERTIFICATE REQUEST', csr));
    expect(text).toContain(keyType === 'rsa' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256');
  });

  it('embeds the exact bytes the device signed', async () => {
    const { csr, cri } = await csrFor('ec');
    const [info, algorithm, signature] = readChildren(readSingle(csr));
    expect(bytesEqual(info!.bytes, cri)).toBe(true);
    expect(info!.bytes.byteOffset - csr.byteOffset).toBe(csr.length > 255 + 4 ? 4 : csr.length > 127 + 2 ? 3 : 2);
    expect(algorithm!.bytes).toEqual(Uint8Array.from(Buffer.from('300a06082a8648ce3d040302', 'hex')));
    expect(signature!.tag).toBe(0x03);
  });

  it('uses sha256WithRSAEncryption with NULL parameters for RSA', async () => {
    const { csr } = await csrFor('rsa');
    const [, algorithm] = readChildren(readSingle(csr));
    expect(Buffer.from(algorithm!.bytes).toString('hex')).toBe('300d06092a864886f70d01010b0500');
  });

  it('keeps an email with "," and "+" as one CN and writes multi-valued RDNs', async () => {
    const { csr } = await csrFor('rsa');
    const lines = await subjectLines(csr, 'req');
    expect(lines).toEqual(['CN=a,b+c@example.com', 'OU=Devices + O=Example, Inc.', 'C=DE']);
  });

  it('writes each attribute with its string type and the SANs as requested extensions', async () => {
    const { csr } = await csrFor('ec');
    const parsed = await withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'csr.der'), csr);
      return openssl(['asn1parse', '-inform', 'DER', '-in', 'csr.der'], { cwd: dir });
    });
    expect(parsed.stdout).toMatch(/OBJECT\s+:commonName\s*\n.*UTF8STRING\s+:a,b\+c@example.com/);
    expect(parsed.stdout).toMatch(/OBJECT\s+:countryName\s*\n.*PRINTABLESTRING\s+:DE/);
    expect(parsed.stdout).toMatch(/OBJECT\s+:Extension Request/);
    const text = await csrText(csr);
    expect(text).toMatch(
      /email:a,b\+c@example.com, DNS:device-1.example.com, URI:urn:chromeos:device:abc123, othername: UPN::user@corp.example.com/,
    );
    expect(text).toContain('TLS Web Client Authentication');
  });

  it('writes E and DC as IA5String and an empty attribute set when nothing is requested', async () => {
    const spkiDer = new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer);
    const cri = buildCertificationRequestInfo({
      subject: [[attr('DC', 'example')], [attr('E', 'x@example.com')]],
      subjectAltNames: [],
      spkiDer,
    });
    const [, , , attributes] = readChildren(readSingle(cri));
    expect(Buffer.from(attributes!.bytes).toString('hex')).toBe('a000');
    const [subject] = readChildren(readSingle(cri)).slice(1);
    const strings = readChildren(subject!).map((rdn) => readChildren(readChildren(rdn)[0]!)[1]!.tag);
    expect(strings).toEqual([0x16, 0x16]);
  });

  it('refuses values that do not fit their string type', async () => {
    const spkiDer = new Uint8Array((await testKeyPool()).next('ec-p256').spkiDer);
    expect(() => buildCertificationRequestInfo({ subject: [[attr('C', 'D_')]], subjectAltNames: [], spkiDer })).toThrow(
      DerError,
    );
    expect(() =>
      buildCertificationRequestInfo({ subject: [[attr('E', 'ü@example.com')]], subjectAltNames: [], spkiDer }),
    ).toThrow(DerError);
    expect(() => buildCertificationRequestInfo({ subject: [[attr('CN', '')]], subjectAltNames: [], spkiDer })).toThrow(
      /empty value/,
    );
    expect(() =>
      buildCertificationRequestInfo({
        subject: [[attr('CN', 'x')]],
        subjectAltNames: [],
        spkiDer: Uint8Array.of(0x30, 0x80, 0, 0),
      }),
    ).toThrow(DerError);
  });

  it('refuses to assemble around a raw r||s ECDSA signature (PKCS#10 needs DER)', async () => {
    const { cri, key } = await csrFor('ec');
    const raw = deviceSign(key, 'ec', cri, 'ieee-p1363');
    expect(() => assembleCertificationRequest(cri, 'ec', raw)).toThrow(DerError);
    expect(() => assembleCertificationRequest(cri, 'ec', ecdsaRawToDer(raw))).not.toThrow();
  });

  it('openssl rejects a CSR whose info was changed after signing (the judge works)', async () => {
    const { cri, key } = await csrFor('rsa');
    const signature = deviceSign(key, 'rsa', cri);
    const tampered = Uint8Array.from(cri);
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 0x01;
    const verdict = await verifyCsr(assembleCertificationRequest(tampered, 'rsa', signature));
    expect(verdict.ok).toBe(false);
  });
});

describe('parseCertificationRequestInfo (resuming from signData)', () => {
  it('returns the SPKI inside, byte for byte', async () => {
    const { cri, spkiDer } = await csrFor('ec');
    const parsed = parseCertificationRequestInfo(cri);
    expect(bytesEqual(parsed.spkiDer, spkiDer)).toBe(true);
  });

  it.each([
    ['trailing bytes', (cri: Uint8Array) => Uint8Array.from([...cri, 0])],
    ['a truncated info', (cri: Uint8Array) => cri.subarray(0, cri.length - 1)],
    [
      'version 1',
      (cri: Uint8Array) =>
        sequence(
          Uint8Array.of(2, 1, 1),
          ...readChildren(readSingle(cri))
            .slice(1)
            .map((c) => c.bytes),
        ),
    ],
    [
      'a missing attributes field',
      (cri: Uint8Array) =>
        sequence(
          ...readChildren(readSingle(cri))
            .slice(0, 3)
            .map((c) => c.bytes),
        ),
    ],
    ['a whole CSR instead of its info', (_cri: Uint8Array, csr: Uint8Array) => csr],
    ['random bytes', () => Uint8Array.from(Buffer.from('certainly not DER'))],
  ])('refuses %s with a terminal error', async (_name, mutate) => {
    const { cri, csr } = await csrFor('ec');
    let caught: unknown;
    try {
      parseCertificationRequestInfo(mutate(cri, csr));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TerminalError);
    expect((caught as TerminalError).reason).toBe('internal');
  });
});
