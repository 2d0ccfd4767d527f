import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../src/errors.ts';
import { describeDeviceKey, parseDeviceKey, publicKeyFromSpki } from '../../../src/pki/device-key.ts';
import { testKeyPool } from '../../support/keys.ts';

function spkiOf(publicKey: KeyObject): Uint8Array {
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

function refusal(spki: Uint8Array): TerminalError {
  try {
    parseDeviceKey(spki);
  } catch (error) {
    expect(error).toBeInstanceOf(TerminalError);
    return error as TerminalError;
  }
  throw new Error('the key was accepted');
}

describe('device key policy (DESIGN.md §5)', () => {
  it('accepts RSA-2048 and reports its size and exponent', async () => {
    const key = (await testKeyPool()).next('rsa-2048');
    const info = parseDeviceKey(key.spkiDer);
    expect(info).toEqual({ type: 'rsa', modulusBits: 2048, publicExponent: 65537 });
    expect(describeDeviceKey(info)).toBe('RSA-2048');
  });

  it('accepts EC P-256', async () => {
    const key = (await testKeyPool()).next('ec-p256');
    const info = parseDeviceKey(key.spkiDer);
    expect(info).toEqual({ type: 'ec', namedCurve: 'P-256' });
    expect(describeDeviceKey(info)).toBe('EC P-256');
  });

  it('refuses RSA-1024 with a user message and a detailed log message', async () => {
    const error = refusal((await testKeyPool()).next('rsa-1024').spkiDer);
    expect(error.reason).toBe('key_policy');
    expect(error.userMessage).toBe(
      "This device's key is not allowed (RSA keys need at least 2048 bits; EC keys must use P-256).",
    );
    expect(error.message).toMatch(/RSA-1024/);
  });

  it.each([
    ['EC P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, /P-384/],
    ['EC P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey, /P-521/],
    ['EC secp256k1', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey, /secp256k1/],
    ['Ed25519', () => generateKeyPairSync('ed25519').publicKey, /ed25519/],
  ])('refuses %s', (_name, make, detail) => {
    const error = refusal(spkiOf(make()));
    expect(error.reason).toBe('key_policy');
    expect(error.message).toMatch(detail);
  });

  it('refuses bytes that are not a key, with the parse problem in the detail', async () => {
    const good = (await testKeyPool()).next('ec-p256').spkiDer;
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /could not be parsed/],
      [Uint8Array.from(Buffer.from('not a key at all')), /could not be parsed/],
      [Uint8Array.from([...good, 0x00]), /trailing bytes/],
      [good.subarray(0, good.length - 1), /past the end/],
    ];
    for (const [spki, detail] of cases) {
      const error = refusal(spki);
      expect(error.reason).toBe('key_policy');
      expect(error.message).toMatch(detail);
    }
    // A point that is not on the curve: flip a byte of the public key.
    const offCurve = Uint8Array.from(good);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 0x01;
    expect(refusal(offCurve).reason).toBe('key_policy');
  });

  it('gives the same answer for the same key bytes every time, however often it is asked (keys are reused)', async () => {
    const pool = await testKeyPool();
    const rsa = pool.next('rsa-2048').spkiDer;
    const ec = pool.next('ec-p256').spkiDer;
    const small = pool.next('rsa-1024').spkiDer;
    for (let round = 0; round < 3; round += 1) {
      // A copy in another buffer, at an offset: the bytes decide, not the buffer.
      const padded = new Uint8Array(rsa.length + 7);
      padded.set(rsa, 7);
      expect(parseDeviceKey(padded.subarray(7))).toEqual({ type: 'rsa', modulusBits: 2048, publicExponent: 65537 });
      expect(parseDeviceKey(ec)).toEqual({ type: 'ec', namedCurve: 'P-256' });
      expect(publicKeyFromSpki(ec).export({ type: 'spki', format: 'der' })).toEqual(Buffer.from(ec));
      // A refused key stays refused: loading it is remembered, the policy is applied each time.
      expect(refusal(small).reason).toBe('key_policy');
      expect(() => publicKeyFromSpki(Uint8Array.from([...ec, 0x00]))).toThrow(/trailing bytes/);
    }
    // More distinct keys than are remembered: the first ones are loaded again and still right.
    for (let i = 0; i < 600; i += 1) {
      const other = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
      expect(parseDeviceKey(other)).toEqual({ type: 'ec', namedCurve: 'P-256' });
    }
    expect(parseDeviceKey(rsa)).toEqual({ type: 'rsa', modulusBits: 2048, publicExponent: 65537 });
  });
});
