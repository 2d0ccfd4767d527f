/**
 * The Cloud KMS-held issuing CA (`type: google-kms`). Like the Key Vault CA, the CA's key signs and never leaves
 * KMS (software or HSM protection); the certificate is built here (src/ca/issuing-core.ts). For each device:
 *
 *   TBSCertificate from the profile and the device SPKI → SHA-2 digest locally → one `AsymmetricSign` on the pinned
 *   key version (digest CRC32C sent, answer's CRC32C fields checked) → DER signature verified locally against the
 *   CA certificate.
 *
 * The CA certificate comes from a file (the parent CA signed the CSR `certprov kms-ca csr` wrote) and is checked
 * once, at the first load, to hold exactly the key version's public key. Signing is repeatable, so there is no
 * order guard (DESIGN.md §5); every issued certificate is logged with its serial, process id and key version.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DeploymentFaultError, describeError } from '../../errors.ts';
import { parseCertificate, type ParsedCertificate } from '../../pki/certificate-builder.ts';
import { buildSignedCertificationRequest } from '../../pki/certification-request.ts';
import { bytesEqual } from '../../pki/der.ts';
import { encodePem } from '../../pki/pem.ts';
import { hashOf, type SigningAlgorithm } from '../../pki/signature-algorithms.ts';
import type { DistinguishedName } from '../../pki/types.ts';
import { digestSigner, type TbsSigner } from '../../pki/signer.ts';
import { GoogleRequestRefused, classifyGoogleError, type GoogleAuthLike } from '../google-cloud.ts';
import {
  ISSUING_CA_PROFILE_HINT,
  IssuingMaterialCache,
  caCertificateProblem,
  leafIssuingProblem,
  type IssuingCa,
} from '../issuing-core.ts';
import type { BackgroundWork, CaDependencies, CertificateAuthority, Probe, StepContext } from '../types.ts';
import { RemoteKeyCa } from '../remote-key-ca.ts';
import { createKmsClient, type KmsClient, type KmsDigest } from './client.ts';
import type { KmsCaConfig } from './config.ts';
import { DAY_MS } from '../../time.ts';

/** The role that allows AsymmetricSign and GetPublicKey on a key. */
export const KMS_SIGNER_ROLE = 'roles/cloudkms.signerVerifier';

/** Cloud KMS signing algorithms this CA can put into certificates, by CryptoKeyVersionAlgorithm. */
const KMS_ALGORITHMS: Readonly<Record<string, SigningAlgorithm>> = {
  EC_SIGN_P256_SHA256: 'ES256',
  EC_SIGN_P384_SHA384: 'ES384',
  RSA_SIGN_PKCS1_2048_SHA256: 'RS256',
  RSA_SIGN_PKCS1_3072_SHA256: 'RS256',
  RSA_SIGN_PKCS1_4096_SHA256: 'RS256',
  RSA_SIGN_PKCS1_4096_SHA512: 'RS512',
  // KMS's PSS uses MGF1 with the same hash and a salt as long as the digest: what PS256/PS512 encode.
  RSA_SIGN_PSS_2048_SHA256: 'PS256',
  RSA_SIGN_PSS_3072_SHA256: 'PS256',
  RSA_SIGN_PSS_4096_SHA256: 'PS256',
  RSA_SIGN_PSS_4096_SHA512: 'PS512',
};

/** The signing algorithm of a KMS key version, or undefined when it cannot sign certificates. */
export function signingAlgorithmOfKms(kmsAlgorithm: string): SigningAlgorithm | undefined {
  return KMS_ALGORITHMS[kmsAlgorithm];
}

export interface KmsCaOptions {
  /** Credentials; default Application Default Credentials (Workload Identity). */
  readonly auth?: GoogleAuthLike;
  /** A ready client (tests); default the official client. */
  readonly client?: KmsClient;
  /** Clock for issuance. Default `() => new Date()`. */
  readonly now?: () => Date;
}

export interface KmsIssuingMaterial extends IssuingCa {
  readonly certificatePem: string;
  readonly keyVersion: string;
  /** `SOFTWARE`, `HSM`, … */
  readonly protectionLevel: string;
  readonly kmsAlgorithm: string;
}

function fault(message: string, hint?: string, cause?: unknown): DeploymentFaultError {
  return new DeploymentFaultError(message, { component: 'google-kms', hint, cause });
}

/** Normalised DER SPKI of a PEM public key or a certificate's SPKI, so encodings that differ in form compare equal. */
function normalisedSpki(key: string | Uint8Array): Uint8Array {
  const object =
    typeof key === 'string'
      ? createPublicKey(key)
      : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
  return new Uint8Array(object.export({ type: 'spki', format: 'der' }));
}

