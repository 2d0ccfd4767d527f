/**
 * One certificate provisioning process of the sandbox: the resource the Chrome Management API serves, its claim,
 * its signData operations, and the simulated ChromeOS client holding the real device key. The rules follow
 * ../shared/reference/chrome-cert-provisioning-api.md; each rejection below is one the real service or client makes.
 */
import { randomBytes, randomUUID, sign } from 'node:crypto';
import type { CertificateProvisioningProcess, Operation, SignatureAlgorithm } from '../chrome/types.ts';
import { ALREADY_CLAIMED_MESSAGE, failedPrecondition, invalidArgument, notFound } from './api-errors.ts';
import { checkUploadedCertificate, selfSignedDeviceCertificate, type UploadRejection } from './device-certificate.ts';
import type { DeviceKey } from './key-pool.ts';

export const SIGN_DATA_METADATA_TYPE = 'type.googleapis.com/google.chrome.management.versions.v1.SignDataMetadata';
export const SIGN_DATA_RESPONSE_TYPE = 'type.googleapis.com/google.chrome.management.versions.v1.SignDataResponse';

/** google.rpc.Code 3 (INVALID_ARGUMENT): what a failed signData operation carries. */
const OPERATION_ERROR_CODE = 3;

const DEFAULTS = {
  customer: 'my_customer',
  caConnection: 'default_ca_config',
  deviceProfile: 'device_profile',
  userProfile: 'user_profile',
  shape: 'nested',
  ecdsaEncoding: 'der',
  finishedFailureMessage: 'The CA could not issue the certificate.',
} as const satisfies Record<string, string>;

/** Who asked for the certificate. Given fields are used verbatim; omitted ones stay absent from the resource. */
export type SandboxSubject =
  | { readonly kind: 'device'; readonly serialNumber?: string; readonly deviceDirectoryApiId?: string }
  | {
      readonly kind: 'user';
      readonly userPrimaryEmail?: string;
      readonly userDirectoryApiId?: string;
      /** The device of an affiliated user; absent for unaffiliated users. */
      readonly device?: { readonly serialNumber?: string; readonly deviceDirectoryApiId?: string };
    };

/**
 * `nested`: `genericCaConnection`/`genericProfile` (current). `flat`: the two references as top-level strings
 * (older revisions). `scep`: a SCEP process (`scepCaConnection`/`scepProfile`), which belongs to Google's SCEP
 * connector and not to a generic adapter.
 */
export type ResourceShape = 'nested' | 'flat' | 'scep';

/** How the simulated device returns ECDSA signatures; which one real devices use is not published. */
export type EcdsaEncoding = 'der' | 'ieee-p1363';

export interface CreateProcessOptions {
  /** The key the simulated ChromeOS client holds (from a KeyPool). */
  readonly key: DeviceKey;
  /** Customer in the resource name. Default `my_customer`. */
  readonly customer?: string;
  /** Process id. Default: 16 random bytes, base64url. */
  readonly id?: string;
  /** Default: a device with a generated serial number and directory id. */
  readonly subject?: SandboxSubject;
  /** caConnectionAdapterConfigReference. Default `default_ca_config`. */
  readonly caConnection?: string;
  /** profileAdapterConfigReference. Default `device_profile` for devices, `user_profile` for users. */
  readonly profile?: string;
  /** Default `nested`. */
  readonly shape?: ResourceShape;
  /** Default `der`. */
  readonly ecdsaEncoding?: EcdsaEncoding;
  /** How long the device takes to sign after signData; `never` = offline. Default: the tenant's (20 ms). */
  readonly signDelayMs?: number | 'never';
  /** The device signs other bytes than signData (the adapter's verification must catch it). Default false. */
  readonly badSignature?: boolean;
  /** The device refuses to sign: the operation ends with error code 3 and the process fails. Default false. */
  readonly deviceRefuses?: boolean;
  /** The device never signs (until {@link SimulatedProcess.deviceComesOnline}). Default false. */
  readonly deviceOffline?: boolean;
  /** Already claimed by this other callerInstanceId. Default: unclaimed. */
  readonly preClaimedBy?: string;
  /** Already finished: `issued` carries a certificate for the device key, `failed` a failureMessage. */
  readonly finished?: 'issued' | 'failed';
}

