/**
 * The Key Vault-held issuing CA (`type: azure-key-vault`). Key Vault cannot sign a CSR for a key it does not hold,
 * and a ChromeOS device keeps its own key, so Key Vault holds the *CA's* key and signs certificate digests
 * (reference/azure-keyvault.md). For each device:
 *
 *   TBSCertificate from the profile and the device SPKI (src/pki/certificate-builder.ts) → SHA-2 digest locally →
 *   one `POST /keys/{name}/{version}/sign` → raw r||s to DER → verified locally against the cached CA key.
 *
 * The issuing material — CA certificate, its `kid`, the key's public half, the chain — is fetched once, from one
 * pinned object version, and cached for the life of the process: the version is immutable, and every extra call
 * would count against the vault's per-10-second budget (4,000 software / 2,000 HSM signs for RSA-2048 and EC).
 *
 * Signing is repeatable, so there is no order guard (DESIGN.md §5); every issued certificate is logged with its
 * serial, process id and the key version that signed it.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TokenCredential } from '@azure/identity';
import type { CertificateClient } from '@azure/keyvault-certificates';
import { CryptographyClient, type KeyClient, type KeyVaultKey, type SignatureAlgorithm } from '@azure/keyvault-keys';
import type { GoogleAuth } from 'google-auth-library';
import { DeploymentFaultError, describeError } from '../../errors.ts';
import type { Sleep } from '../../http/abortable-sleep.ts';
import { parseCertificate, type ParsedCertificate } from '../../pki/certificate-builder.ts';
import { bytesEqual } from '../../pki/der.ts';
import { encodePem } from '../../pki/pem.ts';
import type { SigningAlgorithm } from '../../pki/signature-algorithms.ts';
import { digestSigner, type TbsSigner } from '../../pki/signer.ts';
import { ISSUING_CA_PROFILE_HINT, IssuingMaterialCache, leafIssuingProblem } from '../issuing-core.ts';
import type {
  BackgroundWork,
  CaDependencies,
  CertificateAuthority,
  Probe,
  Revocation,
  CrlIssuer,
  StepContext,
} from '../types.ts';
import { RemoteKeyCa } from '../remote-key-ca.ts';
import type { KeyVaultCaConfig } from './config.ts';
import { createKeyVaultCredential } from './credential.ts';
import { callEnvironmentOf, callKeyVault, type KeyVaultCallEnvironment } from './key-vault-call.ts';
import {
  clientSettingsOf,
  createCertificateClient,
  createKeyClient,
  keyVaultClientOptions,
  parseKeyId,
  type KeyVaultClientSettings,
} from './client.ts';
import { publicJwkOf, signingAlgorithmFor } from './key-vault-signer.ts';
import { KEY_VAULT_OPERATIONS, type KeyVaultOperation } from './operations.ts';
import { DAY_MS } from '../../time.ts';

export interface KeyVaultCaOptions {
  /** The Entra credential. Default: built from `config.credential`. */
  readonly credential?: TokenCredential;
  /** `gke-federation`: Google credentials for the ID token. Default: Application Default Credentials. */
  readonly googleAuth?: GoogleAuth;
  /** Waits between retries. Default: a timer (tests inject a recorder). */
  readonly sleep?: Sleep;
  /** Jitter source, [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Clock for issuance. Default `() => new Date()`. */
  readonly now?: () => Date;
}

/** Everything needed to sign, from one pinned object version; loaded once. */
export interface IssuingMaterial {
  readonly certificate: ParsedCertificate;
  readonly certificatePem: string;
  /** The CA certificate first, then its parents from `chainFile`. */
  readonly chainPem: readonly string[];
  readonly algorithm: SigningAlgorithm;
  /** Full key id including the version: the only key this CA ever signs with. */
  readonly kid: string;
  readonly keyName: string;
  readonly keyVersion: string;
  /** `certificate issuing-ca version 3f…` or `key … + file …`, for messages. */
  readonly description: string;
  readonly crypto: CryptographyClient;
  /** Signs with exactly {@link kid}: one Key Vault sign per TBS (certificates, CRLs). */
  readonly signer: TbsSigner;
}

function fault(message: string, hint?: string, cause?: unknown): DeploymentFaultError {
  return new DeploymentFaultError(message, { component: 'keyvault', hint, cause });
}

