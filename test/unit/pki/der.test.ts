import { describe, expect, it } from 'vitest';
import {
  DerError,
  TAG,
  decodeOid,
  decodeUnsignedInteger,
  encodeLength,
  encodeOid,
  namedBitString,
  readChildren,
  readElement,
  readSingle,
  sequence,
  setOf,
  toHex,
  unsignedInteger,
  utf8String,
  x509Time,
} from '../../../src/pki/der.ts';
import { openssl, withTempDir } from '../../support/openssl.ts';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s/g, ''), 'hex'));

describe('DER writer', () => {
  it.each([
    [0, '00'],
    [0x7f, '7f'],
    [0x80, '8180'],
    [0xff, '81ff'],
    [0x100, '820100'],
    [0x10000, '83010000'],
  ])('encodes length %i minimally', (length, expected) => {
    expect(toHex(encodeLength(length))).toBe(expected);
  });

  it.each([
    ['1.2.840.113549', '06062a864886f70d'],
    ['2.5.4.3', '0603550403'],
    ['1.3.6.1.4.1.311.20.2.3', '060a2b0601040182371402 03'.replace(' ', '')],
    ['2.999.1', '0603883701'],
  ])('encodes OID %s', (oid, expected) => {
    expect(toHex(encodeOid(oid))).toBe(expected);
    expect(decodeOid(readSingle(encodeOid(oid)))).toBe(oid);
  });

  it('rejects malformed OIDs', () => {
    expect(() => encodeOid('1')).toThrow(DerError);
    expect(() => encodeOid('1.02.3')).toThrow(DerError);
    expect(() => encodeOid('1.40.1')).toThrow(DerError);
    expect(() => encodeOid('3.1')).toThrow(DerError);
  });

  it('encodes unsigned integers minimally with a sign octet when needed', () => {
    expect(toHex(unsignedInteger(hex('0000ff')))).toBe('020200ff');
    expect(toHex(unsignedInteger(hex('7f')))).toBe('02017f');
    expect(toHex(unsignedInteger(hex('0000')))).toBe('020100');
  });

  it('sorts SET OF members by their encoding (X.690 §11.6)', () => {
    const z = utf8String('zzz');
    const a = utf8String('aaa');
    const long = utf8String('aaaa');
    expect(toHex(setOf([z, long, a]))).toBe(toHex(Uint8Array.of(0x31, 16, ...a, ...z, ...long)));
  });

  it('drops trailing zero bits of a named-bit BIT STRING', () => {
    expect(toHex(namedBitString([0]))).toBe('03020780');
    expect(toHex(namedBitString([0, 2]))).toBe('030205a0');
    expect(toHex(namedBitString([5, 6]))).toBe('03020106');
    expect(toHex(namedBitString([8]))).toBe('0303070080');
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', () => {
    expect(Buffer.from(readSingle(x509Time(new Date('2049-12-31T23:59:59.999Z'))).contents).toString()).toBe(
      '491231235959Z',
    );
    expect(readSingle(x509Time(new Date('2049-12-31T23:59:59Z'))).tag).toBe(TAG.UTC_TIME);
    const g = readSingle(x509Time(new Date('2050-01-01T00:00:00Z')));
    expect(g.tag).toBe(TAG.GENERALIZED_TIME);
    expect(Buffer.from(g.contents).toString()).toBe('20500101000000Z');
  });

  it('produces structures openssl parses as DER', async () => {
    const der = sequence(encodeOid('2.5.4.3'), utf8String('x'.repeat(300)), setOf([utf8String('b'), utf8String('a')]));
    await withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'x.der'), der);
      const result = await openssl(['asn1parse', '-inform', 'DER', '-in', 'x.der'], { cwd: dir });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/l= 300 prim: UTF8STRING/);
    });
  });
});

describe('DER reader', () => {
  it('reads nested elements as views of the input', () => {
    const input = sequence(utf8String('a'), sequence(utf8String('b')));
    const outer = readSingle(input, TAG.SEQUENCE);
    const [first, second] = readChildren(outer);
    expect(first?.tag).toBe(TAG.UTF8_STRING);
    expect(second?.bytes.buffer).toBe(input.buffer);
    expect(readChildren(second!)[0]?.contents).toEqual(Uint8Array.of(0x62));
  });

  it.each([
    ['indefinite length (BER)', '3080 0500 0000', /indefinite/],
    ['a non-minimal long length', '30 81 02 0500', /non-minimal/],
    ['a length with a leading zero octet', '30 82 0002 0500', /non-minimal/],
    ['an element running past the end', '30 05 0500', /past the end/],
    ['a truncated length', '30', /truncated/],
    ['a multi-byte tag', '1f81 00', /multi-byte tag/],
  ])('rejects %s', (_name, input, message) => {
    expect(() => readElement(hex(input))).toThrow(message);
  });

  it('readSingle rejects trailing bytes and a wrong tag', () => {
    expect(() => readSingle(hex('0500 00'))).toThrow(/1 trailing bytes/);
    expect(() => readSingle(hex('0500'), TAG.SEQUENCE)).toThrow(/expected tag 0x30/);
  });

  it('decodeUnsignedInteger rejects negative and non-minimal integers', () => {
    expect(decodeUnsignedInteger(readSingle(hex('020200ff')))).toEqual(Uint8Array.of(0xff));
    expect(() => decodeUnsignedInteger(readSingle(hex('0201ff')))).toThrow(/negative/);
    expect(() => decodeUnsignedInteger(readSingle(hex('0202007f')))).toThrow(/non-minimal/);
    expect(() => decodeUnsignedInteger(readSingle(hex('0200')))).toThrow(/empty/);
  });
});
