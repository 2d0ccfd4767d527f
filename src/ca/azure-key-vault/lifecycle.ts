/**
 * The issuing CA certificate's lifecycle in Key Vault — the pending-request flow of the seed
 * (reference/azure-keyvault.md, "Certificate creation with a pending request"), behind `certprov kv-ca`:
 *
 *   create (issuer `Unknown`, non-exportable key) → CSR for the parent CA → parent signs → merge (x5c, leaf first)
 *   → a new certificate *version* → pin it as `certificateVersion` and roll it out.
 *
 * Key Vault's DigiCert/GlobalSign issuers mint TLS leaf certificates, never CA certificates, so `create` always
 * uses the manual flow; status, cancel, delete-pending and merge work on any pending object, an issuer-backed one
 * created elsewhere included. Every refusal Key Vault can answer with becomes a {@link KvCaRefusal} that says what
 * to do next.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import type { CertificateClient, CertificatePolicy } from '@azure/keyvault-certificates';
import type { KeyClient } from '@azure/keyvault-keys';
import { bytesEqual } from '../../pki/der.ts';
import { describeName, parseCertificate, type ParsedCertificate } from '../../pki/certificate.ts';
import { EXTENDED_KEY_USAGES } from '../../pki/extended-key-usage.ts';
import { issuingCaProblems } from '../../pki/issuing-ca-checks.ts';
import { encodePem, splitPemBundle } from '../../pki/pem.ts';
import { ISSUING_CA_PROFILE_HINT } from '../issuing-core.ts';
import { callKeyVault, type KeyVaultCallEnvironment } from './key-vault-call.ts';
import { isRestError, missingPermissionAdvice, statusOf } from './errors.ts';
import { KEY_VAULT_OPERATIONS, type KeyVaultOperation } from './operations.ts';

/** A definitive "no" from Key Vault (or from the local checks before a merge), with what to do about it. */
export class KvCaRefusal extends Error {
  /** Key Vault's HTTP status, when Key Vault refused (undefined for a local check). */
  readonly status: number | undefined;
  /** Key Vault's error code (`Forbidden`, `PendingCertificateNotFound`, …). */
  readonly code: string | undefined;
  /** The next step, in one or two sentences. */
  readonly advice: string;

  constructor(message: string, advice: string, details: { status?: number; code?: string } = {}) {
    super(message);
    this.name = 'KvCaRefusal';
    this.status = details.status;
    this.code = details.code;
    this.advice = advice;
  }
}

/** The CA key Key Vault generates. It never leaves the vault (exportable: false). */
export interface CaKeySpec {
  readonly type: 'ec' | 'rsa';
  /** EC curve. Default P-256. */
  readonly curve?: 'P-256' | 'P-384';
  /** RSA modulus size. Default 3072. */
  readonly rsaBits?: 2048 | 3072 | 4096;
  /** HSM-protected key (`EC-HSM`/`RSA-HSM`; Premium vaults). Default false. */
  readonly hsm?: boolean;
}

export interface CreateCaRequest {
  /** The CA's subject as Key Vault takes it, e.g. `CN=Example Device Issuing CA 2026,O=Example`. */
  readonly subject: string;
  readonly key: CaKeySpec;
  /** Validity Key Vault records in the policy (the parent CA decides the real one). Default 60. */
  readonly validityMonths?: number;
}

/** The pending object (`/certificates/{name}/pending`) as the commands report it. */
export interface PendingRequest {
  readonly certificateName: string;
  readonly requestId: string | undefined;
  /** `inProgress`, `completed`, `failed` or `cancelled` (Key Vault's spelling). */
  readonly status: string | undefined;
  readonly statusDetails: string | undefined;
  readonly issuerName: string | undefined;
  readonly cancellationRequested: boolean;
  readonly error: { readonly code?: string; readonly message?: string } | undefined;
  /** `completed`: the certificate's URL. */
  readonly target: string | undefined;
  /** The CSR (PEM) the parent CA signs. */
  readonly csrPem: string | undefined;
}

export interface MergeResult {
  readonly certificateName: string;
  /** The new certificate version: the `certificateVersion` to pin. */
  readonly version: string;
  readonly kid: string | undefined;
  readonly subject: string;
  readonly notAfter: Date;
  readonly thumbprintSha1: string | undefined;
}

