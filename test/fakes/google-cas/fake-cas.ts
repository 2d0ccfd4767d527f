/**
 * A loopback fake of Google Cloud Certificate Authority Service (v1 REST, as `@google-cloud/security-private-ca`
 * sends it on its REST transport), faithful to what the adapter uses and to how CAS refuses:
 *
 * - `POST /v1/{caPool}/certificates?certificateId&requestId[&issuingCertificateAuthorityId]` with a `Certificate`
 *   `{lifetime, config: {subjectConfig, x509Config, publicKey}, certificateTemplate?}`: issues from the pool's CA —
 *   lifetime capped at the pool's `maximumLifetime` and the CA's own notAfter, notBefore set back by the pool's
 *   `backdateDuration`; a repeated `requestId` returns the first answer; a second certificate with the same id is
 *   409 ALREADY_EXISTS; a bad certificate id, a missing public key or a subject the identity constraints forbid is
 *   400 INVALID_ARGUMENT; an unknown pool, CA or template is 404; a caller without requester rights 403; more than
 *   `quotaPerSecond` creates in a second is 429 RESOURCE_EXHAUSTED. A `pemCsr` is checked (its signature must
 *   verify, else INVALID_ARGUMENT) but this fake issues from `config` only (400 otherwise).
 * - `GET /v1/{caPool}/certificates/{id}`, `POST …/certificates/{id}:revoke {reason, requestId}` (a second revocation
 *   is 400 FAILED_PRECONDITION), `GET /v1/{caPool}`, `POST /v1/{caPool}:testIamPermissions`.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import {
  buildLeafCertificate,
  buildSelfSignedCaCertificate,
  parseCertificate,
  signerFromPrivateKey,
  type ParsedCertificate,
} from '../../../src/pki/certificate-builder.ts';
import { decodePem } from '../../../src/pki/pem.ts';
import { verifyWithKey } from '../../../src/pki/signature-algorithms.ts';
import { publicKeyFromSpki } from '../../../src/pki/device-key.ts';
import type { LeafKeyUsage, SubjectAltName } from '../../../src/pki/types.ts';
import { subjectAttribute } from '../../support/issue-request.ts';
import { GoogleApiError, GoogleRestServer, type GoogleRestRequest } from '../google/google-rest.ts';

const DAY_S = 86_400;

export interface FakeCaPoolOptions {
  /** Default `projects/certprov-test/locations/europe-west1/caPools/devices`. */
  readonly name?: string;
  readonly tier?: 'ENTERPRISE' | 'DEVOPS';
  /** issuancePolicy.maximumLifetime in days. Default 397. */
  readonly maximumLifetimeDays?: number;
  /** issuancePolicy.backdateDuration in seconds. Default 600. */
  readonly backdateSeconds?: number;
  readonly allowSubjectPassthrough?: boolean;
  readonly allowSubjectAltNamesPassthrough?: boolean;
  /** Lifetime of the pool's CA certificate in days. Default 3650. */
  readonly caValidityDays?: number;
  /** Id of the pool's CA. Default `ca-1`. */
  readonly caId?: string;
}

interface Pool {
  readonly name: string;
  readonly options: Required<Omit<FakeCaPoolOptions, 'name'>>;
  readonly caKey: KeyObject;
  readonly caCertificate: ParsedCertificate;
  readonly caPem: string;
}

interface StoredCertificate {
  readonly json: Record<string, unknown>;
  revoked?: { revocationState: string | number; revocationTime: string };
}