/** Calls that reached a process (after auth and injected faults). */
export interface ProcessCounters {
  gets: number;
  claims: number;
  signDataCalls: number;
  operationGets: number;
  uploads: number;
  setFailures: number;
  /** signData calls after the first; each one failed the process on the device. */
  doubleSignData: number;
  /** uploadCertificate calls the device refused (chain, unparseable, foreign SPKI). */
  rejectedUploads: number;
}

export function emptyCounters(): ProcessCounters {
  return {
    gets: 0,
    claims: 0,
    signDataCalls: 0,
    operationGets: 0,
    uploads: 0,
    setFailures: 0,
    doubleSignData: 0,
    rejectedUploads: 0,
  };
}

interface OperationState {
  readonly name: string;
  readonly startTime: string;
  done: boolean;
  error?: { code: number; message: string };
}

/** Hooks of the owning tenant. */
export interface ProcessHost {
  /** Called once when the process gets `issuedCertificate` or `failureMessage`. */
  onFinished(process: SimulatedProcess): void;
  /** Default device signing delay. */
  readonly defaultSignDelayMs: number | 'never';
}

/** Accepts standard and URL-safe base64, padded or not, as proto3 JSON does for `bytes` fields. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64Strict(value: string): Buffer | undefined {
  const unpadded = value.replace(/=+$/, '');
  if (!BASE64.test(value) || unpadded.length % 4 === 1) return undefined;
  return Buffer.from(value, 'base64');
}

function algorithmFor(key: DeviceKey): SignatureAlgorithm {
  return key.type === 'ec-p256' ? 'SIGNATURE_ALGORITHM_ECDSA_SHA256' : 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256';
}

const KNOWN_ALGORITHMS: ReadonlySet<string> = new Set<SignatureAlgorithm>([
  'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256',
  'SIGNATURE_ALGORITHM_ECDSA_SHA256',
  'SIGNATURE_ALGORITHM_UNSPECIFIED',
]);

function generatedDeviceIds(): { serialNumber: string; deviceDirectoryApiId: string } {
  return { serialNumber: `SBX${randomBytes(5).toString('hex').toUpperCase()}`, deviceDirectoryApiId: randomUUID() };
}

/** A subject with every field filled, for bulk creation. */
export function generatedSubject(kind: 'device' | 'user', affiliated = true): SandboxSubject {
  if (kind === 'device') return { kind, ...generatedDeviceIds() };
  const tag = randomBytes(4).toString('hex');
  return {
    kind,
    userPrimaryEmail: `user-${tag}@example.com`,
    userDirectoryApiId: String(100_000_000_000_000_000_000n + BigInt(`0x${tag}`)),
    ...(affiliated ? { device: generatedDeviceIds() } : {}),
  };
}

const UPLOAD_REJECTION_MESSAGES: Readonly<Record<UploadRejection, string>> = {
  'not-exactly-one-certificate': 'The client rejected the certificate: the PEM must hold exactly one certificate.',
  unparseable: 'The client rejected the certificate: it could not be parsed.',
  'spki-mismatch': "The client rejected the certificate: its public key is not the client's key.",
};

export class SimulatedProcess {
  readonly id: string;
  readonly customer: string;
  readonly name: string;
  readonly key: DeviceKey;
  readonly counters: ProcessCounters = emptyCounters();
  /** The callerInstanceId holding the claim. */
  claimedBy: string | undefined;

