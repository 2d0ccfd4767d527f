/**
 * Google Cloud Certificate Authority Service (`type: google-cas`). One `CreateCertificate` per device in the
 * configured CA pool, with the profile's subject, SANs, key usage and EKUs and the device's public key
 * (certificate-config.ts); CAS signs, keeps the certificate and publishes the CRL.
 *
 * Idempotent by construction (DESIGN.md §5, "never two CA orders for one process"): the certificate id is derived
 * from the process id, so every attempt for a process — a retry after a timeout, a replica that crashed between
 * CreateCertificate and recording the result — names the same certificate. CAS refuses a second certificate with
 * that id (ALREADY_EXISTS); the backend then reads the existing one back and returns it. The request id (a UUID
 * derived the same way) additionally lets CAS answer a repeated request with the first one's result.
 *
 * Requests to a pool share a client-side budget across replicas (the store's token buckets, as for DigiCert): CAS's
 * quotas are per pool, and a burst over them only produces RESOURCE_EXHAUSTED answers.
 */
import { createHash } from 'node:crypto';
import { DeploymentFaultError, RetryableError, TerminalError, describeError } from '../../errors.ts';
import { markNothingApplied } from '../../http/classify.ts';
import { abortableSleep } from '../../http/abortable-sleep.ts';
import { parseCertificate } from '../../pki/certificate.ts';
import { bytesEqual } from '../../pki/der.ts';
import { encodePem } from '../../pki/pem.ts';
import type { CrlReason } from '../../pki/crl-reason.ts';
import { MemoryProcessStore } from '../../store/memory.ts';
import type { CoordinationStore, RateWindow } from '../../store/types.ts';
import {
  GOOGLE_STATUS,
  GoogleRequestRefused,
  classifyGoogleError,
  googleStatusOf,
  type GoogleAuthLike,
} from '../google-cloud.ts';
import type {
  CaDependencies,
  CaServices,
  CertificateAuthority,
  IssueRequest,
  IssueResult,
  RevocationRequest,
  RevocationResult,
  StepContext,
} from '../types.ts';
import { certificateConfigFor } from './certificate-config.ts';
import { createCasClient, type CasCertificate, type CasClient } from './client.ts';
import type { CasCaConfig } from './config.ts';
import { DAY_MS } from '../../time.ts';

/** The role that allows CreateCertificate (and reading the certificates it made) in a pool. */
export const CAS_REQUESTER_ROLE = 'roles/privateca.certificateRequester';
/** Revocation needs more than requesting: roles/privateca.certificateManager. */
export const CAS_MANAGER_ROLE = 'roles/privateca.certificateManager';
/** The permission the probe tests on the pool. */
export const CAS_CREATE_PERMISSION = 'privateca.certificates.create';

/** RFC 5280 CRLReason names → CAS RevocationReason (removeFromCRL has no CAS equivalent: CAS cannot un-revoke). */
const CAS_REVOCATION_REASONS: Readonly<Partial<Record<CrlReason, string>>> = {
  unspecified: 'REVOCATION_REASON_UNSPECIFIED',
  keyCompromise: 'KEY_COMPROMISE',
  cACompromise: 'CERTIFICATE_AUTHORITY_COMPROMISE',
  affiliationChanged: 'AFFILIATION_CHANGED',
  superseded: 'SUPERSEDED',
  cessationOfOperation: 'CESSATION_OF_OPERATION',
  certificateHold: 'CERTIFICATE_HOLD',
  privilegeWithdrawn: 'PRIVILEGE_WITHDRAWN',
  aACompromise: 'ATTRIBUTE_AUTHORITY_COMPROMISE',
};

export interface CasCaOptions {
  readonly auth?: GoogleAuthLike;
  readonly client?: CasClient;
}

/**
 * The certificate id of a process: `certprov-` + 32 hex digits of SHA-256(process id). Stable across attempts and
 * replicas (the idempotency key), within CAS's `[a-zA-Z0-9_-]{1,63}`, and free of the process id itself.
 */
