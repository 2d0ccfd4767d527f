/**
 * PEM (RFC 7468) and base64 helpers. Strict on purpose: a certificate or key file with garbage in it is a broken
 * deployment, and a base64 field from a remote API that does not decode cleanly is a protocol error — both must
 * surface, not be silently "repaired" the way `Buffer.from(text, 'base64')` does (it skips invalid characters).
 */

/** Malformed PEM or base64 input. */
export class PemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PemError';
  }
}

/** Labels this project reads and writes. */
export type PemLabel =
  'CERTIFICATE' | 'CERTIFICATE REQUEST' | 'PRIVATE KEY' | 'PUBLIC KEY' | 'EC PRIVATE KEY' | 'RSA PRIVATE KEY';

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const STANDARD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64');
}

/** base64url without padding (RFC 7515 style, as Key Vault uses). */
export function encodeBase64Url(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64url');
}

function decodeStrict(text: string, alphabet: RegExp, what: string): Uint8Array {
  const unpadded = text.replace(/={1,2}$/, '');
  if (!alphabet.test(unpadded)) throw new PemError(`${what}: invalid characters`);
  if (unpadded.length % 4 === 1) throw new PemError(`${what}: invalid length`);
  if (unpadded.length !== text.length && text.length % 4 !== 0) throw new PemError(`${what}: invalid padding`);
  const bytes = Buffer.from(unpadded.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  // Canonical check: the unused bits of the last character must be zero, or two strings decode to the same bytes.
  if (bytes.toString('base64').replace(/=+$/, '') !== unpadded.replace(/-/g, '+').replace(/_/g, '/')) {
    throw new PemError(`${what}: non-canonical encoding`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes base64 as Google's JSON mapping of `bytes` fields allows it: standard or URL-safe alphabet, with or
 * without padding (proto3 JSON). Whitespace and any other character are rejected.
 */
export function decodeBase64(text: string): Uint8Array {
  const usesUrlAlphabet = /[-_]/.test(text);
  const usesStandardAlphabet = /[+/]/.test(text);
  if (usesUrlAlphabet && usesStandardAlphabet) throw new PemError('base64: mixes standard and URL-safe alphabets');
  return decodeStrict(text, usesUrlAlphabet ? URL_SAFE : STANDARD, 'base64');
}

/** Decodes base64url (URL-safe alphabet, padding optional). */
export function decodeBase64Url(text: string): Uint8Array {
  return decodeStrict(text, URL_SAFE, 'base64url');
}

/** One PEM block, 64-character lines, `\n` line ends, trailing newline. */
export function encodePem(label: PemLabel, der: Uint8Array): string {
  const body = encodeBase64(der).replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

const BOUNDARY = /^-----(BEGIN|END) ([A-Z0-9]+(?: [A-Z0-9]+)*)-----$/;

/**
 * Splits text holding one or more PEM blocks. Only whitespace may appear outside blocks; inside, only base64 lines
 * (RFC 7468 strict form, no RFC 1421 headers such as `Proc-Type`: encrypted legacy keys are not supported).
 */
export function splitPemBundle(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let label: string | undefined;
  let body = '';
  let lineNo = 0;
  for (const rawLine of text.split(/\r?\n/)) {
    lineNo += 1;
    const line = rawLine.trim();
    const boundary = BOUNDARY.exec(line);
    if (label === undefined) {
      if (line === '') continue;
      if (boundary === null || boundary[1] !== 'BEGIN') {
        throw new PemError(`line ${lineNo}: text outside a PEM block`);
      }
      label = boundary[2];
      body = '';
    } else if (boundary !== null) {
      if (boundary[1] !== 'END' || boundary[2] !== label) {
        throw new PemError(`line ${lineNo}: expected "-----END ${label}-----"`);
      }
      if (body === '') throw new PemError(`line ${lineNo}: empty ${label} block`);
      if (body.length % 4 !== 0) throw new PemError(`${label} block: base64 body is not padded`);
      let der: Uint8Array;
      try {
        der = decodeStrict(body, STANDARD, `${label} block`);
      } catch (error) {
        throw new PemError(`line ${lineNo}: ${(error as Error).message}`);
      }
      blocks.push({ label, der });
      label = undefined;
    } else if (line !== '') {
      if (line.includes(':')) throw new PemError(`line ${lineNo}: PEM headers are not supported (encrypted key?)`);
      if (/=/.test(body)) throw new PemError(`line ${lineNo}: base64 continues after padding`);
      body += line;
    }
  }
  if (label !== undefined) throw new PemError(`unterminated ${label} block`);
  return blocks;
}

/** Decodes text that must hold exactly one PEM block with the given label. */
export function decodePem(text: string, expectedLabel: PemLabel): Uint8Array {
  const blocks = splitPemBundle(text);
  if (blocks.length !== 1) throw new PemError(`expected one ${expectedLabel} block, found ${blocks.length} blocks`);
  const [block] = blocks as [PemBlock];
  if (block.label !== expectedLabel) throw new PemError(`expected a ${expectedLabel} block, found ${block.label}`);
  return block.der;
}

/** Accepts PEM text (one block of `label`) or DER bytes; returns DER. */
export function derFrom(input: string | Uint8Array, label: PemLabel): Uint8Array {
  return typeof input === 'string' ? decodePem(input, label) : input;
}