/** RevocationReason numbers (resources.proto), for numeric-enum answers. */
const REVOCATION_REASONS: Readonly<Record<string, number>> = {
  REVOCATION_REASON_UNSPECIFIED: 0,
  KEY_COMPROMISE: 1,
  CERTIFICATE_AUTHORITY_COMPROMISE: 2,
  AFFILIATION_CHANGED: 3,
  SUPERSEDED: 4,
  CESSATION_OF_OPERATION: 5,
  CERTIFICATE_HOLD: 6,
  PRIVILEGE_WITHDRAWN: 7,
  ATTRIBUTE_AUTHORITY_COMPROMISE: 8,
};
const TIERS: Readonly<Record<string, number>> = { ENTERPRISE: 1, DEVOPS: 2 };
const SUBJECT_FIELDS: Readonly<Record<string, string>> = {
  countryCode: 'C',
  province: 'ST',
  locality: 'L',
  streetAddress: 'STREET',
  organization: 'O',
  organizationalUnit: 'OU',
  commonName: 'CN',
};
const EKU_OIDS: Readonly<Record<string, string>> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
};
const KEY_USAGES: Readonly<Record<string, LeafKeyUsage>> = {
  digitalSignature: 'digitalSignature',
  contentCommitment: 'nonRepudiation',
  keyEncipherment: 'keyEncipherment',
  dataEncipherment: 'dataEncipherment',
  keyAgreement: 'keyAgreement',
};

export const FAKE_CAS_POOL = 'projects/certprov-test/locations/europe-west1/caPools/devices';

export class FakeCas {
  readonly #server: GoogleRestServer;
  readonly #pools = new Map<string, Pool>();
  readonly #certificates = new Map<string, StoredCertificate>();
  readonly #requestIds = new Map<string, Record<string, unknown>>();
  readonly templates = new Set<string>();
  /** Tokens allowed to request certificates; empty = every token. */
  readonly requesters = new Set<string>();
  /** Creates per second before RESOURCE_EXHAUSTED; undefined = no quota. */
  quotaPerSecond: number | undefined;
  #recentCreates: number[] = [];
  /** CreateCertificate requests received (refused ones included). */
  createRequests = 0;
  /** Certificates CAS holds now. */
  get certificateCount(): number {
    return this.#certificates.size;
  }

  private constructor(server: GoogleRestServer) {
    this.#server = server;
  }

  static async start(): Promise<FakeCas> {
    const holder: { fake?: FakeCas } = {};
    const server = await GoogleRestServer.start((request) => holder.fake!.handle(request));
    holder.fake = new FakeCas(server);
    return holder.fake;
  }

  get url(): string {
    return this.#server.url;
  }

  get server(): GoogleRestServer {
    return this.#server;
  }

