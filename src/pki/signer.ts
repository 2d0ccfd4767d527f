/**
 * Signing of X.509 "to be signed" structures — TBSCertificate, TBSCertList, CertificationRequestInfo — through a
 * signer whose key may live anywhere: in memory (local CA), in Azure Key Vault, in Cloud KMS (DESIGN.md §10).
 *
 * All three structures end the same way: `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }`, and all
 * three repeat the algorithm inside the TBS, so the signer states its algorithm before anything is built. Whatever
 * a signer returns is verified against the public key that must have made it before the signed bytes leave
 * {@link signAndVerify}: a remote signer that answers with garbage, or a key that does not belong to the CA
 * certificate, is caught here, not by a device or a RADIUS server.
 */
import { createHash, KeyObject, type webcrypto } from 'node:crypto';
import { bitString, sequence } from './der.ts';
import { publicKeyFromSpki } from './device-key.ts';
import { ecdsaRawToDer } from './proof-of-possession.ts';
import {
  algorithmInfo,
  defaultAlgorithmForKey,
  hashOf,
  signWithKey,
  signatureAlgorithmIdentifier,
  verifyWithKey,
  type SigningAlgorithm,
} from './signature-algorithms.ts';

/** Signs DER "to be signed" bytes. ECDSA signatures come back DER-encoded (ECDSA-Sig-Value), as X.509 needs. */
export interface TbsSigner {
  /** Fixed for the signer's life: the TBS carries it before it is signed. */
  readonly algorithm: SigningAlgorithm;
  /** @param signal cancels a remote call (shutdown, lost lease). */
  sign(tbsDer: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
}

/** A signer over a local private key (node KeyObject or WebCrypto CryptoKey). Default algorithm: by key type. */
export function signerFromPrivateKey(key: KeyObject | webcrypto.CryptoKey, algorithm?: SigningAlgorithm): TbsSigner {
  const keyObject = key instanceof KeyObject ? key : KeyObject.from(key);
  if (keyObject.type !== 'private') throw new Error('signerFromPrivateKey needs a private key');
  const alg = algorithm ?? defaultAlgorithmForKey(keyObject);
  return {
    algorithm: alg,
    sign: (tbsDer) => Promise.resolve(signWithKey(alg, keyObject, tbsDer)),
  };
}

/** The signer's result does not verify against the expected key: a broken signer or a key/certificate mismatch. */
export class SignatureMismatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SignatureMismatchError';
  }
}

/**
 * How a remote key service returns ECDSA signatures: `raw` r||s (JOSE style: Key Vault) or `der`
 * ECDSA-Sig-Value (Cloud KMS). RSA signatures are the same in both.
 */
export type EcdsaEncoding = 'raw' | 'der';

export interface DigestSignerOptions {
  readonly algorithm: SigningAlgorithm;
  readonly ecdsaEncoding: EcdsaEncoding;
  /** Names the service in error messages (`Key Vault`, `Cloud KMS`). */
  readonly service: string;
  /** Signs a digest (made with the algorithm's hash) remotely; returns the signature bytes as the service sent them. */
  signDigest(digest: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array>;
}

/**
 * A signer for a key service that signs a digest and does not hash again (Key Vault `sign`, Cloud KMS
 * `AsymmetricSign`): hash the TBS locally, one remote call, raw ECDSA turned into DER.
 */
export function digestSigner(options: DigestSignerOptions): TbsSigner {
  const info = algorithmInfo(options.algorithm);
  return {
    algorithm: options.algorithm,
    async sign(tbsDer, signal) {
      const digest = new Uint8Array(createHash(hashOf(options.algorithm)).update(tbsDer).digest());
      const signature = await options.signDigest(digest, signal);
      if (info.family !== 'ecdsa' || options.ecdsaEncoding === 'der') return signature;
      const expected = 2 * (info.componentBytes ?? 0);
      if (signature.length !== expected) {
        throw new SignatureMismatchError(
          `${options.service} returned a ${signature.length}-byte ${options.algorithm} signature; raw r||s must be ${expected} bytes`,
        );
      }
      return ecdsaRawToDer(signature);
    },
  };
}

export interface SignedStructure {
  /** `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }`: a Certificate, CertificateList or CSR. */
  readonly der: Uint8Array;
  readonly algorithm: SigningAlgorithm;
  /** DER AlgorithmIdentifier of {@link algorithm}. */
  readonly signatureAlgorithm: Uint8Array;
  /** The verified signature (DER for ECDSA). */
  readonly signature: Uint8Array;
}

/**
 * Signs `tbsDer` (whose own signature field must already say `signer.algorithm`), verifies the signature with
 * `verifierSpkiDer` (the CA certificate's key, or the key itself for a self-signed certificate or a CSR) and wraps
 * both into the signed structure.
 * @throws SignatureMismatchError when the signature does not verify.
 */
export async function signAndVerify(
  tbsDer: Uint8Array,
  signer: TbsSigner,
  verifierSpkiDer: Uint8Array,
  signal?: AbortSignal,
): Promise<SignedStructure> {
  const signature = await signer.sign(tbsDer, signal);
  if (!verifyWithKey(signer.algorithm, publicKeyFromSpki(verifierSpkiDer), tbsDer, signature)) {
    throw new SignatureMismatchError(
      `the ${signer.algorithm} signature from the signer does not verify against the issuer's public key ` +
        '(wrong key, wrong algorithm, or a raw ECDSA signature where DER is needed)',
    );
  }
  const signatureAlgorithm = signatureAlgorithmIdentifier(signer.algorithm);
  return {
    der: sequence(tbsDer, signatureAlgorithm, bitString(signature)),
    algorithm: signer.algorithm,
    signatureAlgorithm,
    signature,
  };
}
