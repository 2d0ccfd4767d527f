/**
 * Signature algorithms by their JOSE names (as Key Vault's sign API uses them), with their X.509
 * AlgorithmIdentifiers and local sign/verify through node:crypto. ECDSA signatures are DER here, as X.509 and
 * PKCS#10 carry them; raw r||s (Key Vault, some devices) is converted in proof-of-possession.ts.
 */
import { constants, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { encodeOid, nullValue, sequence, smallInteger, tlv, contextConstructed } from './der.ts';

export type SigningAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
];

type Hash = 'sha256' | 'sha384' | 'sha512';

interface AlgorithmInfo {
  readonly family: 'rsa-pkcs1' | 'rsa-pss' | 'ecdsa';
  readonly hash: Hash;
  readonly hashOid: string;
  readonly hashBytes: number;
  /** Signature OID (for PSS: id-RSASSA-PSS, the hash goes into the parameters). */
  readonly oid: string;
  /** ECDSA: length of r and s in raw r||s form. */
  readonly componentBytes?: number;
}

const HASH_OIDS: Record<Hash, string> = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};

const ALGORITHMS: Readonly<Record<SigningAlgorithm, AlgorithmInfo>> = {
  RS256: {
    family: 'rsa-pkcs1',
    hash: 'sha256',
    hashOid: HASH_OIDS.sha256,
    hashBytes: 32,
    oid: '1.2.840.113549.1.1.11',
  },
  RS384: {
    family: 'rsa-pkcs1',
    hash: 'sha384',
    hashOid: HASH_OIDS.sha384,
    hashBytes: 48,
    oid: '1.2.840.113549.1.1.12',
  },
  RS512: {
    family: 'rsa-pkcs1',
    hash: 'sha512',
    hashOid: HASH_OIDS.sha512,
    hashBytes: 64,
    oid: '1.2.840.113549.1.1.13',
  },
  PS256: { family: 'rsa-pss', hash: 'sha256', hashOid: HASH_OIDS.sha256, hashBytes: 32, oid: '1.2.840.113549.1.1.10' },
  PS384: { family: 'rsa-pss', hash: 'sha384', hashOid: HASH_OIDS.sha384, hashBytes: 48, oid: '1.2.840.113549.1.1.10' },
  PS512: { family: 'rsa-pss', hash: 'sha512', hashOid: HASH_OIDS.sha512, hashBytes: 64, oid: '1.2.840.113549.1.1.10' },
  ES256: {
    family: 'ecdsa',
    hash: 'sha256',
    hashOid: HASH_OIDS.sha256,
    hashBytes: 32,
    oid: '1.2.840.10045.4.3.2',
    componentBytes: 32,
  },
  ES384: {
    family: 'ecdsa',
    hash: 'sha384',
    hashOid: HASH_OIDS.sha384,
    hashBytes: 48,
    oid: '1.2.840.10045.4.3.3',
    componentBytes: 48,
  },
  ES512: {
    family: 'ecdsa',
    hash: 'sha512',
    hashOid: HASH_OIDS.sha512,
    hashBytes: 64,
    oid: '1.2.840.10045.4.3.4',
    componentBytes: 66,
  },
};

const MGF1_OID = '1.2.840.113549.1.1.8';

export function algorithmInfo(algorithm: SigningAlgorithm): AlgorithmInfo {
  return ALGORITHMS[algorithm];
}

/** The hash the algorithm signs over; a remote signer that takes a digest (Key Vault) computes it with this. */
export function hashOf(algorithm: SigningAlgorithm): Hash {
  return ALGORITHMS[algorithm].hash;
}

/**
 * DER AlgorithmIdentifier for the signature field of a certificate or CSR.
 * RSA PKCS#1 v1.5 carries NULL parameters (RFC 4055 §5); ECDSA none (RFC 5758 §3.2); PSS its hash, MGF1 with
 * the same hash and a salt as long as the hash (RFC 4055 §3.1; what Key Vault's PS256 produces).
 */
export function signatureAlgorithmIdentifier(algorithm: SigningAlgorithm): Uint8Array {
  const info = ALGORITHMS[algorithm];
  switch (info.family) {
    case 'rsa-pkcs1':
      return sequence(encodeOid(info.oid), nullValue());
    case 'ecdsa':
      return sequence(encodeOid(info.oid));
    case 'rsa-pss': {
      const hashId = sequence(encodeOid(info.hashOid), nullValue());
      return sequence(
        encodeOid(info.oid),
        sequence(
          tlv(contextConstructed(0), hashId),
          tlv(contextConstructed(1), sequence(encodeOid(MGF1_OID), hashId)),
          tlv(contextConstructed(2), smallInteger(info.hashBytes)),
        ),
      );
    }
  }
}

function keyOptions(algorithm: SigningAlgorithm, key: KeyObject) {
  const info = ALGORITHMS[algorithm];
  if (info.family === 'ecdsa') return { key, dsaEncoding: 'der' as const };
  if (info.family === 'rsa-pss') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.hashBytes };
  return { key, padding: constants.RSA_PKCS1_PADDING };
}

/** Whether the key type fits the algorithm family (an RSA-PSS-only key signs only PS*). */
export function keyFitsAlgorithm(key: KeyObject, algorithm: SigningAlgorithm): boolean {
  const family = ALGORITHMS[algorithm].family;
  const type = key.asymmetricKeyType;
  return family === 'ecdsa'
    ? type === 'ec'
    : family === 'rsa-pss'
      ? type === 'rsa' || type === 'rsa-pss'
      : type === 'rsa';
}

/** Signs locally; ECDSA signatures come out DER-encoded. */
export function signWithKey(algorithm: SigningAlgorithm, privateKey: KeyObject, data: Uint8Array): Uint8Array {
  if (!keyFitsAlgorithm(privateKey, algorithm)) {
    throw new Error(`a ${privateKey.asymmetricKeyType ?? 'unknown'} key cannot sign ${algorithm}`);
  }
  return new Uint8Array(nodeSign(ALGORITHMS[algorithm].hash, data, keyOptions(algorithm, privateKey)));
}

/** Verifies a signature (DER for ECDSA); false for a wrong signature or a key that does not fit the algorithm. */
export function verifyWithKey(
  algorithm: SigningAlgorithm,
  publicKey: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!keyFitsAlgorithm(publicKey, algorithm)) return false;
  try {
    return nodeVerify(ALGORITHMS[algorithm].hash, data, keyOptions(algorithm, publicKey), signature);
  } catch {
    // OpenSSL throws on some malformed signatures (wrong length); that is a failed verification.
    return false;
  }
}

/** The natural algorithm for a CA key: RS256 for RSA, PS256 for RSA-PSS, ES256/384/512 by curve. */
export function defaultAlgorithmForKey(key: KeyObject): SigningAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      throw new Error(`EC curve ${curve ?? 'unknown'} is not supported for signing`);
    }
    default:
      throw new Error(`${key.asymmetricKeyType ?? 'unknown'} keys are not supported for signing`);
  }
}