/** The pending object as the REST API returns it (the SDK's generated model of `/certificates/{name}/pending`). */
interface RestPendingObject {
  readonly issuerParameters?: { readonly name?: string };
  readonly csr?: Uint8Array;
  readonly cancellationRequested?: boolean;
  readonly status?: string;
  readonly statusDetails?: string;
  readonly error?: { readonly code?: string; readonly message?: string };
  readonly target?: string;
  readonly requestId?: string;
}

interface AbortOptions {
  readonly abortSignal?: AbortSignal;
}

/**
 * The pending-object operations of the SDK's generated client (`GET` and `PATCH …/pending`), one request each.
 *
 * Why not the public `getCertificateOperation`: it returns a poller that also reads the certificate, and whose
 * first poll *throws* for a `failed` or `cancelled` request with only the error message — the status, the error
 * code and the CSR are lost, and a cancel cannot even reach the vault. `kv-ca status` must show exactly those
 * states (reference/azure-keyvault.md). The generated client is the SDK's own REST layer (the public methods call
 * it); reaching it is checked, so an SDK that moved it fails loudly here rather than silently, and
 * test/unit/azure-key-vault/sdk-pending-operations-pin.test.ts pins the SDK version these calls were checked against.
 */
interface PendingOperations {
  getCertificateOperation(name: string, options: AbortOptions): Promise<RestPendingObject>;
  updateCertificateOperation(
    name: string,
    update: { cancellationRequested: boolean },
    options: AbortOptions,
  ): Promise<RestPendingObject>;
}

function pendingOperationsOf(client: CertificateClient): PendingOperations {
  const inner = (client as unknown as { client?: Partial<PendingOperations> }).client;
  if (typeof inner?.getCertificateOperation !== 'function' || typeof inner.updateCertificateOperation !== 'function') {
    throw new Error(
      '@azure/keyvault-certificates no longer exposes its generated client: update src/ca/azure-key-vault/lifecycle.ts',
    );
  }
  return inner as PendingOperations;
}

function toPending(name: string, operation: RestPendingObject | undefined): PendingRequest {
  return {
    certificateName: name,
    requestId: operation?.requestId,
    status: operation?.status,
    statusDetails: operation?.statusDetails,
    issuerName: operation?.issuerParameters?.name,
    cancellationRequested: operation?.cancellationRequested ?? false,
    error:
      operation?.error === undefined ? undefined : { code: operation.error.code, message: operation.error.message },
    target: operation?.target,
    csrPem: operation?.csr === undefined ? undefined : encodePem('CERTIFICATE REQUEST', new Uint8Array(operation.csr)),
  };
}

const isUnknownIssuer = (issuer: string | undefined) => issuer === undefined || issuer.toLowerCase() === 'unknown';

function describeSubject(certificate: ParsedCertificate): string {
  return describeName(certificate.asn1.tbsCertificate.subject);
}

