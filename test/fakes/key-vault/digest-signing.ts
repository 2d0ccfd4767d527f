/**
 * Signing a *precomputed digest*, the way Key Vault's `/keys/{name}/{version}/sign` does (it never hashes again).
 * node:crypto always hashes its input (`crypto.sign(null, …)` still applies SHA-256 to EC and RSA keys), so:
 *
 * - RS256/384/512: EMSA-PKCS1-v1_5 — DigestInfo(hash OID, digest) under RSA private-key type-1 padding
 *   (`privateEncrypt` with RSA_PKCS1_PADDING does exactly that padding);
 * - PS256/384/512: EMSA-PSS-ENCODE (RFC 8017 §9.1.1; MGF1 with the same hash, salt as long as the hash, which is
 *   what Key Vault uses) and the raw RSA private operation (`privateEncrypt` with RSA_NO_PADDING);
 * - ES256/384/512: ECDSA (FIPS 186-4 §6.4) with BigInt arithmetic; the one expensive step, k·G, is done natively by
 *   ECDH (`setPrivateKey(k)` then the public key is k·G). The result is raw r||s, as Key Vault returns it.
 *
 * The tests check every algorithm against node's own verify over the undigested data, so the fake cannot drift.
 */
import { constants, createECDH, createHash, privateEncrypt, randomBytes, type KeyObject } from 'node:crypto';

export type DigestAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

type Hash = 'sha256' | 'sha384' | 'sha512';

const HASH_OF: Record<DigestAlgorithm, Hash> = {
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
};

const HASH_BYTES: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** The digest length the algorithm takes: Key Vault rejects any other. */
export function digestLength(algorithm: DigestAlgorithm): number {
  return HASH_BYTES[HASH_OF[algorithm]];
}

/** DER prefix of DigestInfo { AlgorithmIdentifier(hash, NULL), OCTET STRING(digest) } (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Record<Hash, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

interface Curve {
  readonly ecdh: string;
  readonly n: bigint;
  readonly bytes: number;
  readonly bits: number;
}

const CURVES: Record<string, Curve> = {
  'P-256': {
    ecdh: 'prime256v1',
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    bytes: 32,
    bits: 256,
  },
  'P-384': {
    ecdh: 'secp384r1',
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    bytes: 48,
    bits: 384,
  },
  'P-521': {
    ecdh: 'secp521r1',
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    bytes: 66,
    bits: 521,
  },
};

/** The curve of an EC key in JOSE naming, or undefined. */
export function curveOf(key: KeyObject): string | undefined {
  const named = key.asymmetricKeyDetails?.namedCurve;
  return named === 'prime256v1'
    ? 'P-256'
    : named === 'secp384r1'
      ? 'P-384'
      : named === 'secp521r1'
        ? 'P-521'
        : undefined;
}

const toBigInt = (bytes: Uint8Array): bigint =>
  bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);

function toBytes(value: bigint, length: number): Buffer {
  return Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');
}

function mod(a: bigint, n: bigint): bigint {
  const r = a % n;
  return r < 0n ? r + n : r;
}

function modPow(base: bigint, exponent: bigint, n: bigint): bigint {
  let result = 1n;
  let b = mod(base, n);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % n;
    b = (b * b) % n;
  }
  return result;
}

function ecdsaSignDigest(privateKey: KeyObject, digest: Uint8Array): Buffer {
  const curve = CURVES[curveOf(privateKey) ?? ''];
  if (curve === undefined) throw new Error('unsupported curve');
  const jwk = privateKey.export({ format: 'jwk' });
  const d = toBigInt(Buffer.from(jwk.d ?? '', 'base64url'));
  // z: the leftmost min(bits(n), bits(digest)) bits of the digest (FIPS 186-4 §6.4).
  let z = toBigInt(digest);
  const excess = digest.length * 8 - curve.bits;
  if (excess > 0) z >>= BigInt(excess);
  for (;;) {
    const k = mod(toBigInt(randomBytes(curve.bytes + 8)), curve.n - 1n) + 1n;
    const ecdh = createECDH(curve.ecdh);
    ecdh.setPrivateKey(toBytes(k, curve.bytes));
    const point = ecdh.getPublicKey(); // 0x04 || X || Y, X = (k·G).x
    const r = mod(toBigInt(point.subarray(1, 1 + curve.bytes)), curve.n);
    if (r === 0n) continue;
    const s = mod(modPow(k, curve.n - 2n, curve.n) * (z + r * d), curve.n);
    if (s === 0n) continue;
    return Buffer.concat([toBytes(r, curve.bytes), toBytes(s, curve.bytes)]);
  }
}

function mgf1(hash: Hash, seed: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 0; blocks.length * HASH_BYTES[hash] < length; counter += 1) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    blocks.push(createHash(hash).update(seed).update(c).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

function pssEncode(hash: Hash, mHash: Uint8Array, modulusBits: number): Buffer {
  const hLen = HASH_BYTES[hash];
  const emBits = modulusBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(hLen);
  const h = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - hLen - hLen - 2), Buffer.from([0x01]), salt]);
  const mask = mgf1(hash, h, emLen - hLen - 1);
  const maskedDb = Buffer.from(db.map((byte, i) => byte ^ (mask[i] as number)));
  maskedDb[0] = (maskedDb[0] as number) & (0xff >> (8 * emLen - emBits));
  const em = Buffer.concat([maskedDb, h, Buffer.from([0xbc])]);
  // The RSA primitive takes an input as long as the modulus.
  const k = Math.ceil(modulusBits / 8);
  return em.length < k ? Buffer.concat([Buffer.alloc(k - em.length), em]) : em;
}

/** Signs `digest` (already hashed) with `privateKey` as Key Vault would; ECDSA comes out raw r||s. */
export function signDigest(algorithm: DigestAlgorithm, privateKey: KeyObject, digest: Uint8Array): Buffer {
  const hash = HASH_OF[algorithm];
  if (digest.length !== HASH_BYTES[hash]) throw new Error(`digest must be ${HASH_BYTES[hash]} bytes`);
  if (algorithm.startsWith('ES')) return ecdsaSignDigest(privateKey, digest);
  if (algorithm.startsWith('RS')) {
    const info = Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash], 'hex'), digest]);
    return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, info);
  }
  const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
  return privateEncrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, pssEncode(hash, digest, bits));
}