  private readonly resource: CertificateProvisioningProcess;
  private readonly operations = new Map<string, OperationState>();
  private readonly host: ProcessHost;
  private readonly ecdsaEncoding: EcdsaEncoding;
  private readonly badSignature: boolean;
  private readonly deviceRefuses: boolean;
  private signDelayMs: number | 'never';
  private signTimer: NodeJS.Timeout | undefined;
  /** The operation the device will answer when it comes online. */
  private pendingOperation: OperationState | undefined;
  private closed = false;

  constructor(options: CreateProcessOptions, host: ProcessHost) {
    this.host = host;
    this.key = options.key;
    this.customer = options.customer ?? DEFAULTS.customer;
    this.id = options.id ?? randomBytes(16).toString('base64url');
    if (!/^[A-Za-z0-9_-]+$/.test(this.id)) throw new Error(`process id must be URL-safe: ${this.id}`);
    this.name = `customers/${this.customer}/certificateProvisioningProcesses/${this.id}`;
    this.ecdsaEncoding = options.ecdsaEncoding ?? DEFAULTS.ecdsaEncoding;
    this.badSignature = options.badSignature ?? false;
    this.deviceRefuses = options.deviceRefuses ?? false;
    this.signDelayMs = options.deviceOffline === true ? 'never' : (options.signDelayMs ?? host.defaultSignDelayMs);
    this.claimedBy = options.preClaimedBy;

    const subject = options.subject ?? generatedSubject('device');
    const profile = options.profile ?? (subject.kind === 'device' ? DEFAULTS.deviceProfile : DEFAULTS.userProfile);
    const caConnection = options.caConnection ?? DEFAULTS.caConnection;
    const shape = options.shape ?? DEFAULTS.shape;
    this.resource = {
      name: this.name,
      provisioningProfileId: randomUUID(),
      subjectPublicKeyInfo: options.key.spkiDer.toString('base64'),
      ...(subject.kind === 'device'
        ? { chromeOsDevice: deviceFields(subject) }
        : {
            chromeOsUserSession: {
              ...(subject.userPrimaryEmail === undefined ? {} : { userPrimaryEmail: subject.userPrimaryEmail }),
              ...(subject.userDirectoryApiId === undefined ? {} : { userDirectoryApiId: subject.userDirectoryApiId }),
              ...(subject.device === undefined ? {} : { chromeOsDevice: deviceFields(subject.device) }),
            },
          }),
      startTime: new Date().toISOString(),
      ...(shape === 'nested'
        ? {
            genericCaConnection: { caConnectionAdapterConfigReference: caConnection },
            genericProfile: { profileAdapterConfigReference: profile },
          }
        : shape === 'flat'
          ? { caConnectionAdapterConfigReference: caConnection, profileAdapterConfigReference: profile }
          : {
              // A SCEP connection names its connector's configuration too (the guide); it is not a generic adapter's.
              scepCaConnection: { caConnectionAdapterConfigReference: caConnection },
              scepProfile: { subjectCommonName: 'scep-subject', keyUsages: ['KEY_USAGE_SIGNING'] },
            }),
    };
    if (options.finished === 'issued') {
      this.resource.issuedCertificate = selfSignedDeviceCertificate(options.key, 'sandbox earlier certificate');
    } else if (options.finished === 'failed') {
      this.resource.failureMessage = DEFAULTS.finishedFailureMessage;
    }
  }

  get finished(): boolean {
    return this.resource.issuedCertificate !== undefined || this.resource.failureMessage !== undefined;
  }

  /** How the process ended, if it did. */
  get outcome(): 'issued' | 'failed' | undefined {
    if (this.resource.issuedCertificate !== undefined) return 'issued';
    return this.resource.failureMessage === undefined ? undefined : 'failed';
  }

  /** A copy of the resource as the API serves it. */
  snapshot(): CertificateProvisioningProcess {
    return structuredClone(this.resource);
  }

  /** Stops the simulated device (tenant shutdown). */
  close(): void {
    this.closed = true;
    this.cancelSigning();
  }