/** A KMS failure → outcome class. For a CA that builds its own certificates nothing KMS refuses is the device's fault. */
export function kmsError(error: unknown, action: string, keyVersion: string): Error {
  const classified = classifyGoogleError(error, {
    component: 'google-kms',
    service: 'Cloud KMS',
    action,
    role: KMS_SIGNER_ROLE,
    resource: keyVersion,
  });
  if (classified instanceof GoogleRequestRefused) {
    return fault(
      `${classified.message}`,
      'the key version must be ENABLED, with purpose ASYMMETRIC_SIGN and an EC or RSA signing algorithm',
      error,
    );
  }
  return classified;
}

function digestOf(algorithm: SigningAlgorithm, digest: Uint8Array): KmsDigest {
  const hash = hashOf(algorithm);
  return hash === 'sha256' ? { sha256: digest } : hash === 'sha384' ? { sha384: digest } : { sha512: digest };
}

/**
 * A signer over one key version: the digest signed with one AsymmetricSign (CRC32C both ways, client.ts); KMS
 * answers ECDSA in DER already.
 * @param fallbackSignal used when a caller passes none (background work ends with the connection).
 * @param onCall counts calls (the benchmark's numerator).
 */
export function kmsSigner(
  client: KmsClient,
  keyVersion: string,
  algorithm: SigningAlgorithm,
  fallbackSignal: AbortSignal,
  onCall: () => void = () => undefined,
): TbsSigner {
  return digestSigner({
    algorithm,
    ecdsaEncoding: 'der',
    service: 'Cloud KMS',
    signDigest: async (digest, signal) => {
      onCall();
      try {
        return await client.asymmetricSign(keyVersion, digestOf(algorithm, digest), signal ?? fallbackSignal);
      } catch (error) {
        throw kmsError(error, `AsymmetricSign on ${keyVersion}`, keyVersion);
      }
    },
  });
}

/** The key version's public key (GetPublicKey, CRC32C checked) and the certificate signature algorithm it implies. */
async function readSigningKey(client: KmsClient, keyVersion: string, signal: AbortSignal) {
  const publicKey = await client
    .getPublicKey(keyVersion, signal)
    .catch((error: unknown) => Promise.reject(kmsError(error, `GetPublicKey of ${keyVersion}`, keyVersion)));
  const algorithm = signingAlgorithmOfKms(publicKey.algorithm);
  if (algorithm === undefined) {
    throw fault(
      `${keyVersion} has algorithm ${publicKey.algorithm}, which cannot sign X.509 certificates here`,
      'use an ASYMMETRIC_SIGN key with EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, RSA_SIGN_PKCS1_* or RSA_SIGN_PSS_*',
    );
  }
  let spkiDer: Uint8Array;
  try {
    spkiDer = normalisedSpki(publicKey.pem);
  } catch (error) {
    throw fault(
      `${keyVersion}: the public key KMS returned cannot be read (${describeError(error)})`,
      undefined,
      error,
    );
  }
  return { publicKey, algorithm, spkiDer };
}

export interface KmsCsr {
  readonly pem: string;
  readonly algorithm: SigningAlgorithm;
  readonly kmsAlgorithm: string;
  readonly protectionLevel: string;
}

/**
 * `certprov kms-ca csr`: a PKCS#10 request for the key version's public key, with `subject`, signed through KMS
 * (one AsymmetricSign) and verified against the public key before it is returned. The parent CA signs it as a CA
 * certificate; that certificate becomes `caCertificateFile`.
 */
export async function kmsCertificationRequest(
  client: KmsClient,
  keyVersion: string,
  subject: DistinguishedName,
  signal: AbortSignal,
): Promise<KmsCsr> {
  const { publicKey, algorithm, spkiDer } = await readSigningKey(client, keyVersion, signal);
  const der = await buildSignedCertificationRequest({
    subject,
    spkiDer,
    signer: kmsSigner(client, keyVersion, algorithm, signal),
    signal,
  });
  return {
    pem: encodePem('CERTIFICATE REQUEST', der),
    algorithm,
    kmsAlgorithm: publicKey.algorithm,
    protectionLevel: publicKey.protectionLevel,
  };
}

export class KmsCa extends RemoteKeyCa<KmsIssuingMaterial> implements CertificateAuthority, BackgroundWork, Probe {
  readonly type = 'google-kms';
  readonly name: string;
  readonly config: KmsCaConfig;
  protected readonly deps: CaDependencies;
  protected readonly label = 'Cloud KMS CA';
  protected readonly component = 'google-kms';
  readonly #client: KmsClient;
  readonly #now: () => Date;
  readonly #material = new IssuingMaterialCache<KmsIssuingMaterial>((signal) => this.#load(signal));
  #signCalls = 0;

  private constructor(name: string, config: KmsCaConfig, deps: CaDependencies, client: KmsClient, now: () => Date) {
    super();
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.#client = client;
    this.#now = now;
  }

