/**
 * The CA backend contract (DESIGN.md §4). One small interface; the generic lifecycle — retries, persistence,
 * leases, upload, setFailure — lives in src/provisioning/, never in a backend (cert-manager's Issuer.Sign,
 * smallstep's CAS registry).
 */
import type { StepContext } from '../step-context.ts';
import type { z } from 'zod';
import type { DeploymentFaultError, FaultComponent } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { CoordinationStore } from '../store/types.ts';
import type { CrlReason } from '../pki/crl-reason.ts';
import type { CrlSettings } from './crl-settings.ts';
import type { PendingRef } from './pending-ref.ts';
import type { ParsedCertificate, TbsSigner } from '../pki/certificate-builder.ts';
import type { SanTemplate, SubjectTemplate } from '../pki/subject-template.ts';
import type { DeviceKeyInfo, KeyType, LeafKeyUsage, RenderedProfile, SubjectAltNameType } from '../pki/types.ts';

export type { StepContext } from '../step-context.ts';

export interface IssueRequest {
  /** Chrome process id; idempotency and audit key (DigiCert stores it in a custom field). */
  readonly processId: string;
  /** The id the user sees in a failure message; also in every log line of this process. */
  readonly correlationId: string;
  /** Name of the CA connection in configuration. */
  readonly caConnection: string;
  /** The PKCS#10 CSR (DER) assembled from the bytes the device signed; its signature has been verified. */
  readonly csrDer: Uint8Array;
  /** The device's SubjectPublicKeyInfo (DER). The issued leaf must carry exactly these bytes. */
  readonly spkiDer: Uint8Array;
  readonly deviceKey: DeviceKeyInfo;
  /** Subject, SANs, validity and EKUs rendered from the profile for this process. */
  readonly profile: RenderedProfile;
  /**
   * How many earlier `issue` calls for this process were started (intent recorded durably) without a recorded
   * result. 0 on the first attempt. A backend whose orders are not idempotent (DigiCert) must reconcile with the
   * CA before ordering again when this is > 0.
   */
  readonly priorAttempts: number;
  /**
   * Epoch ms when the adapter first recorded this process: no CA order for it can be older. Narrows a search for an
   * earlier attempt's order (DigiCert's order list by creation date). Unknown for requests built outside the
   * workflow.
   */
  readonly processCreatedAt?: number;
  /**
   * The certificate this process renews: the active certificate of the same holder and profile this connection
   * issued, as the inventory knows it when the process reaches the CA. Looked up only for a CA that
   * {@link CertificateAuthority.linksRenewals}; absent on a first issuance.
   */
  readonly renews?: RenewedCertificate;
}

/** The inventory's view of the certificate a process replaces (src/store/inventory.ts). */
export interface RenewedCertificate {
  /** Serial number, lowercase hex. */
  readonly serial: string;
  /** Epoch ms. */
  readonly notAfter: number;
  /** The CA's reference recorded at its issuance (DigiCert: order and certificate ids). */
  readonly caRef?: PendingRef;
}

export type { PendingRef } from './pending-ref.ts';

export type IssueResult =
  | {
      readonly status: 'issued';
      /** The leaf certificate, PEM, exactly one. */
      readonly certificatePem: string;
      /** Issuer chain (PEM, leaf's issuer first), for logs and audit; never uploaded. */
      readonly chainPem?: readonly string[];
      /**
       * The CA's reference for the request that produced it (DigiCert: order and certificate ids), kept in the
       * inventory (`caRef`) for revocation and renewal linkage. A certificate that was pending first keeps its
       * pending ref when this is absent.
       */
      readonly ref?: PendingRef;
    }
  | {
      readonly status: 'pending';
      readonly ref: PendingRef;
      /** When to poll again. */
      readonly retryAfterMs: number;
      /**
       * An index key under which {@link CaServices.wake} can find this process again (e.g. the order id), when the
       * backend learns about status changes in bulk.
       */
      readonly lookupKey?: string;
    }
  | {
      readonly status: 'failed';
      /** Detail for the log line (order id, CA status). */
      readonly detail: string;
      /** For the ChromeOS user; the workflow appends the correlation id. */
      readonly userMessage: string;
    };

