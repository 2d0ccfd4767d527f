import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../src/errors.ts';
import { DerError, sequence, unsignedInteger } from '../../../src/pki/der.ts';
import { ecdsaDerToRaw, ecdsaRawToDer, verifyProofOfPossession } from '../../../src/pki/proof-of-possession.ts';
import type { KeyType } from '../../../src/pki/types.ts';
import { testKeyPool } from '../../support/keys.ts';

const DATA = Uint8Array.from(Buffer.from('the DER of a CertificationRequestInfo'));

async function device(keyType: KeyType) {
  const key = (await testKeyPool()).next(keyType === 'ec' ? 'ec-p256' : 'rsa-2048');
  return { key, spkiDer: new Uint8Array(key.spkiDer) };
}

function expectTerminal(fn: () => unknown, reason: string): TerminalError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(TerminalError);
  expect((caught as TerminalError).reason).toBe(reason);
  return caught as TerminalError;
}

describe('verifyProofOfPossession', () => {
  it('accepts an RSA PKCS#1 v1.5 SHA-256 signature and returns it unchanged', async () => {
    const { key, spkiDer } = await device('rsa');
    const signature = new Uint8Array(sign('sha256', DATA, key.privateKey));
    expect(verifyProofOfPossession({ spkiDer, data: DATA, signature, keyType: 'rsa' })).toEqual(signature);
  });

  it('accepts an ECDSA P-256 signature in DER', async () => {
    const { key, spkiDer } = await device('ec');
    const signature = new Uint8Array(sign('sha256', DATA, { key: key.privateKey, dsaEncoding: 'der' }));
    expect(verifyProofOfPossession({ spkiDer, data: DATA, signature, keyType: 'ec' })).toEqual(signature);
  });

  it('accepts an ECDSA P-256 signature as raw r||s and returns it as DER', async () => {
    const { key, spkiDer } = await device('ec');
    const raw = new Uint8Array(sign('sha256', DATA, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }));
    expect(raw.length).toBe(64);
    const der = verifyProofOfPossession({ spkiDer, data: DATA, signature: raw, keyType: 'ec' });
    expect(der[0]).toBe(0x30);
    expect(verify('sha256', DATA, { key: key.privateKey, dsaEncoding: 'der' }, der)).toBe(true);
    expect(ecdsaDerToRaw(der, 32)).toEqual(raw);
  });

  it.each([
    [
      'RSA over other data',
      'rsa',
      (k: Awaited<ReturnType<typeof device>>) => sign('sha256', Buffer.from('other'), k.key.privateKey),
    ],
    [
      'EC over other data',
      'ec',
      (k: Awaited<ReturnType<typeof device>>) => sign('sha256', Buffer.from('other'), k.key.privateKey),
    ],
    [
      'RSA signature truncated',
      'rsa',
      (k: Awaited<ReturnType<typeof device>>) => sign('sha256', DATA, k.key.privateKey).subarray(1),
    ],
    ['empty signature', 'ec', () => new Uint8Array(0)],
    ['64 random bytes for EC', 'ec', () => randomBytes(64)],
    [
      'an RSA-PSS signature',
      'rsa',
      (k: Awaited<ReturnType<typeof device>>) => sign('sha256', DATA, { key: k.key.privateKey, padding: 6 }),
    ],
  ] as const)('rejects %s with bad_signature', async (_name, keyType, make) => {
    const k = await device(keyType);
    const error = expectTerminal(
      () => verifyProofOfPossession({ spkiDer: k.spkiDer, data: DATA, signature: new Uint8Array(make(k)), keyType }),
      'bad_signature',
    );
    expect(error.userMessage).toBe("The device's proof-of-possession signature could not be verified.");
  });

  it('rejects a signature made for the other key type', async () => {
    const { key, spkiDer } = await device('ec');
    const signature = new Uint8Array(sign('sha256', DATA, key.privateKey));
    expectTerminal(() => verifyProofOfPossession({ spkiDer, data: DATA, signature, keyType: 'rsa' }), 'bad_signature');
  });

  it('applies the key policy first (RSA-1024 → key_policy)', async () => {
    const key = (await testKeyPool()).next('rsa-1024');
    const signature = new Uint8Array(sign('sha256', DATA, key.privateKey));
    expectTerminal(
      () => verifyProofOfPossession({ spkiDer: new Uint8Array(key.spkiDer), data: DATA, signature, keyType: 'rsa' }),
      'key_policy',
    );
  });
});

describe('ECDSA signature encodings', () => {
  it.each([
    ['P-256', 32],
    ['P-384', 48],
    ['P-521', 66],
  ] as const)('converts %s signatures raw → DER → raw, and node verifies both forms', (curve, size) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    for (let i = 0; i < 20; i += 1) {
      const raw = new Uint8Array(sign(null, DATA, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
      expect(raw.length).toBe(2 * size);
      const der = ecdsaRawToDer(raw);
      expect(verify(null, DATA, { key: publicKey, dsaEncoding: 'der' }, der)).toBe(true);
      expect(ecdsaDerToRaw(der, size)).toEqual(raw);
    }
  });

  it('encodes components with leading zeros and high bits minimally', () => {
    const raw = new Uint8Array(64);
    raw[31] = 0x01; // r = 1
    raw[32] = 0x80; // s has its top bit set → needs a 0x00 sign octet
    expect(Buffer.from(ecdsaRawToDer(raw)).toString('hex')).toBe('3026020101022100' + '80' + '00'.repeat(31));
    expect(ecdsaDerToRaw(ecdsaRawToDer(raw), 32)).toEqual(raw);
  });

  it.each([
    ['odd raw length', () => ecdsaRawToDer(new Uint8Array(63))],
    [
      'a component longer than the curve',
      () => ecdsaDerToRaw(sequence(unsignedInteger(new Uint8Array(33).fill(1)), unsignedInteger(Uint8Array.of(1))), 32),
    ],
    ['a negative component', () => ecdsaDerToRaw(Uint8Array.from(Buffer.from('3006020180020101', 'hex')), 32)],
    ['a non-minimal component', () => ecdsaDerToRaw(Uint8Array.from(Buffer.from('300702020001020101', 'hex')), 32)],
    ['three components', () => ecdsaDerToRaw(Uint8Array.from(Buffer.from('3009020101020101020101', 'hex')), 32)],
    ['trailing bytes', () => ecdsaDerToRaw(Uint8Array.from(Buffer.from('300602010102010100', 'hex')), 32)],
  ])('rejects %s', (_name, fn) => {
    expect(fn).toThrow(DerError);
  });
});
