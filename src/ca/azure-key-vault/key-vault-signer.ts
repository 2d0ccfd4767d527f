/**
 * Key Vault keys as certificate signers: the public half of a vault key, and the signing algorithm it implies.
 * Signing itself goes through the shared digest signer (src/pki/signer.ts): hash the TBS locally, have the vault
 * sign the digest (`POST /keys/{name}/{version}/sign`; Key Vault signs what it is given and does not hash again),
 * raw r||s turned into DER.
 */
import type { JsonWebKey as NodeJsonWebKey } from 'node:crypto';
import type { SigningAlgorithm } from '../../pki/signature-algorithms.ts';

/** The fields of a Key Vault JSON Web Key this backend reads (the SDK decodes base64url into bytes). */
export interface KeyVaultJwk {
  readonly kty?: string;
  readonly crv?: string;
  readonly n?: Uint8Array;
  readonly e?: Uint8Array;
  readonly x?: Uint8Array;
  readonly y?: Uint8Array;
}

/** `EC-HSM` → `EC`, `RSA-HSM` → `RSA`: the protection level does not change the public key. */
function baseKeyType(kty: string | undefined): 'EC' | 'RSA' | undefined {
  if (kty === 'EC' || kty === 'EC-HSM') return 'EC';
  if (kty === 'RSA' || kty === 'RSA-HSM') return 'RSA';
  return undefined;
}

const b64url = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString('base64url');

/** The public half of a Key Vault key as a node JWK (for createPublicKey). */
export function publicJwkOf(key: KeyVaultJwk): NodeJsonWebKey {
  const kty = baseKeyType(key.kty);
  if (kty === 'EC') return { kty, crv: key.crv, x: b64url(key.x), y: b64url(key.y) };
  if (kty === 'RSA') return { kty, n: b64url(key.n), e: b64url(key.e) };
  throw new Error(`key type ${key.kty ?? 'unknown'} cannot sign certificates (EC or RSA needed)`);
}

/** EC keys sign with the hash that fits their curve; RSA keys with the configured scheme. */
export function signingAlgorithmFor(key: KeyVaultJwk, rsaAlgorithm: 'RS256' | 'PS256'): SigningAlgorithm {
  const kty = baseKeyType(key.kty);
  if (kty === 'RSA') return rsaAlgorithm;
  if (kty === 'EC') {
    switch (key.crv) {
      case 'P-256':
        return 'ES256';
      case 'P-384':
        return 'ES384';
      case 'P-521':
        return 'ES512';
      default:
        throw new Error(`EC curve ${key.crv ?? 'unknown'} is not supported for certificates (P-256, P-384, P-521)`);
    }
  }
  throw new Error(`key type ${key.kty ?? 'unknown'} cannot sign certificates (EC or RSA needed)`);
}