export function certificateIdFor(processId: string): string {
  return `certprov-${createHash('sha256').update(`certificate:${processId}`).digest('hex').slice(0, 32)}`;
}

/** A UUID (version 4 layout) derived from the process id: the same request id on every attempt. */
export function requestIdFor(processId: string, purpose = 'create'): string {
  const bytes = createHash('sha256').update(`${purpose}:${processId}`).digest().subarray(0, 16);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The budget had no room within `maxWait`; nothing was sent. */
export class CasBudgetExhaustedError extends RetryableError {}

export class CasCa implements CertificateAuthority {
  readonly type = 'google-cas';
  readonly name: string;
  readonly config: CasCaConfig;
  readonly #client: CasClient;
  readonly #windows: readonly RateWindow[];
  readonly #bucket: string;
  #store: CoordinationStore = new MemoryProcessStore();
  #requests = 0;

  private constructor(name: string, config: CasCaConfig, client: CasClient) {
    this.name = name;
    this.config = config;
    this.#client = client;
    this.#windows = [
      { limit: config.rateLimit.requestsPerSecond, windowMs: 1_000 },
      { limit: config.rateLimit.requestsPerMinute, windowMs: 60_000 },
    ];
    // One bucket per pool, whatever the connection is called: CAS's quota is the pool's.
    this.#bucket = `google-cas:${createHash('sha256').update(config.caPool).digest('hex').slice(0, 16)}`;
  }

  /** Builds the connection; no network traffic yet. */
  static async create(
    name: string,
    config: CasCaConfig,
    _deps: CaDependencies,
    options: CasCaOptions = {},
  ): Promise<CasCa> {
    const client =
      options.client ??
      (await createCasClient({ endpoint: config.endpoint, auth: options.auth, timeoutMs: config.requestTimeout }));
    return new CasCa(name, config, client);
  }

  /** CAS requests this connection has sent (each attempt counts); the benchmark's numerator. */
  get requests(): number {
    return this.#requests;
  }

  /** Switches the rate budget to the store shared by every replica. */
  start(services: CaServices): Promise<void> {
    this.#store = services.store;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.#client.close();
  }

  #error(error: unknown, action: string, role = CAS_REQUESTER_ROLE): Error {
    return classifyGoogleError(error, {
      component: 'google-cas',
      service: 'Certificate Authority Service',
      action,
      role,
      resource: this.config.caPool,
    });
  }

  /** Waits for a token of the pool's budget; gives up (nothing sent) when the wait would exceed `maxWait`. */
  async #token(signal: AbortSignal): Promise<void> {
    const started = Date.now();
    for (;;) {
      signal.throwIfAborted();
      const wait = await this.#store.takeToken(this.#bucket, this.#windows);
      if (wait === 0) return;
      if (Date.now() - started + wait > this.config.rateLimit.maxWait) {
        throw markNothingApplied(
          new CasBudgetExhaustedError(
            `Certificate Authority Service: the client-side budget of ${this.config.caPool} has no room for ` +
              `${Math.ceil(wait / 1000)} s (nothing sent)`,
            { retryAfterMs: wait },
          ),
        );
      }
      await abortableSleep(wait + Math.floor(Math.random() * 20), signal);
    }
  }

  async #send<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    await this.#token(signal);
    this.#requests += 1;
    return call();
  }

  async issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    ctx.signal.throwIfAborted();
    const certificateId = certificateIdFor(request.processId);
    const name = `${this.config.caPool}/certificates/${certificateId}`;
    const lifetimeMs = Math.min(request.profile.validityMs, this.config.maxValidityDays * DAY_MS);
    let certificate: CasCertificate;
    /** The certificate was read back (its state is current), not taken from a CreateCertificate answer. */
    let readBack = false;
    try {
      certificate = await this.#send(ctx.signal, () =>
        this.#client.createCertificate(
          {
            parent: this.config.caPool,
            certificateId,
            requestId: requestIdFor(request.processId),
            issuingCertificateAuthorityId: this.config.issuingCertificateAuthorityId,
            certificateTemplate: this.config.certificateTemplate,
            lifetimeSeconds: Math.max(1, Math.floor(lifetimeMs / 1000)),
            config: certificateConfigFor(request.profile, request.spkiDer, request.deviceKey.type),
          },
          ctx.signal,
        ),
      );
    } catch (error) {
      if (googleStatusOf(error) === GOOGLE_STATUS.ALREADY_EXISTS) {
        // An earlier attempt for this process got its certificate (we crashed or lost the answer): read it back.
        ctx.log.info(
          { caConnection: this.name, certificate: name, processId: request.processId },
          'CAS already holds the certificate of this process (an earlier attempt); reading it back',
        );
        try {
          certificate = await this.#send(ctx.signal, () => this.#client.getCertificate(name, ctx.signal));
          readBack = true;
        } catch (readError) {
          throw this.#error(readError, `GetCertificate ${name}`);
        }
      } else {
        const classified = this.#error(error, `CreateCertificate in ${this.config.caPool}`);
        if (classified instanceof GoogleRequestRefused) {
          return {
            status: 'failed',
            detail: classified.message,
            userMessage: classified.userMessage,
          };
        }
        throw classified;
      }
    }
    if (request.priorAttempts > 0 && !readBack && !certificate.revoked) {
      // A replay: CAS may have answered a repeated request id with the first answer, which says nothing about what
      // happened since (a revocation). Read the certificate's current state once.
      try {
        certificate = await this.#send(ctx.signal, () => this.#client.getCertificate(certificate.name, ctx.signal));
      } catch (error) {
        throw this.#error(error, `GetCertificate ${certificate.name}`);
      }
    }
    return this.#result(certificate, request, ctx);
  }

  #result(certificate: CasCertificate, request: IssueRequest, ctx: StepContext): IssueResult {
    let leaf;
    try {
      leaf = parseCertificate(certificate.pemCertificate);
    } catch (error) {
      throw new RetryableError(
        `Certificate Authority Service returned no readable certificate for ${certificate.name} (${describeError(error)})`,
        { cause: error },
      );
    }
    if (!bytesEqual(leaf.spkiDer, request.spkiDer)) {
      // Only possible if a certificate of this id was made for another key (another adapter sharing the pool with a
      // colliding process id): never hand a device a certificate for a key it does not hold.
      throw new TerminalError(`CAS certificate ${certificate.name} does not carry this device's public key`, {
        reason: 'ca_misbehaved',
        userMessage: 'The certificate authority returned a certificate for another key.',
      });
    }
    if (certificate.revoked) {
      return {
        status: 'failed',
        detail: `CAS certificate ${certificate.name} of this process has been revoked`,
        userMessage: 'The certificate for this request was revoked at the certificate authority.',
      };
    }
    ctx.log.info(
      {
        caConnection: this.name,
        serial: leaf.serialHex,
        certificate: certificate.name,
        processId: request.processId,
        correlationId: request.correlationId,
        notAfter: leaf.notAfter.toISOString(),
      },
      'CAS issued certificate',
    );
    return {
      status: 'issued',
      // Exactly one certificate, re-encoded from what was parsed (CAS may add trailing newlines).
      certificatePem: encodePem('CERTIFICATE', leaf.der),
      chainPem: certificate.pemCertificateChain,
    };
  }

  /**
   * RevokeCertificate with the RFC 5280 reason; CAS puts it on the pool's CRL itself. The certificate is found in
   * the pool by its serial (ListCertificates). Revoking a certificate CAS already revoked is done, not an error.
   */
  async revoke(request: RevocationRequest, ctx: StepContext): Promise<RevocationResult> {
    const casReason = CAS_REVOCATION_REASONS[request.reason];
    if (casReason === undefined) {
      throw new TerminalError(
        `CAS cannot revoke with reason ${request.reason} (it cannot take a certificate off a CRL)`,
        {
          reason: 'internal',
          userMessage: 'The revocation reason is not supported.',
        },
      );
    }
    let found: CasCertificate[];
    try {
      found = await this.#send(ctx.signal, () =>
        this.#client.findBySerial(this.config.caPool, request.serial, ctx.signal),
      );
    } catch (error) {
      throw this.#error(error, `ListCertificates in ${this.config.caPool}`, CAS_MANAGER_ROLE);
    }
    const certificate = found.find((c) => {
      try {
        return parseCertificate(c.pemCertificate).serialHex.toLowerCase() === request.serial.toLowerCase();
      } catch {
        return false;
      }
    });
    if (certificate === undefined) {
      throw new TerminalError(`CAS pool ${this.config.caPool} holds no certificate with serial ${request.serial}`, {
        reason: 'ca_rejected',
        userMessage: 'The certificate authority does not know this certificate.',
      });
    }
    if (certificate.revoked) return { status: 'revoked' };
    try {
      await this.#send(ctx.signal, () =>
        this.#client.revokeCertificate(
          certificate.name,
          casReason,
          requestIdFor(`${certificate.name}:${request.reason}`, 'revoke'),
          ctx.signal,
        ),
      );
    } catch (error) {
      // FAILED_PRECONDITION: revoked meanwhile (CAS refuses a second revocation).
      if (googleStatusOf(error) === GOOGLE_STATUS.FAILED_PRECONDITION) {
        const current = await this.#client.getCertificate(certificate.name, ctx.signal).catch(() => undefined);
        if (current?.revoked === true) return { status: 'revoked' };
      }
      throw this.#error(error, `RevokeCertificate ${certificate.name}`, CAS_MANAGER_ROLE);
    }
    ctx.log.info(
      { caConnection: this.name, certificate: certificate.name, serial: request.serial, reason: request.reason },
      'CAS revoked certificate',
    );
    return { status: 'revoked' };
  }

  /**
   * `check-config --probe`, read-only: the pool exists (GetCaPool), the caller may request certificates in it
   * (testIamPermissions privateca.certificates.create), and the pool's policy fits the connection (lifetime,
   * subject and SAN passthrough, backdating).
   */
  async probe(ctx: StepContext): Promise<string> {
    let pool;
    try {
      pool = await this.#client.getCaPool(this.config.caPool, ctx.signal);
    } catch (error) {
      throw this.#error(error, `GetCaPool ${this.config.caPool}`);
    }
    let granted: string[];
    try {
      granted = await this.#client.testIamPermissions(this.config.caPool, [CAS_CREATE_PERMISSION], ctx.signal);
    } catch (error) {
      throw this.#error(error, `testIamPermissions on ${this.config.caPool}`);
    }
    if (!granted.includes(CAS_CREATE_PERMISSION)) {
      throw new DeploymentFaultError(
        `Certificate Authority Service: the adapter may not request certificates in ${this.config.caPool} ` +
          `(${CAS_CREATE_PERMISSION} not granted)`,
        {
          component: 'google-cas',
          hint: `grant ${CAS_REQUESTER_ROLE} on the pool to the adapter's service account (Workload Identity)`,
        },
      );
    }
    const notes: string[] = [];
    if (pool.allowSubjectPassthrough === false || pool.allowSubjectAltNamesPassthrough === false) {
      throw new DeploymentFaultError(
        `Certificate Authority Service: the issuance policy of ${this.config.caPool} does not let the adapter set ` +
          'the subject and SANs (identityConstraints allowSubjectPassthrough / allowSubjectAltNamesPassthrough)',
        { component: 'google-cas', hint: 'set both to true on the pool or the certificate template' },
      );
    }
    const maxDays = pool.maximumLifetimeSeconds === undefined ? undefined : pool.maximumLifetimeSeconds / 86_400;
    if (maxDays !== undefined && maxDays < this.config.maxValidityDays) {
      notes.push(`the pool caps lifetimes at ${Math.floor(maxDays)} days, below maxValidityDays`);
    }
    if (pool.backdateSeconds < 60) {
      notes.push('the pool does not backdate notBefore (set issuancePolicy.backdateDuration for device clock skew)');
    }
    return (
      `Certificate Authority Service pool ${this.config.caPool} (${pool.tier}): may request certificates` +
      (notes.length === 0 ? '' : `; note: ${notes.join('; ')}`)
    );
  }
}
