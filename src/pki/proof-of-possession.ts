/**
 * Proof of possession: the device's signature over the CertificationRequestInfo it was sent must verify against
 * the process's SPKI before anything reaches a CA (DESIGN.md §1). RSA is PKCS#1 v1.5 with SHA-256; ECDSA is
 * P-256 with SHA-256, and the signature may arrive DER-encoded or as raw r||s (the reference notes leave the
 * encoding open), so both are accepted and the DER form — what PKCS#10 carries — is returned.
 */
import { TerminalError } from '../errors.ts';
import {
  DerError,
  TAG,
  concatBytes,
  decodeUnsignedInteger,
  readChildren,
  readSingle,
  sequence,
  unsignedInteger,
} from './der.ts';
import { parseDeviceKey, publicKeyFromSpki } from './device-key.ts';
import { verifyWithKey } from './signature-algorithms.ts';
import type { KeyType } from './types.ts';

/**
 * Raw r||s (IEEE P1363, JOSE, Key Vault) → DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
 * Works for every curve size: r and s are each half of the input (32 bytes for P-256, 48 for P-384, 66 for P-521).
 */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new DerError(`raw ECDSA signature has odd length ${raw.length}`);
  const half = raw.length / 2;
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}

/**
 * DER ECDSA-Sig-Value → raw r||s with each component left-padded to `componentLength` bytes (32 for P-256, 48 for
 * P-384, 66 for P-521). Strict: one SEQUENCE of two minimal non-negative INTEGERs that fit, nothing appended.
 */
export function ecdsaDerToRaw(der: Uint8Array, componentLength: number): Uint8Array {
  const children = readChildren(readSingle(der, TAG.SEQUENCE, 'ECDSA signature'));
  if (children.length !== 2) throw new DerError('ECDSA signature is not SEQUENCE { r, s }');
  const parts = children.map((child) => {
    const magnitude = decodeUnsignedInteger(child);
    if (magnitude.length > componentLength)
      throw new DerError(`ECDSA signature component longer than ${componentLength} bytes`);
    const padded = new Uint8Array(componentLength);
    padded.set(magnitude, componentLength - magnitude.length);
    return padded;
  });
  return concatBytes(parts);
}

export interface ProofOfPossessionInput {
  /** The device SubjectPublicKeyInfo (DER) from the process. */
  readonly spkiDer: Uint8Array;
  /** The bytes the device was asked to sign (the DER CertificationRequestInfo). */
  readonly data: Uint8Array;
  /** The signature from the process resource. */
  readonly signature: Uint8Array;
  /** The key type the signature algorithm was chosen for; must match the SPKI. */
  readonly keyType: KeyType;
}

function badSignature(detail: string, cause?: unknown): TerminalError {
  return new TerminalError(`proof of possession failed: ${detail}`, {
    reason: 'bad_signature',
    cause,
  });
}

/** P-256 raw signatures are r||s of 32 bytes each. */
const P256_RAW_LENGTH = 64;

/**
 * Verifies the device's signature and returns it in the form the CSR needs (DER for ECDSA, unchanged for RSA).
 * @throws TerminalError `bad_signature` when it does not verify; `key_policy` when the SPKI is outside policy.
 */
export function verifyProofOfPossession(input: ProofOfPossessionInput): Uint8Array {
  const key = parseDeviceKey(input.spkiDer);
  if (key.type !== input.keyType) {
    throw badSignature(`signature made for a ${input.keyType} key, but the device key is ${key.type}`);
  }
  const publicKey = publicKeyFromSpki(input.spkiDer);
  if (key.type === 'rsa') {
    if (!verifyWithKey('RS256', publicKey, input.data, input.signature)) {
      throw badSignature(`RSA PKCS#1 v1.5 SHA-256 signature (${input.signature.length} bytes) does not verify`);
    }
    return input.signature;
  }
  // ECDSA: try the DER reading first, then raw r||s. Either way the CSR gets a canonical DER re-encoding, so
  // a signature with BER quirks cannot make the CSR differ from what a strict parser expects.
  const candidates: Uint8Array[] = [];
  try {
    candidates.push(ecdsaRawToDer(ecdsaDerToRaw(input.signature, P256_RAW_LENGTH / 2)));
  } catch {
    // not DER
  }
  if (input.signature.length === P256_RAW_LENGTH) candidates.push(ecdsaRawToDer(input.signature));
  if (candidates.length === 0) {
    throw badSignature(`ECDSA signature of ${input.signature.length} bytes is neither DER nor raw r||s`);
  }
  for (const der of candidates) {
    if (verifyWithKey('ES256', publicKey, input.data, der)) return der;
  }
  throw badSignature(`ECDSA P-256 SHA-256 signature (${input.signature.length} bytes) does not verify`);
}
