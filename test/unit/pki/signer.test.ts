/**
 * The one signer interface every self-signing CA uses (DESIGN.md §10): local keys, digest signers for key services
 * that return raw r||s (Key Vault) or DER (Cloud KMS), and signing arbitrary "to be signed" structures — a CSR
 * here, judged by openssl.
 */
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildSignedCertificationRequest } from '../../../src/pki/certification-request.ts';
import { encodePem } from '../../../src/pki/pem.ts';
import { ecdsaRawToDer } from '../../../src/pki/proof-of-possession.ts';
import { signatureAlgorithmIdentifier, type SigningAlgorithm } from '../../../src/pki/signature-algorithms.ts';
import {
  SignatureMismatchError,
  digestSigner,
  signAndVerify,
  signerFromPrivateKey,
  type EcdsaEncoding,
} from '../../../src/pki/signer.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import { signDigest } from '../../fakes/key-vault/digest-signing.ts';
import { testKeyPool } from '../../support/keys.ts';
import { csrText, subjectLines, verifyCsr } from '../../support/openssl.ts';

const spkiOf = (key: KeyObject) => new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
const TBS = new TextEncoder().encode('any to-be-signed bytes: a TBSCertList, a CertificationRequestInfo');

/** What a key service does with a digest: sign it without hashing again, in its own ECDSA encoding. */
function service(key: KeyObject, algorithm: SigningAlgorithm, encoding: EcdsaEncoding, calls: Uint8Array[]) {
  return digestSigner({
    algorithm,
    ecdsaEncoding: encoding,
    service: 'the fake service',
    signDigest: (digest) => {
      calls.push(digest);
      const signature = new Uint8Array(signDigest(algorithm, key, digest)); // raw r||s for ECDSA
      return Promise.resolve(encoding === 'der' && algorithm.startsWith('ES') ? ecdsaRawToDer(signature) : signature);
    },
  });
}

describe('digestSigner', () => {
  it.each(['raw', 'der'] as const)('turns an ECDSA %s answer into a DER signature that verifies', async (encoding) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const calls: Uint8Array[] = [];
    const signed = await signAndVerify(TBS, service(privateKey, 'ES256', encoding, calls), spkiOf(privateKey));
    expect(calls, 'one remote call, over the SHA-256 digest').toHaveLength(1);
    expect(calls[0]).toHaveLength(32);
    expect(signed.signature[0], 'DER ECDSA-Sig-Value is a SEQUENCE').toBe(0x30);
    expect(verify('sha256', TBS, publicKey, signed.signature)).toBe(true);
    expect(signed.algorithm).toBe('ES256');
    expect(Buffer.from(signed.signatureAlgorithm)).toEqual(Buffer.from(signatureAlgorithmIdentifier('ES256')));
  });

  it('passes an RSA signature through unchanged', async () => {
    const rsa = (await testKeyPool()).next('rsa-2048').privateKey;
    const signed = await signAndVerify(TBS, service(rsa, 'RS256', 'raw', []), spkiOf(rsa));
    expect(signed.signature).toHaveLength(256);
  });

  it('refuses a raw ECDSA answer of the wrong length', async () => {
    const signer = digestSigner({
      algorithm: 'ES256',
      ecdsaEncoding: 'raw',
      service: 'Key Vault',
      signDigest: () => Promise.resolve(new Uint8Array(63)),
    });
    await expect(signer.sign(TBS)).rejects.toThrow(/Key Vault returned a 63-byte ES256 signature/);
  });
});

describe('signAndVerify', () => {
  it('wraps tbs, algorithm and signature into one SEQUENCE whose tail is the signature BIT STRING', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const signed = await signAndVerify(TBS, signerFromPrivateKey(key), spkiOf(key));
    expect(signed.algorithm).toBe('ES384');
    const tail = signed.der.subarray(signed.der.length - signed.signature.length);
    expect(Buffer.from(tail)).toEqual(Buffer.from(signed.signature));
    expect(Buffer.from(signed.der).includes(Buffer.from(TBS))).toBe(true);
  });

  it('refuses a signature made by another key', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await expect(signAndVerify(TBS, signerFromPrivateKey(other), spkiOf(key))).rejects.toBeInstanceOf(
      SignatureMismatchError,
    );
  });
});

describe('buildSignedCertificationRequest', () => {
  const subject = [
    [{ type: 'CN', oid: SUBJECT_ATTRIBUTE_TYPES.CN!.oid, value: 'Example Device Issuing CA' }],
    [{ type: 'O', oid: SUBJECT_ATTRIBUTE_TYPES.O!.oid, value: 'Example' }],
  ];

  it.each([
    ['an EC key behind a DER-answering service', 'ec'],
    ['an RSA key', 'rsa'],
  ] as const)('makes a CSR openssl verifies, for %s', async (_label, type) => {
    const key =
      type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
        : (await testKeyPool()).next('rsa-2048').privateKey;
    const signer = type === 'ec' ? service(key, 'ES256', 'der', []) : signerFromPrivateKey(key, 'RS256');
    const der = await buildSignedCertificationRequest({ subject, spkiDer: spkiOf(key), signer });
    const pem = encodePem('CERTIFICATE REQUEST', der);
    const verdict = await verifyCsr(pem);
    expect(verdict.ok, verdict.stderr).toBe(true);
    expect(await subjectLines(pem, 'req')).toEqual(['CN=Example Device Issuing CA', 'O=Example']);
    expect(await csrText(pem)).toMatch(type === 'ec' ? /ecdsa-with-SHA256/ : /sha256WithRSAEncryption/);
  });

  it('refuses to make a CSR for a key the signer does not hold', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await expect(
      buildSignedCertificationRequest({ subject, spkiDer: spkiOf(key), signer: signerFromPrivateKey(other) }),
    ).rejects.toBeInstanceOf(SignatureMismatchError);
  });
});
