/**
 * A small DER writer and a strict DER reader for the pieces that must be byte-exact.
 *
 * `@peculiar/asn1-schema` is the project's ASN.1 toolkit for *structures* (extension values, parsing
 * certificates), but it re-encodes what it parses and does not sort `SET OF` members. Three things must never be
 * re-encoded: the CertificationRequestInfo the device signed (DESIGN.md §1: the CSR reuses the exact bytes), the
 * device's SubjectPublicKeyInfo (the leaf must carry it byte for byte) and the issuer's Name (name chaining). Those
 * are assembled here from raw TLVs, and untrusted input (signData read back from Chrome, SPKIs, certificates) is
 * walked with a reader that rejects BER-only forms: indefinite or non-minimal lengths, trailing bytes.
 */

/** Malformed DER. The message says what and where; it never contains the input bytes. */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** Universal and context tags used in this project. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific constructed tag `[n]` (EXPLICIT or IMPLICIT of a constructed type). */
export function contextConstructed(n: number): number {
  return 0xa0 | n;
}

/** Context-specific primitive tag `[n]` (IMPLICIT of a primitive type, e.g. GeneralName's rfc822Name). */
export function contextPrimitive(n: number): number {
  return 0x80 | n;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** DER length octets: short form below 128, otherwise the minimal long form. */
export function encodeLength(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new DerError(`invalid length ${length}`);
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One TLV with a single-byte tag. */
export function tlv(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  const body = concatBytes(contents);
  return concatBytes([Uint8Array.of(tag), encodeLength(body.length), body]);
}

export function sequence(...elements: readonly Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, ...elements);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** `SET OF`: DER (X.690 §11.6) orders the members by their encodings. */
export function setOf(elements: readonly Uint8Array[], tag: number = TAG.SET): Uint8Array {
  return tlv(tag, ...[...elements].sort(compareBytes));
}

export function encodeOid(dotted: string): Uint8Array {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new DerError(`invalid OID "${dotted}"`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [first, second] = arcs as [bigint, bigint];
  if (first < 2n && second > 39n) throw new DerError(`invalid OID "${dotted}"`);
  const out: number[] = [];
  for (const arc of [first * 40n + second, ...arcs.slice(2)]) {
    const chunk: number[] = [];
    let rest = arc;
    do {
      chunk.unshift(Number(rest & 0x7fn) | (chunk.length === 0 ? 0 : 0x80));
      rest >>= 7n;
    } while (rest > 0n);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** INTEGER from unsigned big-endian magnitude bytes: strips redundant zeros, adds one when the top bit is set. */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start += 1;
  const trimmed = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  const needsPad = ((trimmed[0] as number) & 0x80) !== 0;
  return tlv(TAG.INTEGER, needsPad ? Uint8Array.of(0) : new Uint8Array(0), trimmed);
}

export function smallInteger(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new DerError(`smallInteger takes a non-negative integer, got ${value}`);
  const bytes: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return unsignedInteger(Uint8Array.from(bytes));
}

export function boolean(value: boolean): Uint8Array {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
}

export function nullValue(): Uint8Array {
  return Uint8Array.of(TAG.NULL, 0);
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** BIT STRING of whole octets (signatures, public keys): zero unused bits. */
export function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.BIT_STRING, Uint8Array.of(0), bytes);
}

/**
 * A named-bit BIT STRING (KeyUsage) from the numbers of the bits that are set. DER (X.690 §11.2.2) drops trailing
 * zero bits, so the unused-bits count depends on the highest bit set.
 */
export function namedBitString(bits: readonly number[]): Uint8Array {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Uint8Array.of(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)] = (bytes[Math.floor(bit / 8)] as number) | (0x80 >> (bit % 8));
  const unused = 7 - (highest % 8);
  return tlv(TAG.BIT_STRING, Uint8Array.of(unused), bytes);
}

const textEncoder = new TextEncoder();

export function utf8String(value: string): Uint8Array {
  return tlv(TAG.UTF8_STRING, textEncoder.encode(value));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
// eslint-disable-next-line no-control-regex
const IA5 = /^[\x00-\x7f]*$/;

export function printableString(value: string): Uint8Array {
  if (!PRINTABLE.test(value)) throw new DerError('value contains characters outside PrintableString');
  return tlv(TAG.PRINTABLE_STRING, textEncoder.encode(value));
}

export function ia5String(value: string): Uint8Array {
  if (!IA5.test(value)) throw new DerError('value contains characters outside IA5String');
  return tlv(TAG.IA5_STRING, textEncoder.encode(value));
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * X.509 Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050, whole seconds, `Z`.
 * Sub-second parts are truncated, never rounded up (a notAfter must not move past the value it was capped at).
 */
export function x509Time(date: Date): Uint8Array {
  const t = date.getTime();
  if (!Number.isFinite(t)) throw new DerError('invalid date');
  const year = date.getUTCFullYear();
  const rest =
    pad(date.getUTCMonth() + 1, 2) +
    pad(date.getUTCDate(), 2) +
    pad(date.getUTCHours(), 2) +
    pad(date.getUTCMinutes(), 2) +
    pad(date.getUTCSeconds(), 2) +
    'Z';
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, textEncoder.encode(pad(year % 100, 2) + rest));
  if (year < 0 || year > 9999) throw new DerError(`year ${year} cannot be encoded`);
  return tlv(TAG.GENERALIZED_TIME, textEncoder.encode(pad(year, 4) + rest));
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

/** One element as found in the input; `bytes` is the whole TLV and `contents` its value, both views, not copies. */
export interface DerElement {
  readonly tag: number;
  readonly constructed: boolean;
  /** The whole TLV (tag, length, contents). */
  readonly bytes: Uint8Array;
  readonly contents: Uint8Array;
}

/** Reads the TLV that starts at `offset`; rejects multi-byte tags, indefinite and non-minimal lengths, overruns. */
export function readElement(input: Uint8Array, offset = 0): DerElement {
  if (offset >= input.length) throw new DerError(`expected an element at offset ${offset}, found end of data`);
  const tag = input[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at offset ${offset} is not supported`);
  if (offset + 1 >= input.length) throw new DerError(`truncated length at offset ${offset + 1}`);
  const first = input[offset + 1] as number;
  let length: number;
  let header: number;
  if (first < 0x80) {
    length = first;
    header = 2;
  } else if (first === 0x80) {
    throw new DerError(`indefinite length at offset ${offset + 1} (BER, not DER)`);
  } else {
    const count = first & 0x7f;
    if (count > 4) throw new DerError(`length of ${count} octets at offset ${offset + 1} is too large`);
    if (offset + 2 + count > input.length) throw new DerError(`truncated length at offset ${offset + 1}`);
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + (input[offset + 2 + i] as number);
    if (input[offset + 2] === 0 || length < 0x80) {
      throw new DerError(`non-minimal length encoding at offset ${offset + 1} (BER, not DER)`);
    }
    header = 2 + count;
  }
  const end = offset + header + length;
  if (end > input.length) throw new DerError(`element at offset ${offset} runs past the end of the data`);
  return {
    tag,
    constructed: (tag & 0x20) !== 0,
    bytes: input.subarray(offset, end),
    contents: input.subarray(offset + header, end),
  };
}

/** Reads exactly one element that spans the whole input (no trailing bytes). */
export function readSingle(input: Uint8Array, expectedTag?: number, what = 'element'): DerElement {
  const element = readElement(input, 0);
  if (element.bytes.length !== input.length) {
    throw new DerError(`${what}: ${input.length - element.bytes.length} trailing bytes after the DER element`);
  }
  if (expectedTag !== undefined && element.tag !== expectedTag) {
    throw new DerError(`${what}: expected tag 0x${expectedTag.toString(16)}, found 0x${element.tag.toString(16)}`);
  }
  return element;
}

/** The elements inside a constructed element's contents, in order. */
export function readChildren(parent: DerElement | Uint8Array): DerElement[] {
  const contents = parent instanceof Uint8Array ? parent : parent.contents;
  const children: DerElement[] = [];
  for (let offset = 0; offset < contents.length;) {
    const child = readElement(contents, offset);
    children.push(child);
    offset += child.bytes.length;
  }
  return children;
}

/** Walks every constructed element recursively, so a structure is well-formed DER all the way down. */
export function assertWellFormed(element: DerElement, depth = 0): void {
  if (depth > 32) throw new DerError('DER nesting deeper than 32 levels');
  if (!element.constructed) return;
  for (const child of readChildren(element)) assertWellFormed(child, depth + 1);
}

/** Decodes an OBJECT IDENTIFIER element to dotted form. */
export function decodeOid(element: DerElement): string {
  if (element.tag !== TAG.OID)
    throw new DerError(`expected OBJECT IDENTIFIER, found tag 0x${element.tag.toString(16)}`);
  const bytes = element.contents;
  if (bytes.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: bigint[] = [];
  let value = 0n;
  let startOfArc = true;
  for (const byte of bytes) {
    if (startOfArc && byte === 0x80) throw new DerError('non-minimal OBJECT IDENTIFIER arc');
    value = (value << 7n) | BigInt(byte & 0x7f);
    startOfArc = (byte & 0x80) === 0;
    if (startOfArc) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (!startOfArc) throw new DerError('truncated OBJECT IDENTIFIER');
  const head = arcs[0] as bigint;
  const [a, b] = head < 40n ? [0n, head] : head < 80n ? [1n, head - 40n] : [2n, head - 80n];
  return [a, b, ...arcs.slice(1)].join('.');
}

/** Magnitude of a non-negative INTEGER (leading sign octet removed); rejects negative and non-minimal encodings. */
export function decodeUnsignedInteger(element: DerElement): Uint8Array {
  if (element.tag !== TAG.INTEGER) throw new DerError(`expected INTEGER, found tag 0x${element.tag.toString(16)}`);
  const c = element.contents;
  if (c.length === 0) throw new DerError('empty INTEGER');
  if (((c[0] as number) & 0x80) !== 0) throw new DerError('negative INTEGER');
  if (c.length > 1 && c[0] === 0 && ((c[1] as number) & 0x80) === 0) throw new DerError('non-minimal INTEGER');
  return c[0] === 0 && c.length > 1 ? c.subarray(1) : c;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
