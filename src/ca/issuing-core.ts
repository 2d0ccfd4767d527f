/**
 * The issuing core of the CAs that sign themselves — local, Azure Key Vault, Cloud KMS (DESIGN.md §10). They do
 * the same thing and differ only in where the key is: build the leaf from the profile and the device SPKI (never
 * from the CSR, which only proved possession of the key), sign the TBS through a {@link TbsSigner}, verify the
 * signature against the CA certificate, log the issued certificate with its serial and process id, return.
 *
 * The failure classes are the same for all of them: a device key outside policy is terminal for the process; a
 * signature that does not verify (the configured key is not the certificate's) or an expired CA certificate is a
 * deployment fault; a remote signer's own errors pass through as the signer classified them.
 */
import { readFile } from 'node:fs/promises';
import { DeploymentFaultError, TerminalError, describeError, type FaultComponent } from '../errors.ts';
import {
  IssuerExpiredError,
  SignatureMismatchError,
  buildLeafCertificate,
  parseCertificate,
  type BuiltCertificate,
  type ParsedCertificate,
  type RevocationInfo,
} from '../pki/certificate-builder.ts';
import { bytesEqual } from '../pki/der.ts';
import { EXTENDED_KEY_USAGES } from '../pki/extended-key-usage.ts';
import { issuingCaProblems } from '../pki/issuing-ca-checks.ts';
import { encodePem, splitPemBundle } from '../pki/pem.ts';
import type { Logger } from '../observability/logger.ts';
import type {
  CaCapabilities,
  IssueRequest,
  IssueResult,
  IssuingCa,
  RequiredFile,
  RevocationRequest,
  RevocationResult,
  StepContext,
} from './types.ts';
import { DAY_MS } from '../time.ts';

export type { IssuingCa } from './types.ts';

export interface LeafIssuerSettings {
  /** Connection name, for logs and messages. */
  readonly connection: string;
  /** How the backend is named in messages: `local CA`, `Key Vault CA`, `Cloud KMS CA`. */
  readonly label: string;
  readonly component: FaultComponent;
  /** Longest validity the connection grants (days), on top of the profile's. */
  readonly maxValidityDays: number;
  /** How far notBefore is set back for device clock skew (ms). */
  readonly backdateMs: number;
  /** Issuance time. */
  readonly now: Date;
  /** Hints for the two deployment faults (what to check). */
  readonly hints?: { readonly signatureMismatch?: string; readonly expired?: string };
  /** Extra fields for the "issued certificate" log line (e.g. the key version that signed). */
  readonly logFields?: Readonly<Record<string, string>>;
  /**
   * Called with the signed certificate before it is returned: an audit record that must exist before the
   * certificate leaves (the local CA's journal). A throw is passed on.
   */
  readonly record?: (certificate: BuiltCertificate) => Promise<void>;
  /** The connection's CRL and caIssuers URLs (its `crl` settings), carried by every leaf. Default none. */
  readonly revocationInfo?: RevocationInfo;
}

/**
 * Builds, signs, verifies and logs a leaf for `request`.
 * @returns `issued` with the chain, or `failed` for a device key outside policy.
 * @throws DeploymentFaultError (settings.component) when the signature does not verify against the CA certificate
 *   or the CA certificate has expired; the signer's own errors unchanged.
 */