  // --- API methods -------------------------------------------------------------------------------------------

  get(): CertificateProvisioningProcess {
    this.counters.gets += 1;
    return this.snapshot();
  }

  claim(callerInstanceId: string): void {
    this.counters.claims += 1;
    // "can succeed only for one callerInstanceId"; a repeat claim by the holder succeeds (reference, "claim").
    if (this.claimedBy !== undefined && this.claimedBy !== callerInstanceId)
      throw failedPrecondition(ALREADY_CLAIMED_MESSAGE);
    this.claimedBy = callerInstanceId;
  }

  signData(signDataBase64: string, algorithm: string): Operation {
    this.counters.signDataCalls += 1;
    this.requireWorkable();
    if (!KNOWN_ALGORITHMS.has(algorithm)) {
      throw invalidArgument(
        `Invalid value at 'signature_algorithm' (type.googleapis.com/google.chrome.management.versions.v1.SignatureAlgorithm), "${algorithm}"`,
      );
    }
    if (algorithm !== algorithmFor(this.key)) {
      throw invalidArgument(
        `The signature algorithm ${algorithm} does not match the key of the certificate provisioning process.`,
      );
    }
    const data = decodeBase64Strict(signDataBase64);
    if (data === undefined) throw invalidArgument("Invalid value at 'sign_data' (TYPE_BYTES), Base64 decoding failed.");
    if (data.length === 0) throw invalidArgument('sign_data must not be empty.');

    const operation = this.newOperation();
    if (this.resource.signData !== undefined) {
      // signData is one-shot: the ChromeOS client fails the whole process when proof of possession is requested
      // a second time (reference, "Beyond the seed"; DESIGN.md §1).
      this.counters.doubleSignData += 1;
      this.failOnDevice(
        'The device received a second proof-of-possession request and stopped provisioning.',
        'The certificate provisioning process is in failure state CERTIFICATE_PROVISIONING_RESULT_ERROR: ' +
          'proof of possession was requested more than once.',
      );
      return this.operationJson(operation);
    }
    this.resource.signData = data.toString('base64');
    this.resource.signatureAlgorithm = algorithm;
    this.pendingOperation = operation;
    this.scheduleSigning();
    return this.operationJson(operation);
  }

  getOperation(operationId: string): Operation {
    this.counters.operationGets += 1;
    const operation = this.operations.get(operationId);
    if (operation === undefined) throw notFound(`Operation ${this.name}/operations/${operationId} not found.`);
    return this.operationJson(operation);
  }

  uploadCertificate(certificatePem: string): void {
    this.counters.uploads += 1;
    this.requireWorkable();
    if (this.resource.signature === undefined) {
      throw failedPrecondition('The certificate provisioning process has no proof-of-possession signature yet.');
    }
    // Certificate parsing happens here only: the device's checks (reference, "uploadCertificate").
    const rejection = checkUploadedCertificate(certificatePem, this.key.spkiDer);
    if (rejection !== undefined) {
      // The service accepts the upload and the client then fails the process: 200 {}, failureMessage set.
      this.counters.rejectedUploads += 1;
      this.setFailed(UPLOAD_REJECTION_MESSAGES[rejection]);
      return;
    }
    this.resource.issuedCertificate = certificatePem;
    this.host.onFinished(this);
  }

  setFailure(errorMessage: string): void {
    this.counters.setFailures += 1;
    this.requireWorkable();
    this.setFailed(errorMessage);
  }

  // --- simulated device ---------------------------------------------------------------------------------------

  /** Brings an offline device online: it signs a pending request after `delayMs` (default 0). */
  deviceComesOnline(delayMs = 0): void {
    this.signDelayMs = delayMs;
    if (this.pendingOperation !== undefined) this.scheduleSigning();
  }