/** What `revoke` is asked to revoke: one certificate from the inventory (src/store/inventory.ts). */
export interface RevocationRequest {
  /** Serial number, lowercase hex. */
  readonly serial: string;
  readonly certificatePem: string;
  /** The CA's reference from issuance (DigiCert: order and certificate ids). */
  readonly ref?: PendingRef;
  readonly reason: CrlReason;
  /** Free text for the CA's records (DigiCert `comments`); no personal data. */
  readonly comment: string;
}

export type RevocationResult =
  /** The CA revoked it and publishes the revocation itself (its own CRL/OCSP). */
  | { readonly status: 'revoked' }
  /** A self-run CA: the adapter lists the serial on the connection's CRL (state in the store). */
  | { readonly status: 'listed' }
  /** The CA holds the request until an administrator approves it there (DigiCert). */
  | { readonly status: 'pending_approval'; readonly requestId?: string };

/**
 * A CA connection as the workflow sees it: one required ability, `issue`. Everything else a CA may do is one of the
 * small interfaces below, implemented only where the CA can; {@link abilitiesOf} (ca/connection.ts) detects them
 * once, when the connection is built (smallstep's optional CAS interfaces).
 */
export interface CertificateAuthority {
  /** Configuration name of this connection (the caConnectionAdapterConfigReference). */
  readonly name: string;
  /** The backend type (`local`, `digicert`, …); a metric label. */
  readonly type: string;

  /**
   * The CA links a renewal to the certificate it replaces (DigiCert's `renewal_of_order_id`): the workflow then
   * looks the predecessor up in the inventory before `issue` (one store query per issuance) and hands it over as
   * {@link IssueRequest.renews}. Absent or false: no lookup.
   */
  readonly linksRenewals?: boolean;

  /** Issue a certificate for a verified CSR; never throws for a CA's definitive rejection (returns `failed`). */
  issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult>;
}

/** A CA whose `issue` may answer `pending`: it follows the request and can withdraw it. */
export interface PendingIssuance {
  /** Follow a pending request. */
  poll(ref: PendingRef, request: IssueRequest, ctx: StepContext): Promise<IssueResult>;
  /** Withdraw a pending request nobody will install (the process failed or waited too long). */
  cancel(ref: PendingRef, reason: string, ctx: StepContext): Promise<void>;
}

/** A CA with work outside any one process (bulk status polling). */
export interface BackgroundWork {
  /** Starts background work. Called once after construction in `run`/`demo`. */
  start(services: CaServices): Promise<void>;
  /** Stops background work and releases resources. */
  close(): Promise<void>;
}

/** A CA that can check its credentials and reachability without side effects, for `check-config --probe`. */
export interface Probe {
  /** Resolves with a short description of what was checked, rejects with a classified error. */
  probe(ctx: StepContext): Promise<string>;
}

/** A CA that can revoke a certificate it issued. */
export interface Revocation {
  /**
   * Revokes one certificate this connection issued (DESIGN.md §9); `certprov revoke` reports per certificate when a
   * connection lacks this ability. Throws a classified error when the CA refuses or fails.
   */
  revoke(request: RevocationRequest, ctx: StepContext): Promise<RevocationResult>;
}

/** What a self-signing CA issues with: its certificate, the chain above the leaf, and a signer for its key. */
export interface IssuingCa {
  readonly certificate: ParsedCertificate;
  /** The CA certificate first, then its parents (IssueResult.chainPem). */
  readonly chainPem: readonly string[];
  readonly signer: TbsSigner;
}

/**
 * A CA that signs itself (local, Key Vault): the CA certificate and the signer of its key, so the adapter can sign
 * the connection's CRL (src/lifecycle/crl.ts). Loads remote material at most once.
 */
export interface CrlIssuer {
  crlIssuer(signal: AbortSignal): Promise<IssuingCa>;
  /** The connection's `crl` settings; undefined when it publishes no CRL (its leaves then carry no CDP). */
  crlSettings(): CrlSettings | undefined;
}

/** The optional abilities of one CA connection, detected once. */
export interface CaAbilities {
  readonly pending?: PendingIssuance;
  readonly background?: BackgroundWork;
  readonly probe?: Probe;
  readonly revocation?: Revocation;
  readonly crlIssuer?: CrlIssuer;
}

