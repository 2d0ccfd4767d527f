/**
 * The Chrome Management API's certificate provisioning resource, typed from
 * ../shared/reference/chrome-cert-provisioning-api.md. Every field is optional: the resource is filled according
 * to the process state, and older revisions carried the two adapter config references as flat top-level strings.
 */
import type { StepContext } from '../step-context.ts';

export const CERTPROV_SCOPE = 'https://www.googleapis.com/auth/chrome.management.certprov.provisioningprocess';
export const DEFAULT_CHROME_ENDPOINT = 'https://chromemanagement.googleapis.com';

export type SignatureAlgorithm =
  'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256' | 'SIGNATURE_ALGORITHM_ECDSA_SHA256' | 'SIGNATURE_ALGORITHM_UNSPECIFIED';

export interface ChromeOsDevice {
  deviceDirectoryApiId?: string;
  serialNumber?: string;
}

export interface ChromeOsUserSession {
  userPrimaryEmail?: string;
  userDirectoryApiId?: string;
  /** Present for affiliated users only. */
  chromeOsDevice?: ChromeOsDevice;
}

export interface CertificateProvisioningProcess {
  /** `customers/{customer}/certificateProvisioningProcesses/{id}` */
  name?: string;
  provisioningProfileId?: string;
  /** Base64 DER SubjectPublicKeyInfo of the key the ChromeOS client holds. */
  subjectPublicKeyInfo?: string;
  chromeOsDevice?: ChromeOsDevice;
  chromeOsUserSession?: ChromeOsUserSession;
  genericCaConnection?: { caConnectionAdapterConfigReference?: string };
  genericProfile?: { profileAdapterConfigReference?: string };
  /**
   * SCEP processes belong to a SCEP connector, never to this adapter — even when their connection carries a
   * `caConnectionAdapterConfigReference` that happens to name one of our CA connections.
   */
  scepCaConnection?: { caConnectionAdapterConfigReference?: string } & Record<string, unknown>;
  scepProfile?: Record<string, unknown>;
  /** Older flat shape of genericCaConnection.caConnectionAdapterConfigReference. */
  caConnectionAdapterConfigReference?: string;
  /** Older flat shape of genericProfile.profileAdapterConfigReference. */
  profileAdapterConfigReference?: string;
  startTime?: string;
  /** Base64; set once signData was called. */
  signData?: string;
  signatureAlgorithm?: SignatureAlgorithm;
  /** Base64; set once the device answered. */
  signature?: string;
  /** PEM; set once a certificate was uploaded. */
  issuedCertificate?: string;
  /** Set once the process failed. */
  failureMessage?: string;
}

export interface Operation {
  name: string;
  metadata?: Record<string, unknown>;
  done?: boolean;
  response?: { '@type'?: string; certificateProvisioningProcess?: CertificateProvisioningProcess };
  error?: { code?: number; message?: string };
}

/** Identifies one process. */
export interface ProcessRef {
  readonly customer: string;
  readonly processId: string;
}

export type ClaimResult = { readonly claimed: true } | { readonly claimed: false; readonly detail: string };

/**
 * The six calls the adapter makes. Implementations classify every failure (src/errors.ts) and never log tokens.
 * Safe to repeat: get, claim, getOperation, setFailure. Unsafe: signData (never resent after an unclear result —
 * it throws UnclearResultError and the caller reads the process back). uploadCertificate after an unclear result:
 * read back `issuedCertificate`.
 */
export interface ChromeApi {
  get(ref: ProcessRef, ctx: StepContext): Promise<CertificateProvisioningProcess>;
  claim(ref: ProcessRef, callerInstanceId: string, ctx: StepContext): Promise<ClaimResult>;
  signData(ref: ProcessRef, signData: Uint8Array, algorithm: SignatureAlgorithm, ctx: StepContext): Promise<Operation>;
  getOperation(operationName: string, ctx: StepContext): Promise<Operation>;
  uploadCertificate(ref: ProcessRef, certificatePem: string, ctx: StepContext): Promise<void>;
  setFailure(ref: ProcessRef, errorMessage: string, ctx: StepContext): Promise<void>;
}

/** Accepts both resource shapes (nested and the older flat one). */
export function caConnectionReferenceOf(process: CertificateProvisioningProcess): string | undefined {
  return process.genericCaConnection?.caConnectionAdapterConfigReference ?? process.caConnectionAdapterConfigReference;
}

/** Accepts both resource shapes (nested and the older flat one). */
export function profileReferenceOf(process: CertificateProvisioningProcess): string | undefined {
  return process.genericProfile?.profileAdapterConfigReference ?? process.profileAdapterConfigReference;
}

export function processResourceName(ref: ProcessRef): string {
  return `customers/${ref.customer}/certificateProvisioningProcesses/${ref.processId}`;
}