/** The SubjectPublicKeyInfo (DER) of a PKCS#10 CSR. */
function spkiOfCsr(pem: string): Uint8Array {
  const [block] = splitPemBundle(pem);
  if (block === undefined) throw new Error('no CSR');
  const csr = AsnConvert.parse(block.der, CertificationRequest);
  return new Uint8Array(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
}

/** Parses `--chain FILE` text: CERTIFICATE blocks, leaf (the CA certificate for this vault) first. */
export function parseChain(text: string): ParsedCertificate[] {
  let blocks;
  try {
    blocks = splitPemBundle(text);
  } catch (error) {
    throw new KvCaRefusal(
      `the chain file is not PEM: ${(error as Error).message}`,
      'give the PEM certificates, leaf first',
    );
  }
  if (blocks.length === 0)
    throw new KvCaRefusal('the chain file holds no certificate', 'give the PEM certificates, leaf first');
  const other = blocks.find((b) => b.label !== 'CERTIFICATE');
  if (other !== undefined) {
    throw new KvCaRefusal(
      `the chain file holds a ${other.label} block`,
      'keep only CERTIFICATE blocks (never a private key)',
    );
  }
  return blocks.map((b) => parseCertificate(b.der));
}

export interface KeyVaultCaLifecycleOptions {
  readonly client: CertificateClient;
  /** Reads the certificate's key (key_ops) after create and for status. */
  readonly keys: KeyClient;
  readonly certificateName: string;
  readonly env: KeyVaultCallEnvironment;
  /** Cancels the commands' calls (Ctrl-C). */
  readonly signal: AbortSignal;
}

export class KeyVaultCaLifecycle {
  readonly certificateName: string;
  readonly #client: CertificateClient;
  readonly #keys: KeyClient;
  readonly #pending: PendingOperations;
  readonly #env: KeyVaultCallEnvironment;
  readonly #signal: AbortSignal;

  constructor(options: KeyVaultCaLifecycleOptions) {
    this.#client = options.client;
    this.#keys = options.keys;
    this.#pending = pendingOperationsOf(options.client);
    this.certificateName = options.certificateName;
    this.#env = options.env;
    this.#signal = options.signal;
  }

  #call<T>(
    operation: KeyVaultOperation,
    run: (abortSignal: AbortSignal) => Promise<T>,
    refusal: (status: number, code: string | undefined, message: string) => KvCaRefusal | undefined,
  ): Promise<T> {
    return callKeyVault(this.#env, {
      operation,
      subject: `certificate ${this.certificateName}`,
      signal: this.#signal,
      run,
      refusal: (error) => {
        const status = statusOf(error);
        if (status === undefined || !isRestError(error)) return undefined;
        const specific = refusal(status, error.code, error.message);
        if (specific !== undefined) return specific;
        if (status === 403) {
          return new KvCaRefusal(
            `Key Vault refused ${operation.name} for ${this.certificateName}: ${error.message}`,
            missingPermissionAdvice(operation),
            { status, code: error.code },
          );
        }
        return undefined;
      },
    });
  }

  #noPending(status: number, code: string | undefined): KvCaRefusal {
    return new KvCaRefusal(
      `there is no pending request for certificate ${this.certificateName} (${code ?? status}): it was deleted or ` +
        'overwritten by a newer create, or the certificate name is wrong',
      '`certprov kv-ca create` starts a new request (check certificateName and vaultUrl)',
      { status, code },
    );
  }

  /**
   * `POST /certificates/{name}/create` with issuer `Unknown` and a non-exportable key; returns the pending request
   * with its CSR. A second create while a request is `inProgress` is refused by Key Vault (409).
   */
  async create(request: CreateCaRequest): Promise<PendingRequest> {
    const { key } = request;
    const policy: CertificatePolicy = {
      issuerName: 'Unknown',
      subject: request.subject,
      exportable: false,
      // A rotation gets a new key (a new key version), never the old one re-certified.
      reuseKey: false,
      keyType: key.type === 'ec' ? (key.hsm === true ? 'EC-HSM' : 'EC') : key.hsm === true ? 'RSA-HSM' : 'RSA',
      ...(key.type === 'ec' ? { keyCurveName: key.curve ?? 'P-256' } : { keySize: key.rsaBits ?? 3072 }),
      keyUsage: ['keyCertSign', 'cRLSign'],
      // PEM: the version's secret then holds the merged chain in a form anything can read (never the key).
      contentType: 'application/x-pem-file',
      validityInMonths: request.validityMonths ?? 60,
      // Reminds the vault's certificate contacts to rotate well before the CA expires.
      lifetimeActions: [{ lifetimePercentage: 80, action: 'EmailContacts' }],
    };
    await this.#call(
      KEY_VAULT_OPERATIONS.createCertificate,
      (abortSignal) => this.#client.beginCreateCertificate(this.certificateName, policy, { abortSignal }),
      // Replaced below by advice that depends on who owns the pending request.
      (status, code, message) => (status === 409 ? new KvCaRefusal(message, '', { status, code }) : undefined),
    ).catch(async (error: unknown) => {
      if (error instanceof KvCaRefusal && error.status === 409) throw await this.#conflict();
      throw error;
    });
    // The create poller keeps the pending object out of its public state: read it back (CSR, request id).
    const pending = await this.status();
    // A key that may not sign is useless as a CA key: say so now, not after the parent CA certified it.
    const made = await this.keyOperations();
    if (made.keyOps !== undefined && !made.keyOps.includes('sign')) {
      throw new KvCaRefusal(
        `the new key ${made.kid ?? this.certificateName} has key_ops [${made.keyOps.join(', ')}] without sign: Key Vault would refuse to sign device certificates with it`,
        `do not have the CSR signed; allow signing on this key version (\`az keyvault key set-attributes --vault-name VAULT --name ${this.certificateName} --version ${made.version ?? 'VERSION'} --ops sign verify\`, needs keys/update) and check with \`certprov kv-ca status\`, or discard the request with \`certprov kv-ca delete-pending\` and create again once the vault's policy allows sign`,
      );
    }
    return pending;
  }

  /** The certificate's current key (the pending request's, after a create): its kid, version and key_ops. */
  async keyOperations(): Promise<{ kid?: string; version?: string; keyOps?: readonly string[] }> {
    const key = await this.#call(
      KEY_VAULT_OPERATIONS.getKey,
      (abortSignal) => this.#keys.getKey(this.certificateName, { abortSignal }),
      () => undefined,
    );
    return {
      ...(key.id === undefined ? {} : { kid: key.id }),
      ...(key.properties.version === undefined ? {} : { version: key.properties.version }),
      ...(key.keyOperations === undefined ? {} : { keyOps: key.keyOperations }),
    };
  }

  /** The 409 advice depends on who owns the pending request: us (merge or delete) or an issuer (wait or delete). */
  async #conflict(): Promise<KvCaRefusal> {
    const pending = await this.status().catch(() => undefined);
    const manual = isUnknownIssuer(pending?.issuerName);
    return new KvCaRefusal(
      `a pending request for certificate ${this.certificateName} is still inProgress` +
        (pending?.requestId === undefined
          ? ''
          : ` (request ${pending.requestId}, issuer ${pending.issuerName ?? 'Unknown'})`) +
        '; Key Vault refuses a new create or import until it is resolved (409 Conflict)',
      manual
        ? 'finish it with `certprov kv-ca merge --chain FILE` once the parent CA signed its CSR (`certprov kv-ca status` prints the CSR), or discard it with `certprov kv-ca delete-pending`'
        : `the issuer ${pending?.issuerName ?? ''} is still working on it: wait until \`certprov kv-ca status\` shows completed, failed or cancelled, or discard it with \`certprov kv-ca delete-pending\` (that does not necessarily cancel the order at the issuer)`,
      { status: 409, code: 'Forbidden' },
    );
  }

  /**
   * The pending request (`GET /certificates/{name}/pending`). With `requestId`, only that request: Key Vault treats
   * request_id as a filter, and so does this (a newer create replaced the object).
   */
  async status(requestId?: string): Promise<PendingRequest> {
    const operation = await this.#call(
      KEY_VAULT_OPERATIONS.getPendingCertificate,
      (abortSignal) => this.#pending.getCertificateOperation(this.certificateName, { abortSignal }),
      (status, code) => (status === 404 ? this.#noPending(status, code) : undefined),
    );
    const pending = toPending(this.certificateName, operation);
    if (requestId !== undefined && pending.requestId !== requestId) {
      throw new KvCaRefusal(
        `the pending request for certificate ${this.certificateName} is ${pending.requestId ?? 'unknown'}, not ${requestId}: ` +
          'the one you asked for was overwritten by a newer create (Key Vault answers 404 for it)',
        '`certprov kv-ca status` without --request-id shows the current request',
        { status: 404, code: 'PendingCertificateNotFound' },
      );
    }
    return pending;
  }

  /** `PATCH …/pending {cancellation_requested: true}`: a request, not a guarantee (status may stay inProgress). */
  async cancel(): Promise<PendingRequest> {
    const operation = await this.#call(
      KEY_VAULT_OPERATIONS.cancelPendingCertificate,
      (abortSignal) =>
        this.#pending.updateCertificateOperation(
          this.certificateName,
          { cancellationRequested: true },
          { abortSignal },
        ),
      (status, code, message) => {
        if (status === 404) return this.#noPending(status, code);
        if (status === 400) {
          return new KvCaRefusal(
            `the pending request for certificate ${this.certificateName} is not inProgress, so it cannot be cancelled (${message})`,
            '`certprov kv-ca status` shows its state; `certprov kv-ca delete-pending` removes it',
            { status, code },
          );
        }
        return undefined;
      },
    );
    return toPending(this.certificateName, operation);
  }

  /** `DELETE …/pending`. Does not necessarily cancel an order at an issuer. */
  async deletePending(): Promise<PendingRequest> {
    const operation = await this.#call(
      KEY_VAULT_OPERATIONS.deletePendingCertificate,
      (abortSignal) => this.#client.deleteCertificateOperation(this.certificateName, { abortSignal }),
      (status, code) => (status === 404 ? this.#noPending(status, code) : undefined),
    );
    return toPending(this.certificateName, { ...operation, issuerParameters: { name: operation.issuerName } });
  }

  /**
   * `POST …/pending/merge {x5c}`: completes the pending request with the certificate the parent CA issued for its
   * CSR, and the parent chain. Checked locally first: the leaf carries the pending CSR's key, is a CA certificate,
   * and each certificate is issued by the next.
   */
  async merge(chain: readonly ParsedCertificate[]): Promise<MergeResult> {
    const [leaf] = chain;
    if (leaf === undefined) throw new KvCaRefusal('no certificate to merge', 'give the chain file, leaf first');
    for (let i = 0; i + 1 < chain.length; i += 1) {
      if (!bytesEqual(chain[i]!.issuerNameDer, chain[i + 1]!.subjectNameDer)) {
        throw new KvCaRefusal(
          `certificate ${i + 2} in the chain file did not issue certificate ${i + 1}`,
          'order the file leaf first (the new CA certificate), then its issuer, up to the root',
        );
      }
    }
    // Device certificates carry clientAuth; a chain that cannot issue them is refused before it reaches the vault.
    const problems = issuingCaProblems(chain, [EXTENDED_KEY_USAGES.clientAuth as string]);
    if (problems.length > 0) {
      throw new KvCaRefusal(
        `this chain cannot issue device certificates: ${problems.join('; ')}`,
        ISSUING_CA_PROFILE_HINT,
      );
    }
    const pending = await this.status();
    if (pending.csrPem !== undefined && !bytesEqual(spkiOfCsr(pending.csrPem), leaf.spkiDer)) {
      throw new KvCaRefusal(
        `the first certificate is not for the key of the pending request ${pending.requestId ?? ''}`,
        'have the parent CA sign the CSR that `certprov kv-ca status` prints now (a newer create replaces the key)',
      );
    }
    const merged = await this.#call(
      KEY_VAULT_OPERATIONS.mergeCertificate,
      (abortSignal) =>
        this.#client.mergeCertificate(
          this.certificateName,
          chain.map((c) => new Uint8Array(c.der)),
          { abortSignal },
        ),
      (status, code, message) => {
        if (status === 404) return this.#noPending(status, code);
        if (status === 403 && /merge is forbidden/i.test(message)) {
          return new KvCaRefusal(
            `Key Vault refuses the merge: the pending request was created with issuer ${pending.issuerName ?? '?'} and is still inProgress`,
            'wait until `certprov kv-ca status` shows completed, failed or cancelled (`certprov kv-ca cancel` asks the issuer to stop); after failed or cancelled, a certificate obtained out of band can be merged',
            { status, code },
          );
        }
        if (status === 400 || status === 409) {
          return new KvCaRefusal(
            `Key Vault refuses the merge: ${message}`,
            'check that the chain answers the CSR of `certprov kv-ca status`',
            {
              status,
              code,
            },
          );
        }
        return undefined;
      },
    );
    return {
      certificateName: this.certificateName,
      version: merged.properties.version ?? '',
      kid: merged.keyId,
      subject: describeSubject(leaf),
      notAfter: leaf.notAfter,
      thumbprintSha1:
        merged.properties.x509Thumbprint === undefined
          ? undefined
          : Buffer.from(merged.properties.x509Thumbprint).toString('hex'),
    };
  }
}