/** What a backend may use for background work. */
export interface CaServices {
  readonly store: CoordinationStore;
  /** A stable id of this replica (lease owner). */
  readonly replicaId: string;
  /** Marks the process waiting on `lookupKey` as due now (e.g. after a bulk status poll saw its order change). */
  wake(lookupKey: string, hint?: PendingRef): Promise<boolean>;
  /**
   * Background work that hits a deployment fault (a revoked API key seen by a poller) reports it here, so readiness
   * and `certprov_deployment_fault_active` show it even when no process is being issued; the next success clears it.
   */
  reportFault(error: DeploymentFaultError): void;
  clearFault(component: FaultComponent): void;
  readonly signal: AbortSignal;
}

/** What a backend can honour; a profile that asks for more is rejected at config load (DESIGN.md §4). */
export interface CaCapabilities {
  readonly keyTypes: readonly KeyType[];
  /** Subject attribute short names the CA will carry into the certificate, or 'any'. */
  readonly subjectAttributes: readonly string[] | 'any';
  readonly subjectAltNameTypes: readonly SubjectAltNameType[];
  /** Longest validity the backend can issue, in days. */
  readonly maxValidityDays: number;
  /** EKU OIDs the backend can put in a certificate, or 'any'. */
  readonly extendedKeyUsages: readonly string[] | 'any';
  /**
   * Who decides the leaf's keyUsage: `profile` — the backend puts the profile's `keyUsages` (or the key type's
   * default) into the certificate; `ca` — the CA sets it by its own product rules, so a profile that sets
   * `keyUsages` is rejected at config load rather than silently ignored.
   */
  readonly keyUsages: 'profile' | 'ca';
  /**
   * Ordering is not idempotent at the CA, so the intent must survive a crash: `run` refuses such a backend with
   * the memory store.
   */
  readonly requiresDurableStore: boolean;
}

/** Dependencies a backend receives when it is constructed. */
export interface CaDependencies {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Directory relative paths in the backend's configuration are resolved against (the config file's). */
  readonly baseDir: string;
}

/** A profile as configured (templates, not yet rendered), as {@link CaBackend.profileProblems} sees it. */
export interface ProfileTemplate {
  readonly name: string;
  readonly subject: SubjectTemplate;
  readonly subjectAltNames: readonly SanTemplate[];
  readonly validityMs: number;
  /** EKU OIDs. */
  readonly extendedKeyUsages: readonly string[];
  /** keyUsage bits; undefined: the key type's default (src/pki/key-usage.ts). */
  readonly keyUsages?: readonly LeafKeyUsage[];
}

/** One reason a connection cannot honour a profile. */
export interface ProfileProblem {
  /** The profile field it is about, relative to the profile: `subject`, `subjectAltNames`, `validity`, … */
  readonly field: string;
  /** Completes "CA connection "X" (type T) …", e.g. `needs exactly one CN`. */
  readonly message: string;
}

/**
 * A backend type: its configuration schema, what it can honour, and how to build it. Registered by `type` in
 * src/ca/registry.ts; an unknown type fails config validation before the first message.
 */
export interface CaBackend<Config extends { type: string } = { type: string }> {
  readonly type: Config['type'];
  /**
   * The component this backend's deployment faults are reported under (`/readyz`, the `component` metric label).
   * The workflow clears it after the next successful CA step; it knows no backend by name.
   */
  readonly faultComponent: FaultComponent;
  /** Validates the connection's configuration block (including `type`). */
  readonly configSchema: z.ZodType<Config>;
  capabilities(config: Config): CaCapabilities;
  /**
   * Checks finer than {@link CaCapabilities} can express (e.g. DigiCert: "O must be the validated organization's
   * name", "client products need an email SAN"), run at config load for every profile wired to a connection of
   * this type. Optional.
   */
  profileProblems?(config: Config, profile: ProfileTemplate): readonly ProfileProblem[];
  create(name: string, config: Config, deps: CaDependencies): Promise<CertificateAuthority>;
  /**
   * Files `create` will open (relative to the configuration file), so `check-config` and `run` report a missing one
   * at load with its field and what to do. Secret references (`{file}`/`{env}`) are found without this. Optional.
   */
  requiredFiles?(config: Config): readonly RequiredFile[];
}

/** A file a backend opens at start. */
export interface RequiredFile {
  /** The connection field naming it, e.g. `directory`. */
  readonly field: string;
  readonly file: string;
  /** What to do when it is missing. */
  readonly hint: string;
}