export async function issueLeaf(
  request: IssueRequest,
  ctx: StepContext,
  ca: IssuingCa,
  settings: LeafIssuerSettings,
): Promise<IssueResult> {
  ctx.signal.throwIfAborted();
  let built: BuiltCertificate;
  try {
    built = await buildLeafCertificate({
      issuer: ca.certificate,
      spkiDer: request.spkiDer,
      // Every field from the rendered profile; the CSR's own subject and extensions are never copied.
      profile: request.profile,
      maxValidityMs: settings.maxValidityDays * DAY_MS,
      signer: ca.signer,
      signal: ctx.signal,
      now: settings.now,
      backdateMs: settings.backdateMs,
      ...(settings.revocationInfo === undefined ? {} : { revocationInfo: settings.revocationInfo }),
    });
  } catch (error) {
    if (error instanceof TerminalError) {
      // A device key outside policy (normally caught by the workflow before signData): a definitive rejection.
      return {
        status: 'failed',
        detail: `${settings.label} refused: ${error.message}`,
        userMessage: error.userMessage,
      };
    }
    if (error instanceof SignatureMismatchError) {
      throw new DeploymentFaultError(
        `${settings.label} ${settings.connection}: the signature does not verify against the CA certificate ` +
          `(${describeError(error)})`,
        { component: settings.component, cause: error, hint: settings.hints?.signatureMismatch },
      );
    }
    if (error instanceof IssuerExpiredError) {
      throw new DeploymentFaultError(`${settings.label} ${settings.connection} cannot issue: ${error.message}`, {
        component: settings.component,
        cause: error,
        hint: settings.hints?.expired,
      });
    }
    throw error;
  }
  await settings.record?.(built);
  if (built.cappedByIssuer === true) {
    // The profile's validity reaches past the CA certificate's end: the leaf ends with the CA. Renew the CA.
    ctx.log.warn(
      {
        caConnection: settings.connection,
        serial: built.serialHex,
        processId: request.processId,
        profile: request.profile.name,
        notAfter: built.notAfter.toISOString(),
        caNotAfter: ca.certificate.notAfter.toISOString(),
        profileValidityDays: Math.round(request.profile.validityMs / DAY_MS),
      },
      `${settings.label} shortened the certificate: the CA certificate expires before the profile's validity ends`,
    );
  }
  // certprov_ca_certificates_issued_total is counted by the workflow for every backend (steps/issue.ts).
  ctx.log.info(
    {
      caConnection: settings.connection,
      serial: built.serialHex,
      processId: request.processId,
      correlationId: request.correlationId,
      ...settings.logFields,
      notAfter: built.notAfter.toISOString(),
    },
    `${settings.label} issued certificate`,
  );
  return { status: 'issued', certificatePem: built.pem, chainPem: ca.chainPem };
}

/**
 * Reads a `chainFile`: the CA certificate's parents (PEM), each the issuer of the one before, the parent first.
 * @returns the parents as PEM, re-encoded.
 * @throws Error saying what is wrong (the caller wraps it into its deployment fault).
 */
export async function readChainFile(file: string, certificate: ParsedCertificate): Promise<string[]> {
  const blocks = splitPemBundle(await readFile(file, 'utf8'));
  if (blocks.length === 0 || blocks.some((b) => b.label !== 'CERTIFICATE')) {
    throw new Error('expected CERTIFICATE blocks only');
  }
  const parents = blocks.map((b) => parseCertificate(b.der));
  let child = certificate;
  for (const parent of parents) {
    if (!bytesEqual(parent.subjectNameDer, child.issuerNameDer)) {
      throw new Error("certificates must follow the CA certificate's issuer chain, parent first");
    }
    child = parent;
  }
  return parents.map((p) => encodePem('CERTIFICATE', p.der));
}

/** Resolves with `promise`, or rejects with the signal's reason as soon as it aborts (the work itself goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  const onAbort: { reject?: () => void } = {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort.reject = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort.reject, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => {
    if (onAbort.reject !== undefined) signal.removeEventListener('abort', onAbort.reject);
  });
}

/**
 * The issuing material of a CA whose key is remote (Key Vault, Cloud KMS): loaded once from pinned, immutable
 * versions and kept for the life of the connection — every extra call would count against the service's quota.
 * Concurrent callers share one load; a failed load is forgotten, so the next caller tries again.
 */
export class IssuingMaterialCache<T> {
  readonly #load: (signal: AbortSignal) => Promise<T>;
  readonly #lifetime = new AbortController();
  #material: Promise<T> | undefined;

  constructor(load: (signal: AbortSignal) => Promise<T>) {
    this.#load = load;
  }

  /** Aborted when the connection closes: background loads and signatures end with it. */
  get signal(): AbortSignal {
    return this.#lifetime.signal;
  }