  /** Creates a pool with one enabled CA (EC P-256, self-signed root); returns its resource name and CA certificate. */
  async createPool(options: FakeCaPoolOptions = {}): Promise<{ name: string; caPem: string }> {
    const name = options.name ?? FAKE_CAS_POOL;
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ca = await buildSelfSignedCaCertificate({
      subject: [
        [subjectAttribute('CN', `fake CAS CA ${randomBytes(3).toString('hex')}`)],
        [subjectAttribute('O', 'Example')],
      ],
      spkiDer: new Uint8Array(createPublicKey(caKey).export({ type: 'spki', format: 'der' })),
      signer: signerFromPrivateKey(caKey),
      validityMs: (options.caValidityDays ?? 3650) * DAY_S * 1000,
      backdateMs: 86_400_000,
    });
    this.#pools.set(name, {
      name,
      options: {
        tier: options.tier ?? 'ENTERPRISE',
        maximumLifetimeDays: options.maximumLifetimeDays ?? 397,
        backdateSeconds: options.backdateSeconds ?? 600,
        allowSubjectPassthrough: options.allowSubjectPassthrough ?? true,
        allowSubjectAltNamesPassthrough: options.allowSubjectAltNamesPassthrough ?? true,
        caValidityDays: options.caValidityDays ?? 3650,
        caId: options.caId ?? 'ca-1',
      },
      caKey,
      caCertificate: parseCertificate(ca.pem),
      caPem: ca.pem,
    });
    return { name, caPem: ca.pem };
  }

  /** CAS keeps request ids for a limited time (at least 60 minutes); after that a repeat is a new request. */
  forgetRequestIds(): void {
    this.#requestIds.clear();
  }

  async close(): Promise<void> {
    await this.#server.close();
  }

  #pool(name: string): Pool {
    const pool = this.#pools.get(name);
    if (pool === undefined) throw new GoogleApiError('NOT_FOUND', `Resource '${name}' was not found`);
    return pool;
  }

  async handle(request: GoogleRestRequest): Promise<unknown> {
    const create = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/caPools\/[^/]+)\/certificates$/.exec(request.path);
    if (request.method === 'POST' && create !== null) return this.#create(request, create[1]!);
    if (request.method === 'GET' && create !== null) {
      // ListCertificates; the one filter the adapter sends: by hex serial.
      this.#pool(create[1]!);
      const filter = request.query.get('filter') ?? '';
      const serial = /^certificate_description\.subject_description\.hex_serial_number="([0-9a-f]+)"$/.exec(
        filter,
      )?.[1];
      if (serial === undefined) throw new GoogleApiError('INVALID_ARGUMENT', `unsupported filter ${filter}`);
      const certificates = [...this.#certificates.entries()]
        .filter(([name]) => name.startsWith(`${create[1]!}/certificates/`))
        .filter(([, c]) => parseCertificate(c.json.pemCertificate as string).serialHex.toLowerCase() === serial)
        .map(([, c]) => this.#json(c));
      return { certificates };
    }
    const revoke = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/caPools\/[^/]+\/certificates\/[^/:]+):revoke$/.exec(
      request.path,
    );
    if (request.method === 'POST' && revoke !== null) return this.#revoke(request, revoke[1]!);
    const get = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/caPools\/[^/]+\/certificates\/[^/:]+)$/.exec(request.path);
    if (request.method === 'GET' && get !== null) {
      const stored = this.#certificates.get(get[1]!);
      if (stored === undefined) throw new GoogleApiError('NOT_FOUND', `Resource '${get[1]!}' was not found`);
      return this.#json(stored);
    }
    const iam = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/caPools\/[^/:]+):testIamPermissions$/.exec(request.path);
    if (request.method === 'POST' && iam !== null) {
      this.#pool(iam[1]!);
      const asked = (request.body.permissions ?? []) as string[];
      const allowed = this.requesters.size === 0 || this.requesters.has(request.token);
      return { permissions: allowed ? asked.filter((p) => p.startsWith('privateca.certificates.')) : [] };
    }
    const pool = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/caPools\/[^/:]+)$/.exec(request.path);
    if (request.method === 'GET' && pool !== null) {
      const p = this.#pool(pool[1]!);
      return {
        name: p.name,
        tier: request.numericEnums ? TIERS[p.options.tier] : p.options.tier,
        issuancePolicy: {
          maximumLifetime: `${p.options.maximumLifetimeDays * DAY_S}s`,
          backdateDuration: `${p.options.backdateSeconds}s`,
          identityConstraints: {
            allowSubjectPassthrough: p.options.allowSubjectPassthrough,
            allowSubjectAltNamesPassthrough: p.options.allowSubjectAltNamesPassthrough,
          },
        },
      };
    }
    throw new GoogleApiError('NOT_FOUND', `no route for ${request.method} ${request.path}`);
  }

  #json(stored: StoredCertificate): Record<string, unknown> {
    return stored.revoked === undefined ? stored.json : { ...stored.json, revocationDetails: stored.revoked };
  }

  async #create(request: GoogleRestRequest, poolName: string): Promise<unknown> {
    this.createRequests += 1;
    const pool = this.#pool(poolName);
    if (this.requesters.size > 0 && !this.requesters.has(request.token)) {
      throw new GoogleApiError(
        'PERMISSION_DENIED',
        `Permission 'privateca.certificates.create' denied on resource '${poolName}' (or it may not exist).`,
      );
    }
    const now = Date.now();
    if (this.quotaPerSecond !== undefined) {
      this.#recentCreates = this.#recentCreates.filter((t) => t > now - 1_000);
      if (this.#recentCreates.length >= this.quotaPerSecond) {
        throw new GoogleApiError(
          'RESOURCE_EXHAUSTED',
          "Quota exceeded for quota metric 'Certificate creation requests' of service 'privateca.googleapis.com'.",
        );
      }
      this.#recentCreates.push(now);
    }
    const certificateId = request.query.get('certificateId') ?? '';
    const requestId = request.query.get('requestId') ?? '';
    if (requestId !== '') {
      const earlier = this.#requestIds.get(`${poolName}|${requestId}`);
      if (earlier !== undefined) return earlier;
    }
    if (!/^[a-zA-Z0-9_-]{1,63}$/.test(certificateId)) {
      throw new GoogleApiError('INVALID_ARGUMENT', `certificate_id '${certificateId}' is invalid.`);
    }
    const caId = request.query.get('issuingCertificateAuthorityId');
    if (caId !== null && caId !== '' && caId !== pool.options.caId) {
      throw new GoogleApiError('NOT_FOUND', `Resource '${poolName}/certificateAuthorities/${caId}' was not found`);
    }
    const name = `${poolName}/certificates/${certificateId}`;
    if (this.#certificates.has(name)) {
      throw new GoogleApiError('ALREADY_EXISTS', `Resource '${name}' already exists`);
    }
    const body = request.body;
    const template = body.certificateTemplate as string | undefined;
    if (template !== undefined && template !== '' && !this.templates.has(template)) {
      throw new GoogleApiError('NOT_FOUND', `Resource '${template}' was not found`);
    }
    if (typeof body.pemCsr === 'string') {
      this.#checkCsr(body.pemCsr);
      throw new GoogleApiError('INVALID_ARGUMENT', 'this fake issues from config only');
    }
    const config = (body.config ?? {}) as Record<string, Record<string, unknown>>;
    const keyField = (config.publicKey ?? {}) as { key?: string; format?: unknown };
    if (typeof keyField.key !== 'string')
      throw new GoogleApiError('INVALID_ARGUMENT', 'config.public_key is required.');
    let spkiDer: Uint8Array;
    try {
      spkiDer = decodePem(Buffer.from(keyField.key, 'base64').toString('utf8'), 'PUBLIC KEY');
      publicKeyFromSpki(spkiDer);
    } catch {
      throw new GoogleApiError('INVALID_ARGUMENT', 'config.public_key could not be parsed.');
    }
    const subjectConfig = (config.subjectConfig ?? {}) as {
      subject?: Record<string, string>;
      subjectAltName?: { dnsNames?: string[]; uris?: string[]; emailAddresses?: string[] };
    };
    const subject = Object.entries(subjectConfig.subject ?? {}).map(([field, value]) => {
      const type = SUBJECT_FIELDS[field];
      if (type === undefined) throw new GoogleApiError('INVALID_ARGUMENT', `unknown subject field ${field}`);
      return [subjectAttribute(type, value)];
    });
    const altNames = subjectConfig.subjectAltName ?? {};
    const sans: SubjectAltName[] = [
      ...(altNames.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(altNames.uris ?? []).map((value) => ({ type: 'uri' as const, value })),
      ...(altNames.emailAddresses ?? []).map((value) => ({ type: 'email' as const, value })),
    ];
    if (subject.length > 0 && !pool.options.allowSubjectPassthrough) {
      throw new GoogleApiError('INVALID_ARGUMENT', 'Subject passthrough is not allowed by the issuance policy.');
    }
    if (sans.length > 0 && !pool.options.allowSubjectAltNamesPassthrough) {
      throw new GoogleApiError('INVALID_ARGUMENT', 'Subject alternative name passthrough is not allowed.');
    }
    const keyUsage = ((config.x509Config ?? {}).keyUsage ?? {}) as {
      baseKeyUsage?: Record<string, boolean>;
      extendedKeyUsage?: Record<string, boolean>;
      unknownExtendedKeyUsages?: { objectIdPath?: number[] }[];
    };
    const ekus = [
      ...Object.entries(keyUsage.extendedKeyUsage ?? {})
        .filter(([, on]) => on)
        .map(([flag]) => EKU_OIDS[flag] ?? ''),
      ...(keyUsage.unknownExtendedKeyUsages ?? []).map((u) => (u.objectIdPath ?? []).join('.')),
    ];
    const keyUsages = Object.entries(keyUsage.baseKeyUsage ?? {})
      .filter(([, on]) => on)
      .map(([flag]) => KEY_USAGES[flag])
      .filter((u): u is LeafKeyUsage => u !== undefined);
    const requested = Number(
      /^(\d+)s$/.exec(typeof body.lifetime === 'string' ? body.lifetime : '')?.[1] ?? 30 * DAY_S,
    );
    const lifetimeSeconds = Math.min(requested, pool.options.maximumLifetimeDays * DAY_S);
    let built;
    try {
      built = await buildLeafCertificate({
        issuer: pool.caCertificate,
        spkiDer,
        profile: {
          name: 'cas',
          subject,
          subjectAltNames: sans,
          validityMs: lifetimeSeconds * 1000,
          extendedKeyUsages: ekus,
          keyUsages,
        },
        signer: signerFromPrivateKey(pool.caKey),
        backdateMs: pool.options.backdateSeconds * 1000,
      });
    } catch (error) {
      throw new GoogleApiError('INVALID_ARGUMENT', error instanceof Error ? error.message : String(error));
    }
    const json = {
      name,
      lifetime: `${lifetimeSeconds}s`,
      pemCertificate: built.pem,
      pemCertificateChain: [pool.caPem],
      issuerCertificateAuthority: `${poolName}/certificateAuthorities/${pool.options.caId}`,
      createTime: new Date(now).toISOString(),
    };
    this.#certificates.set(name, { json });
    if (requestId !== '') this.#requestIds.set(`${poolName}|${requestId}`, json);
    return json;
  }

  #checkCsr(pem: string): void {
    try {
      const csr = AsnConvert.parse(decodePem(pem, 'CERTIFICATE REQUEST'), CertificationRequest);
      const info = new Uint8Array(AsnConvert.serialize(csr.certificationRequestInfo));
      const spki = new Uint8Array(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
      const key = publicKeyFromSpki(spki);
      const algorithm = csr.signatureAlgorithm.algorithm === '1.2.840.10045.4.3.2' ? 'ES256' : 'RS256';
      if (!verifyWithKey(algorithm, key, info, new Uint8Array(csr.signature))) throw new Error('bad signature');
    } catch {
      throw new GoogleApiError('INVALID_ARGUMENT', 'The CSR signature could not be verified.');
    }
  }

  #revoke(request: GoogleRestRequest, name: string): unknown {
    const stored = this.#certificates.get(name);
    if (stored === undefined) throw new GoogleApiError('NOT_FOUND', `Resource '${name}' was not found`);
    if (stored.revoked !== undefined) {
      throw new GoogleApiError('FAILED_PRECONDITION', `Certificate '${name}' has already been revoked.`);
    }
    const reason = request.body.reason;
    const reasonName =
      typeof reason === 'number'
        ? Object.entries(REVOCATION_REASONS).find(([, n]) => n === reason)?.[0]
        : (reason as string | undefined);
    if (reasonName === undefined || !(reasonName in REVOCATION_REASONS)) {
      throw new GoogleApiError('INVALID_ARGUMENT', 'reason is invalid.');
    }
    stored.revoked = {
      revocationState: request.numericEnums ? REVOCATION_REASONS[reasonName]! : reasonName,
      revocationTime: new Date().toISOString(),
    };
    return this.#json(stored);
  }

  /** The revocation reason CAS holds for the certificate with this serial (hex), or undefined. */
  revocationOfSerial(serialHex: string): string | undefined {
    for (const [name, stored] of this.#certificates) {
      if (parseCertificate(stored.json.pemCertificate as string).serialHex.toLowerCase() === serialHex.toLowerCase()) {
        return this.revocationOf(name);
      }
    }
    return undefined;
  }

  /** The revocation reason CAS holds for a certificate, or undefined. */
  revocationOf(name: string): string | undefined {
    const state = this.#certificates.get(name)?.revoked?.revocationState;
    if (state === undefined) return undefined;
    return typeof state === 'number' ? Object.entries(REVOCATION_REASONS).find(([, n]) => n === state)?.[0] : state;
  }
}
