/**
 * The narrow slice of Certificate Authority Service this backend uses, over the official client
 * `@google-cloud/security-private-ca` on its REST transport (src/ca/google-cloud.ts). The SDK is imported when a
 * connection is created, so deployments without a CAS connection never load it.
 */
import { abortable, googleClientOptions, type GoogleAuthLike } from '../google-cloud.ts';
import type { certificateConfigFor } from './certificate-config.ts';

/** A certificate as CAS returns it. */
export interface CasCertificate {
  /** `projects/P/locations/L/caPools/POOL/certificates/ID`. */
  readonly name: string;
  readonly pemCertificate: string;
  /** The issuer chain, the issuing CA first. */
  readonly pemCertificateChain: readonly string[];
  /** Set once revoked. */
  readonly revoked: boolean;
}

export interface CreateCertificateRequest {
  readonly parent: string;
  readonly certificateId: string;
  /** A UUID; CAS ignores a repeat of the same request for at least 60 minutes. */
  readonly requestId: string;
  readonly issuingCertificateAuthorityId?: string;
  readonly certificateTemplate?: string;
  readonly lifetimeSeconds: number;
  readonly config: ReturnType<typeof certificateConfigFor>;
}

export interface CasPool {
  readonly name: string;
  /** `ENTERPRISE` or `DEVOPS`. */
  readonly tier: string;
  /** The pool's maximum certificate lifetime in seconds, when its issuance policy sets one. */
  readonly maximumLifetimeSeconds: number | undefined;
  readonly allowSubjectPassthrough: boolean | undefined;
  readonly allowSubjectAltNamesPassthrough: boolean | undefined;
  /** The issuance policy's backdate duration in seconds (0 when unset). */
  readonly backdateSeconds: number;
}

/** What this backend asks of CAS. */
export interface CasClient {
  createCertificate(request: CreateCertificateRequest, signal: AbortSignal): Promise<CasCertificate>;
  getCertificate(name: string, signal: AbortSignal): Promise<CasCertificate>;
  /** RevokeCertificate with a CAS RevocationReason name (`KEY_COMPROMISE`, …). */
  revokeCertificate(name: string, reason: string, requestId: string, signal: AbortSignal): Promise<CasCertificate>;
  /** The pool's certificates with this serial (hex, any case): ListCertificates with a filter. */
  findBySerial(parent: string, serialHex: string, signal: AbortSignal): Promise<CasCertificate[]>;
  getCaPool(name: string, signal: AbortSignal): Promise<CasPool>;
  /** The subset of `permissions` the caller holds on `resource` (IAM testIamPermissions). */
  testIamPermissions(resource: string, permissions: readonly string[], signal: AbortSignal): Promise<string[]>;
  close(): Promise<void>;
}

export interface CasClientOptions {
  readonly endpoint?: string;
  readonly auth?: GoogleAuthLike;
  readonly timeoutMs: number;
}

/** `Duration` as the client hands it back: `{seconds: "86400", nanos: 0}` (seconds as a string on REST). */
function durationSeconds(value: { seconds?: unknown } | null | undefined): number | undefined {
  const raw = value?.seconds;
  if (raw === undefined || raw === null) return undefined;
  const n = Number(typeof raw === 'object' ? (raw as { toString(): string }).toString() : raw);
  return Number.isFinite(n) ? n : undefined;
}

interface RawCertificate {
  name?: string | null;
  pemCertificate?: string | null;
  pemCertificateChain?: string[] | null;
  revocationDetails?: { revocationState?: unknown } | null;
}

function certificateOf(raw: RawCertificate): CasCertificate {
  return {
    name: raw.name ?? '',
    pemCertificate: raw.pemCertificate ?? '',
    pemCertificateChain: raw.pemCertificateChain ?? [],
    revoked: raw.revocationDetails?.revocationState !== undefined && raw.revocationDetails.revocationState !== null,
  };
}

export async function createCasClient(options: CasClientOptions): Promise<CasClient> {
  const { CertificateAuthorityServiceClient } = await import('@google-cloud/security-private-ca');
  const client = new CertificateAuthorityServiceClient(
    // The auth client type is the SDK's own copy of google-auth-library's; ours is structurally the same.
    googleClientOptions(options.endpoint, options.auth) as ConstructorParameters<
      typeof CertificateAuthorityServiceClient
    >[0],
  );
  // Reads are safe to repeat: gax retries UNAVAILABLE/DEADLINE_EXCEEDED at most twice. CreateCertificate is sent
  // once per attempt: the workflow retries it with the same certificate id and request id (idempotent at CAS), and
  // the rate budget counts every request sent.
  const read = { timeout: options.timeoutMs, maxRetries: 2 };
  const write = { timeout: options.timeoutMs, maxRetries: 0 };
  return {
    async createCertificate(request, signal) {
      const [certificate] = await abortable(
        client.createCertificate(
          {
            parent: request.parent,
            certificateId: request.certificateId,
            requestId: request.requestId,
            ...(request.issuingCertificateAuthorityId === undefined
              ? {}
              : { issuingCertificateAuthorityId: request.issuingCertificateAuthorityId }),
            certificate: {
              lifetime: { seconds: request.lifetimeSeconds },
              config: request.config,
              ...(request.certificateTemplate === undefined
                ? {}
                : { certificateTemplate: request.certificateTemplate }),
            },
          },
          write,
        ),
        signal,
      );
      return certificateOf(certificate);
    },
    async getCertificate(name, signal) {
      const [certificate] = await abortable(client.getCertificate({ name }, read), signal);
      return certificateOf(certificate);
    },
    async revokeCertificate(name, reason, requestId, signal) {
      const [certificate] = await abortable(
        client.revokeCertificate({ name, reason: reason as never, requestId }, write),
        signal,
      );
      return certificateOf(certificate);
    },
    async findBySerial(parent, serialHex, signal) {
      const [certificates] = await abortable(
        client.listCertificates(
          {
            parent,
            filter: `certificate_description.subject_description.hex_serial_number="${serialHex.toLowerCase()}"`,
            pageSize: 10,
          },
          { ...read, autoPaginate: false },
        ),
        signal,
      );
      return certificates.map((c) => certificateOf(c));
    },
    async getCaPool(name, signal) {
      const [pool] = await abortable(client.getCaPool({ name }, read), signal);
      const policy = pool.issuancePolicy;
      return {
        name: pool.name ?? name,
        tier: String(pool.tier ?? ''),
        maximumLifetimeSeconds: durationSeconds(policy?.maximumLifetime),
        allowSubjectPassthrough: policy?.identityConstraints?.allowSubjectPassthrough ?? undefined,
        allowSubjectAltNamesPassthrough: policy?.identityConstraints?.allowSubjectAltNamesPassthrough ?? undefined,
        backdateSeconds: durationSeconds(policy?.backdateDuration) ?? 0,
      };
    },
    async testIamPermissions(resource, permissions, signal) {
      const [response] = await abortable(
        client.testIamPermissions(
          { resource, permissions: [...permissions] } as Parameters<typeof client.testIamPermissions>[0],
          read,
        ),
        signal,
      );
      return response.permissions ?? [];
    },
    close: () => client.close(),
  };
}