  private scheduleSigning(): void {
    this.cancelSigning();
    if (this.signDelayMs === 'never' || this.closed) return;
    this.signTimer = setTimeout(() => {
      this.signTimer = undefined;
      this.deviceSigns();
    }, this.signDelayMs);
  }

  private cancelSigning(): void {
    if (this.signTimer !== undefined) clearTimeout(this.signTimer);
    this.signTimer = undefined;
  }

  private deviceSigns(): void {
    const operation = this.pendingOperation;
    const signDataBase64 = this.resource.signData;
    if (operation === undefined || operation.done || signDataBase64 === undefined || this.finished) return;
    if (this.deviceRefuses) {
      this.failOnDevice(
        'The device could not sign the proof of possession.',
        'The certificate provisioning process is in failure state ' +
          'CERTIFICATE_PROVISIONING_RESULT_ERROR_INVALID_SIGNATURE (The proof of possession signature is invalid).',
      );
      return;
    }
    let data = Buffer.from(signDataBase64, 'base64');
    if (this.badSignature) data = Buffer.concat([data, Buffer.from('tampered')]);
    // RSASSA-PKCS1-v1_5-SHA256 / ECDSA-P256-SHA256 over the raw signData bytes (reference, "signData semantics").
    // The callback form runs on the libuv pool, keeping RSA signing off the event loop.
    const key =
      this.key.type === 'ec-p256' ? { key: this.key.privateKey, dsaEncoding: this.ecdsaEncoding } : this.key.privateKey;
    sign('sha256', data, key, (error, signature) => {
      if (this.closed || operation.done || this.finished) return;
      if (error !== null) {
        this.failOnDevice('The device could not sign the proof of possession.', `Signing failed: ${error.message}`);
        return;
      }
      this.resource.signature = signature.toString('base64');
      operation.done = true;
      this.pendingOperation = undefined;
    });
  }

  /** The device fails the process: failureMessage set, every unfinished operation ends with code 3. */
  private failOnDevice(failureMessage: string, operationError: string): void {
    this.cancelSigning();
    this.pendingOperation = undefined;
    for (const operation of this.operations.values()) {
      if (operation.done) continue;
      operation.done = true;
      operation.error = { code: OPERATION_ERROR_CODE, message: operationError };
    }
    this.setFailed(failureMessage);
  }

  private setFailed(message: string): void {
    const wasFinished = this.finished;
    this.resource.failureMessage = message;
    if (!wasFinished) this.host.onFinished(this);
  }

  // --- helpers ------------------------------------------------------------------------------------------------

  /** signData, uploadCertificate and setFailure need a claimed, unfinished process. */
  private requireWorkable(): void {
    if (this.claimedBy === undefined) {
      throw failedPrecondition('The certificate provisioning process must be claimed first.');
    }
    if (this.finished) throw failedPrecondition('The certificate provisioning process is already finished.');
  }

  private newOperation(): OperationState {
    const id = randomBytes(12).toString('base64url');
    const operation: OperationState = {
      name: `${this.name}/operations/${id}`,
      startTime: new Date().toISOString(),
      done: false,
    };
    this.operations.set(id, operation);
    return operation;
  }

  private operationJson(operation: OperationState): Operation {
    const json: Operation = {
      name: operation.name,
      metadata: { '@type': SIGN_DATA_METADATA_TYPE, startTime: operation.startTime },
    };
    if (!operation.done) return json;
    json.done = true;
    if (operation.error !== undefined) json.error = { ...operation.error };
    else json.response = { '@type': SIGN_DATA_RESPONSE_TYPE, certificateProvisioningProcess: this.snapshot() };
    return json;
  }
}

function deviceFields(device: { readonly serialNumber?: string; readonly deviceDirectoryApiId?: string }) {
  return {
    ...(device.deviceDirectoryApiId === undefined ? {} : { deviceDirectoryApiId: device.deviceDirectoryApiId }),
    ...(device.serialNumber === undefined ? {} : { serialNumber: device.serialNumber }),
  };
}
