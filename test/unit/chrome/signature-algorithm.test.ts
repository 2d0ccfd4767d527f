import { describe, expect, it } from 'vitest';
import { chromeSignatureAlgorithm } from '../../../src/chrome/signature-algorithm.ts';

describe('the signature algorithm Chrome asks the device for', () => {
  it.each([
    [
      'an RSA key is asked for PKCS#1 v1.5 with SHA-256',
      { type: 'rsa', modulusBits: 2048, publicExponent: 65537 } as const,
      'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256',
    ],
    [
      'an EC key is asked for ECDSA with SHA-256',
      { type: 'ec', namedCurve: 'P-256' } as const,
      'SIGNATURE_ALGORITHM_ECDSA_SHA256',
    ],
    ['a bare key type works the same way', 'ec' as const, 'SIGNATURE_ALGORITHM_ECDSA_SHA256'],
    ['a bare RSA key type', 'rsa' as const, 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256'],
  ])('%s', (_name, key, expected) => {
    expect(chromeSignatureAlgorithm(key)).toBe(expected);
  });
});
