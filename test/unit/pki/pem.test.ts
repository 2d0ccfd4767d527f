import { describe, expect, it } from 'vitest';
import {
  PemError,
  decodeBase64,
  decodeBase64Url,
  decodePem,
  encodeBase64,
  encodeBase64Url,
  encodePem,
  splitPemBundle,
} from '../../../src/pki/pem.ts';

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff);

describe('PEM', () => {
  it('round-trips DER through encodePem/decodePem with 64-character lines', () => {
    const der = bytes(200);
    const pem = encodePem('CERTIFICATE', der);
    const lines = pem.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-1)).toBe('-----END CERTIFICATE-----');
    expect(lines.slice(1, -1).every((l, i, all) => (i < all.length - 1 ? l.length === 64 : l.length <= 64))).toBe(true);
    expect(pem.endsWith('\n')).toBe(true);
    expect(decodePem(pem, 'CERTIFICATE')).toEqual(der);
  });

  it('splits a bundle with CRLF line ends and blank lines between blocks', () => {
    const text = `\r\n${encodePem('CERTIFICATE', bytes(10))}\r\n\r\n${encodePem('PRIVATE KEY', bytes(70))}`.replace(
      /\n/g,
      '\r\n',
    );
    const blocks = splitPemBundle(text);
    expect(blocks.map((b) => b.label)).toEqual(['CERTIFICATE', 'PRIVATE KEY']);
    expect(blocks[1]?.der).toEqual(bytes(70));
  });

  it('returns no blocks for whitespace only', () => {
    expect(splitPemBundle(' \n\n')).toEqual([]);
  });

  const good = encodePem('CERTIFICATE', bytes(50));
  const body = good.split('\n').slice(1, -2).join('\n');
  it.each([
    ['text before the block', `garbage\n${good}`, /outside a PEM block/],
    ['text after the block', `${good}trailing text\n`, /outside a PEM block/],
    [
      'an END label that does not match',
      good.replace('END CERTIFICATE', 'END PRIVATE KEY'),
      /expected "-----END CERTIFICATE-----"/,
    ],
    ['a missing END line', good.replace('-----END CERTIFICATE-----\n', ''), /unterminated/],
    ['an empty block', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', /empty/],
    ['a character outside base64', good.replace(/^(.{40})./m, '$1*'), /invalid characters/],
    [
      'RFC 1421 headers (encrypted key)',
      `-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n${body}\n-----END RSA PRIVATE KEY-----\n`,
      /headers/,
    ],
    ['base64 that is not padded', '-----BEGIN CERTIFICATE-----\nQUJDRA\n-----END CERTIFICATE-----\n', /not padded/],
    ['data after the padding', '-----BEGIN CERTIFICATE-----\nQQ==\nQUJD\n-----END CERTIFICATE-----\n', /after padding/],
    ['a lower-case label', good.replace(/CERTIFICATE/g, 'certificate'), /outside a PEM block/],
  ])('rejects %s', (_name, text, message) => {
    expect(() => splitPemBundle(text)).toThrow(PemError);
    expect(() => splitPemBundle(text)).toThrow(message);
  });

  it('decodePem insists on exactly one block of the expected label', () => {
    expect(() => decodePem(good + good, 'CERTIFICATE')).toThrow(/found 2 blocks/);
    expect(() => decodePem(good, 'CERTIFICATE REQUEST')).toThrow(
      /expected a CERTIFICATE REQUEST block, found CERTIFICATE/,
    );
    expect(() => decodePem('', 'CERTIFICATE')).toThrow(/found 0 blocks/);
  });
});

describe('base64', () => {
  it.each([0, 1, 2, 3, 4, 31, 32, 33])('round-trips %i bytes in both alphabets', (n) => {
    const data = bytes(n);
    expect(decodeBase64(encodeBase64(data))).toEqual(data);
    expect(decodeBase64Url(encodeBase64Url(data))).toEqual(data);
    expect(encodeBase64Url(data)).not.toMatch(/[=+/]/);
  });

  it('accepts what proto3 JSON allows for bytes: standard or URL-safe, with or without padding', () => {
    const data = Uint8Array.of(0xfb, 0xff, 0xbf, 0x01);
    expect(decodeBase64('+/+/AQ==')).toEqual(data);
    expect(decodeBase64('+/+/AQ')).toEqual(data);
    expect(decodeBase64('-_-_AQ==')).toEqual(data);
    expect(decodeBase64('-_-_AQ')).toEqual(data);
  });

  it.each([
    ['whitespace', 'QUJD RA=='],
    ['a newline', 'QUJD\nRA=='],
    ['an invalid character', 'QUJD*A=='],
    ['mixed alphabets', '+/-_'],
    ['a length that cannot be base64', 'QUJDR'],
    ['too much padding', 'QUJD===='],
    ['padding in the middle', 'QQ==QUJD'],
    ['wrong padding length', 'QUJDRA='],
    ['non-zero unused bits (non-canonical)', 'QR=='],
  ])('decodeBase64 rejects %s', (_name, text) => {
    expect(() => decodeBase64(text)).toThrow(PemError);
  });

  it('decodeBase64Url rejects the standard alphabet', () => {
    expect(() => decodeBase64Url('+/+/')).toThrow(PemError);
  });
});