  /** The material; `signal` stops the caller's wait, not the shared load. */
  get(signal: AbortSignal): Promise<T> {
    this.#material ??= this.#load(this.#lifetime.signal).catch((error: unknown) => {
      this.#material = undefined;
      throw error;
    });
    return untilAborted(this.#material, signal);
  }

  /**
   * Loads in the background so the first device does not wait. Not awaited: a slow or unreachable service must not
   * hold up start-up (DESIGN.md §6); a failure is logged and the first issue tries again.
   */
  warm(log: Logger, connection: string, label: string, ready: (material: T) => Record<string, unknown>): void {
    this.get(this.#lifetime.signal).then(
      (material) => log.info({ caConnection: connection, ...ready(material) }, `${label} ready`),
      (error: unknown) => {
        if (this.#lifetime.signal.aborted) return;
        log.warn(
          { caConnection: connection, error: describeError(error) },
          `${label} could not load its certificate yet; the first issue will try again`,
        );
      },
    );
  }

  close(reason: string): void {
    this.#lifetime.abort(new Error(reason));
  }
}

/**
 * Why a configured CA certificate cannot issue — not a CA, or expired — or undefined when it can. The caller turns
 * it into its deployment fault with its own hint.
 */
export function caCertificateProblem(certificate: ParsedCertificate, now: Date): 'not-ca' | 'expired' | undefined {
  if (!certificate.isCa) return 'not-ca';
  if (certificate.notAfter.getTime() <= now.getTime()) return 'expired';
  return undefined;
}

/**
 * What a self-signing CA (local key, Key Vault, Cloud KMS) can carry: everything, since the certificate is built here
 * from the profile and only the signature comes from the key's home. The profile's keyUsage is written as it is.
 */
export function selfSigningCapabilities(maxValidityDays: number): CaCapabilities {
  return {
    keyTypes: ['rsa', 'ec'],
    subjectAttributes: 'any',
    subjectAltNameTypes: ['email', 'dns', 'uri', 'upn'],
    maxValidityDays,
    extendedKeyUsages: 'any',
    keyUsages: 'profile',
    requiresDurableStore: false,
  };
}

/** The `chainFile` a self-signing CA opens, when configured: check-config reports it missing at load. */
export function chainFileRequirement(chainFile: string | undefined): RequiredFile[] {
  return chainFile === undefined
    ? []
    : [{ field: 'chainFile', file: chainFile, hint: 'write the parent chain (PEM) there, or fix chainFile' }];
}

/** What the parent CA must put into the issuing CA certificate for it to issue device certificates. */
export const ISSUING_CA_PROFILE_HINT =
  'have the parent CA certify the CSR again with basicConstraints=critical,CA:true,pathlen:0, keyUsage=critical,keyCertSign,cRLSign and no extendedKeyUsage (or one that includes clientAuth), under parents whose pathLen leaves room for it';

/**
 * Why the CA certificate (with its parents: `chainPem`, the CA certificate first) cannot issue device certificates,
 * which carry clientAuth — keyUsage without keyCertSign, a parent's pathLen that leaves no room, an EKU that
 * excludes clientAuth (src/pki/issuing-ca-checks.ts) — naming each certificate and field; undefined when it can.
 * Checked by every self-signing CA at start and when a CA certificate is merged, instead of learning it from the
 * first RADIUS server that rejects a device.
 */
export function leafIssuingProblem(chainPem: readonly string[]): string | undefined {
  const problems = issuingCaProblems(
    chainPem.map((pem) => parseCertificate(pem)),
    [EXTENDED_KEY_USAGES.clientAuth as string],
  );
  return problems.length === 0 ? undefined : `cannot issue device certificates: ${problems.join('; ')}`;
}

/**
 * Revocation at a CA that signs itself: nothing remote to call — the serial goes on the connection's CRL, which the
 * adapter signs (src/lifecycle/crl.ts) from the inventory's revoked records. Refuses a certificate another CA issued.
 * @throws TerminalError when the certificate's issuer is not this CA.
 */
export function listOnOwnCrl(ca: IssuingCa, request: RevocationRequest, label: string): RevocationResult {
  const leaf = parseCertificate(request.certificatePem);
  const sameIssuer =
    bytesEqual(leaf.issuerNameDer, ca.certificate.subjectNameDer) &&
    (leaf.authorityKeyIdentifier === undefined ||
      ca.certificate.subjectKeyIdentifier === undefined ||
      bytesEqual(leaf.authorityKeyIdentifier, ca.certificate.subjectKeyIdentifier));
  if (!sameIssuer || leaf.serialHex !== request.serial) {
    throw new TerminalError(`certificate ${request.serial} was not issued by this ${label}`, {
      reason: 'ca_rejected',
      userMessage: 'The certificate was not issued by this certificate authority.',
    });
  }
  return { status: 'listed' };
}
