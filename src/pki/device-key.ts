/**
 * The device key policy (DESIGN.md §5): RSA with a 2048–8192-bit modulus, or EC on P-256. Everything else — small
 * RSA, other curves, Ed25519, RSA-PSS-only keys, bytes that are not a key — is refused before signData is ever
 * asked for, as a `key_policy` TerminalError (the user's wording is in src/user-messages.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { TerminalError } from '../errors.ts';
import { DerError, TAG, assertWellFormed, readSingle } from './der.ts';
import type { DeviceKeyInfo } from './types.ts';

/** Smallest RSA modulus accepted (NIST SP 800-131A). */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus accepted: bigger keys are not a ChromeOS thing and only cost CPU in verification. */
export const MAX_RSA_BITS = 8192;
/** The one curve ChromeOS keys use and the policy allows. */
export const ALLOWED_CURVE = 'P-256';

function refuse(detail: string, cause?: unknown): TerminalError {
  return new TerminalError(`device key outside policy: ${detail}`, {
    reason: 'key_policy',
    cause,
  });
}

/** OpenSSL curve names → NIST names, for messages. */
const CURVE_NAMES: Readonly<Record<string, string>> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

/**
 * Keys loaded lately, by their DER (base64), least recently used first. One process loads its device key in four
 * places (start, the signature check twice, issue) and createPublicKey is the costly part of each; a key is a pure
 * function of its bytes and a KeyObject is immutable, so the result is shared. Bounded: a miss only costs the load.
 */
const recentKeys = new Map<string, { readonly key: KeyObject; info?: DeviceKeyInfo }>();
const RECENT_KEYS_MAX = 512;

function loadKey(spkiDer: Uint8Array): { readonly key: KeyObject; info?: DeviceKeyInfo } {
  const id = Buffer.from(spkiDer.buffer, spkiDer.byteOffset, spkiDer.byteLength).toString('base64');
  const cached = recentKeys.get(id);
  if (cached !== undefined) {
    recentKeys.delete(id);
    recentKeys.set(id, cached);
    return cached;
  }
  const element = readSingle(spkiDer, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  assertWellFormed(element);
  const entry = { key: createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' }) };
  if (recentKeys.size >= RECENT_KEYS_MAX) recentKeys.delete(recentKeys.keys().next().value as string);
  recentKeys.set(id, entry);
  return entry;
}

/** Loads a DER SubjectPublicKeyInfo as a public key, after checking it is well-formed DER with nothing appended. */
export function publicKeyFromSpki(spkiDer: Uint8Array): KeyObject {
  return loadKey(spkiDer).key;
}

/**
 * Parses the device's SubjectPublicKeyInfo (DER) and enforces the key policy.
 * @throws TerminalError with reason `key_policy` when the key is not allowed or not a key at all.
 */
export function parseDeviceKey(spkiDer: Uint8Array): DeviceKeyInfo {
  let loaded: { readonly key: KeyObject; info?: DeviceKeyInfo };
  try {
    loaded = loadKey(spkiDer);
  } catch (error) {
    const what = error instanceof DerError ? error.message : 'not a SubjectPublicKeyInfo the crypto library can load';
    throw refuse(`the subjectPublicKeyInfo could not be parsed (${what})`, error);
  }
  loaded.info ??= Object.freeze(keyPolicy(loaded.key));
  return loaded.info;
}

/** The key's type and size when the policy allows it. */
function keyPolicy(key: KeyObject): DeviceKeyInfo {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const modulusBits = details.modulusLength ?? 0;
      const exponent = details.publicExponent ?? 0n;
      if (modulusBits < MIN_RSA_BITS || modulusBits > MAX_RSA_BITS) {
        throw refuse(`RSA-${modulusBits}; RSA keys must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
      }
      // An even or tiny exponent is not an RSA key anyone generated in good faith.
      if (exponent < 3n || exponent % 2n === 0n || exponent > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw refuse(`RSA public exponent ${exponent} is not acceptable`);
      }
      return { type: 'rsa', modulusBits, publicExponent: Number(exponent) };
    }
    case 'ec': {
      const curve = details.namedCurve ?? 'unknown';
      const namedCurve = CURVE_NAMES[curve] ?? curve;
      if (namedCurve !== ALLOWED_CURVE) throw refuse(`EC key on ${namedCurve}; only ${ALLOWED_CURVE} is allowed`);
      return { type: 'ec', namedCurve };
    }
    default:
      throw refuse(`${key.asymmetricKeyType ?? 'unknown'} keys are not allowed; only RSA and EC P-256`);
  }
}

/** Short, non-personal description for logs and metrics: `RSA-2048`, `EC P-256`. */
export function describeDeviceKey(key: DeviceKeyInfo): string {
  return key.type === 'rsa' ? `RSA-${key.modulusBits}` : `EC ${key.namedCurve}`;
}