export class KeyVaultCa
  extends RemoteKeyCa<IssuingMaterial>
  implements CertificateAuthority, BackgroundWork, Probe, Revocation, CrlIssuer
{
  readonly type = 'azure-key-vault';
  readonly name: string;
  readonly config: KeyVaultCaConfig;
  protected readonly deps: CaDependencies;
  protected readonly label = 'Key Vault CA';
  protected readonly component = 'keyvault';
  readonly #credential: TokenCredential;
  readonly #settings: KeyVaultClientSettings;
  readonly #callEnv: KeyVaultCallEnvironment;
  readonly #now: () => Date;
  readonly #keys: KeyClient;
  readonly #certificates: CertificateClient;
  readonly #material = new IssuingMaterialCache<IssuingMaterial>((signal) => this.#load(signal));
  #signCalls = 0;

  private constructor(
    name: string,
    config: KeyVaultCaConfig,
    deps: CaDependencies,
    credential: TokenCredential,
    options: KeyVaultCaOptions,
  ) {
    super();
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.#credential = credential;
    this.#now = options.now ?? (() => new Date());
    this.#settings = clientSettingsOf(config);
    this.#callEnv = callEnvironmentOf(config, this.#settings.vaultUrl, {
      metrics: deps.metrics,
      log: deps.log,
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
      ...(options.random === undefined ? {} : { random: options.random }),
    });
    this.#keys = createKeyClient(this.#settings, credential);
    this.#certificates = createCertificateClient(this.#settings, credential);
  }

  /**
   * Builds the connection; no network traffic yet (a vault outage at start-up must not crash-loop every pod —
   * DESIGN.md §6). The issuing material is loaded by {@link start} or the first {@link issue}.
   * @throws DeploymentFaultError when the credential's secret file cannot be read.
   */
  static async create(
    name: string,
    config: KeyVaultCaConfig,
    deps: CaDependencies,
    options: KeyVaultCaOptions = {},
  ): Promise<KeyVaultCa> {
    const credential =
      options.credential ??
      (await createKeyVaultCredential(config.credential, {
        baseDir: deps.baseDir,
        ...(options.googleAuth === undefined ? {} : { googleAuth: options.googleAuth }),
      }));
    return new KeyVaultCa(name, config, deps, credential, options);
  }

  /** Sign calls this connection has sent (successful or not); the benchmark's numerator. */
  get signCalls(): number {
    return this.#signCalls;
  }

  /** Warms the cache in the background so the first device does not wait. */
  start(): Promise<void> {
    this.#material.warm(this.deps.log, this.name, 'Key Vault CA', (material) => ({
      kid: material.kid,
      algorithm: material.algorithm,
      notAfter: material.certificate.notAfter.toISOString(),
      source: material.description,
    }));
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#material.close('Key Vault CA closed');
    return Promise.resolve();
  }

  /** The cached issuing material; loads it (once, shared by concurrent callers) when missing or after a failure. */
  material(signal: AbortSignal): Promise<IssuingMaterial> {
    return this.#material.get(signal);
  }

  #call<T>(operation: KeyVaultOperation, subject: string, signal: AbortSignal, run: (s: AbortSignal) => Promise<T>) {
    return callKeyVault(this.#callEnv, { operation, subject, signal, run });
  }

  async #load(signal: AbortSignal): Promise<IssuingMaterial> {
    const { certificate, certificatePem, keyName, keyVersion, description } =
      this.config.signingKey === undefined
        ? await this.#loadFromCertificate(signal)
        : await this.#loadFromFile(this.config.signingKey);
    if (!certificate.isCa) {
      throw fault(
        `${description}: the certificate is not a CA certificate (basicConstraints cA is not set)`,
        'have the parent CA sign the CSR with basicConstraints=critical,CA:true,pathlen:0 and keyUsage=critical,keyCertSign,cRLSign, then kv-ca merge it',
      );
    }
    if (certificate.notAfter.getTime() <= this.#now().getTime()) {
      throw fault(
        `${description}: the CA certificate expired at ${certificate.notAfter.toISOString()}`,
        'rotate the CA (docs/backends/azure-key-vault.md, Rotation)',
      );
    }

    const keySubject = `key ${keyName} version ${keyVersion}`;
    const key: KeyVaultKey = await this.#call(KEY_VAULT_OPERATIONS.getKey, keySubject, signal, (abortSignal) =>
      this.#keys.getKey(keyName, { version: keyVersion, abortSignal }),
    );
    if (key.properties.enabled === false) throw fault(`${keySubject} is disabled`, 'enable it, or pin another version');
    if (key.keyOperations !== undefined && !key.keyOperations.includes('sign')) {
      throw fault(`${keySubject} does not allow the sign operation (key_ops: ${key.keyOperations.join(', ')})`);
    }
    let algorithm: SigningAlgorithm;
    let keySpki: Uint8Array;
    try {
      algorithm = signingAlgorithmFor(key.key ?? {}, this.config.rsaSignatureAlgorithm);
      keySpki = new Uint8Array(
        createPublicKey({ key: publicJwkOf(key.key ?? {}), format: 'jwk' }).export({ type: 'spki', format: 'der' }),
      );
    } catch (error) {
      throw fault(`${keySubject}: ${describeError(error)}`, undefined, error);
    }
    const certificateSpki = new Uint8Array(
      createPublicKey({ key: Buffer.from(certificate.spkiDer), format: 'der', type: 'spki' }).export({
        type: 'spki',
        format: 'der',
      }),
    );
    if (!bytesEqual(keySpki, certificateSpki)) {
      throw fault(
        `${keySubject} is not the key of the CA certificate (${description})`,
        'pin the certificate version together with its own key (certificate mode does this by itself)',
      );
    }
    const chainPem = [certificatePem, ...(await this.loadChain(certificate))];
    // A CA certificate (or parent) that cannot issue device certificates is found now, not by a RADIUS server
    // rejecting every device.
    const problem = leafIssuingProblem(chainPem);
    if (problem !== undefined) {
      throw fault(`${description} ${problem}`, `${ISSUING_CA_PROFILE_HINT}; then kv-ca merge and pin the new version`);
    }
    // Built from the fetched key: the SDK then skips its own key lookup and signs at exactly this version's URL.
    const crypto = new CryptographyClient(key, this.#credential, keyVaultClientOptions(this.#settings));
    return {
      certificate,
      certificatePem,
      chainPem,
      algorithm,
      kid: key.id ?? `${this.#settings.vaultUrl}/keys/${keyName}/${keyVersion}`,
      keyName,
      keyVersion,
      description,
      crypto,
      signer: digestSigner({
        algorithm,
        ecdsaEncoding: 'raw',
        service: 'Key Vault',
        signDigest: async (digest, signal) => {
          this.#signCalls += 1;
          const result = await this.#call(
            KEY_VAULT_OPERATIONS.sign,
            keySubject,
            signal ?? this.#material.signal,
            (abortSignal) => crypto.sign(algorithm as SignatureAlgorithm, digest, { abortSignal }),
          );
          return result.result;
        },
      }),
    };
  }

  /** Certificate mode: `cer` and `kid` of the pinned version, from one `GET /certificates/{name}/{version}`. */
  async #loadFromCertificate(signal: AbortSignal) {
    const name = this.config.certificateName ?? '';
    const version = this.config.certificateVersion ?? '';
    const description = `certificate ${name} version ${version}`;
    const bundle = await this.#call(KEY_VAULT_OPERATIONS.getCertificate, description, signal, (abortSignal) =>
      this.#certificates.getCertificateVersion(name, version, { abortSignal }),
    );
    if (bundle.cer === undefined || bundle.cer.length === 0) {
      throw fault(
        `${description} holds no X.509 certificate yet: its pending request was never merged`,
        `run \`certprov kv-ca status\` and \`certprov kv-ca merge --chain FILE\`, or pin a merged version`,
      );
    }
    if (bundle.properties.enabled === false)
      throw fault(`${description} is disabled`, 'enable it, or pin another version');
    const kid = bundle.keyId === undefined ? undefined : parseKeyId(bundle.keyId);
    if (kid === undefined) throw fault(`${description} has no usable key id (kid: ${bundle.keyId ?? 'missing'})`);
    if (kid.version.toLowerCase() !== version.toLowerCase()) {
      // Key Vault gives a certificate version's key the same version id; anything else is not this CA's key.
      throw fault(`${description} points at key version ${kid.version}, not ${version}`);
    }
    let certificate: ParsedCertificate;
    try {
      certificate = parseCertificate(new Uint8Array(bundle.cer));
    } catch (error) {
      throw fault(`${description}: cer is not a certificate (${describeError(error)})`, undefined, error);
    }
    return {
      certificate,
      certificatePem: encodePem('CERTIFICATE', certificate.der),
      keyName: kid.name,
      keyVersion: kid.version,
      description,
    };
  }

  /** Signing-only mode (Managed HSM): the key by name and version, the certificate from a file. */
  async #loadFromFile(signingKey: { name: string; version: string }) {
    const file = path.resolve(this.deps.baseDir, this.config.caCertificateFile ?? '');
    const description = `key ${signingKey.name} version ${signingKey.version} with CA certificate ${file}`;
    let certificatePem: string;
    let certificate: ParsedCertificate;
    try {
      certificatePem = await readFile(file, 'utf8');
      certificate = parseCertificate(certificatePem);
    } catch (error) {
      throw fault(
        `caCertificateFile ${file} is not one readable PEM certificate (${describeError(error)})`,
        undefined,
        error,
      );
    }
    return {
      certificate,
      certificatePem: encodePem('CERTIFICATE', certificate.der),
      keyName: signingKey.name,
      keyVersion: signingKey.version,
      description,
    };
  }

  protected now(): Date {
    return this.#now();
  }

  protected issueHints(material: IssuingMaterial): { signatureMismatch: string; expired: string } {
    return {
      signatureMismatch: `the signature came from ${material.kid}: the pinned key and certificate do not belong together, or the vault answered with a different algorithm`,
      expired: 'rotate the CA (docs/backends/azure-key-vault.md, Rotation)',
    };
  }

  /** `check-config --probe`: reads the certificate and key afresh (certificates/get, keys/get); signs nothing. */
  async probe(ctx: StepContext): Promise<string> {
    const material = await this.#load(ctx.signal);
    const remainingDays = Math.floor((material.certificate.notAfter.getTime() - this.#now().getTime()) / DAY_MS);
    return (
      `Key Vault CA ${this.#settings.vaultUrl}: ${material.description}, ${material.algorithm} with ${material.kid}, ` +
      `CA certificate valid until ${material.certificate.notAfter.toISOString()} (${remainingDays} days)`
    );
  }
}