  /** Builds the connection; no network traffic yet (a KMS outage at start-up must not crash-loop every pod). */
  static async create(
    name: string,
    config: KmsCaConfig,
    deps: CaDependencies,
    options: KmsCaOptions = {},
  ): Promise<KmsCa> {
    const client =
      options.client ??
      (await createKmsClient({ endpoint: config.endpoint, auth: options.auth, timeoutMs: config.requestTimeout }));
    return new KmsCa(name, config, deps, client, options.now ?? (() => new Date()));
  }

  /** AsymmetricSign calls this connection has sent (successful or not); the benchmark's numerator. */
  get signCalls(): number {
    return this.#signCalls;
  }

  /** Warms the cache in the background so the first device does not wait. */
  start(): Promise<void> {
    this.#material.warm(this.deps.log, this.name, 'Cloud KMS CA', (material) => ({
      keyVersion: material.keyVersion,
      algorithm: material.signer.algorithm,
      protectionLevel: material.protectionLevel,
      notAfter: material.certificate.notAfter.toISOString(),
    }));
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.#material.close('Cloud KMS CA closed');
    await this.#client.close();
  }

  /** The cached issuing material; loads it (once, shared by concurrent callers) when missing or after a failure. */
  material(signal: AbortSignal): Promise<KmsIssuingMaterial> {
    return this.#material.get(signal);
  }

  async #load(signal: AbortSignal): Promise<KmsIssuingMaterial> {
    const keyVersion = this.config.keyVersion;
    const file = path.resolve(this.deps.baseDir, this.config.caCertificateFile);
    let certificate: ParsedCertificate;
    try {
      certificate = parseCertificate(await readFile(file, 'utf8'));
    } catch (error) {
      throw fault(
        `caCertificateFile ${file} is not one readable PEM certificate (${describeError(error)})`,
        'write the certificate the parent CA issued for the CSR of `certprov kms-ca csr`',
        error,
      );
    }
    const problem = caCertificateProblem(certificate, this.#now());
    if (problem === 'not-ca') {
      throw fault(
        `caCertificateFile ${file} is not a CA certificate (basicConstraints cA is not set)`,
        'have the parent CA sign the CSR with basicConstraints=critical,CA:true,pathlen:0 and keyUsage=critical,keyCertSign,cRLSign',
      );
    }
    if (problem === 'expired') {
      throw fault(
        `caCertificateFile ${file}: the CA certificate expired at ${certificate.notAfter.toISOString()}`,
        'rotate the CA: a new key version, `certprov kms-ca csr`, the parent signs, new caCertificateFile',
      );
    }
    const { publicKey, algorithm, spkiDer: keySpki } = await readSigningKey(this.#client, keyVersion, signal);
    if (!bytesEqual(keySpki, normalisedSpki(certificate.spkiDer))) {
      throw fault(
        `${keyVersion} is not the key of the CA certificate ${file}`,
        'configure the certificate the parent CA issued for this key version (`certprov kms-ca csr` for a new one)',
      );
    }
    const chainPem = [encodePem('CERTIFICATE', certificate.der), ...(await this.loadChain(certificate))];
    const unfit = leafIssuingProblem(chainPem);
    if (unfit !== undefined) {
      throw fault(
        `caCertificateFile ${file} ${unfit}`,
        `${ISSUING_CA_PROFILE_HINT}; then configure it as caCertificateFile`,
      );
    }
    return {
      certificate,
      certificatePem: encodePem('CERTIFICATE', certificate.der),
      chainPem,
      keyVersion,
      protectionLevel: publicKey.protectionLevel,
      kmsAlgorithm: publicKey.algorithm,
      signer: this.signerFor(algorithm),
    };
  }

  /** A signer over the pinned key version: one AsymmetricSign per TBS (certificates, CRLs). */
  signerFor(algorithm: SigningAlgorithm): TbsSigner {
    return kmsSigner(this.#client, this.config.keyVersion, algorithm, this.#material.signal, () => {
      this.#signCalls += 1;
    });
  }

  protected now(): Date {
    return this.#now();
  }

  protected issueHints(material: KmsIssuingMaterial): { signatureMismatch: string; expired: string } {
    return {
      signatureMismatch: `the signature came from ${material.keyVersion}: the key version and caCertificateFile do not belong together`,
      expired: 'rotate the CA: a new key version, `certprov kms-ca csr`, the parent signs, new caCertificateFile',
    };
  }

  /** `check-config --probe`: reads the public key afresh and checks it against the CA certificate; signs nothing. */
  async probe(ctx: StepContext): Promise<string> {
    const material = await this.#load(ctx.signal);
    const remainingDays = Math.floor((material.certificate.notAfter.getTime() - this.#now().getTime()) / DAY_MS);
    return (
      `Cloud KMS CA ${material.keyVersion} (${material.kmsAlgorithm}, ${material.protectionLevel}): ` +
      `CA certificate valid until ${material.certificate.notAfter.toISOString()} (${remainingDays} days)`
    );
  }
}
