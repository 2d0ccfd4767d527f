/**
 * Builds and signs certificates for the CA backends that sign themselves (local CA, Key Vault-held CA).
 *
 * The signature is pluggable ({@link TbsSigner}, src/pki/signer.ts): the local CA signs with a key in memory, the
 * Key Vault and Cloud KMS backends hash the TBS and have the service sign the digest remotely. Whatever the signer
 * returns is verified against the issuer's public key before the certificate leaves this module
 * ({@link signAndVerify}), so a remote signer that answers with garbage (or a key that does not belong to the CA
 * certificate) is caught here, not by a device.
 *
 * Every field comes from the rendered profile; the CSR's own subject and extensions are never copied (the CSR
 * only proves possession of the key).
 */
import { randomBytes } from 'node:crypto';
import { DerError, contextConstructed, sequence, smallInteger, tlv, toHex, unsignedInteger, x509Time } from './der.ts';
import { parseDeviceKey } from './device-key.ts';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  crlDistributionPointsExtension,
  extendedKeyUsageExtension,
  keyIdentifierOf,
  keyUsageExtension,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
} from './extensions.ts';
import { keyUsagesForDevice } from './key-usage.ts';
import { encodeName } from './name-encoding.ts';
import { encodePem } from './pem.ts';
import { signatureAlgorithmIdentifier, type SigningAlgorithm } from './signature-algorithms.ts';
import { signAndVerify, type TbsSigner } from './signer.ts';
import type { ParsedCertificate } from './certificate.ts';
import type { DistinguishedName, RenderedProfile } from './types.ts';

export { spkiOfCertificate, certificateMatchesSpki, parseCertificate, type ParsedCertificate } from './certificate.ts';
export type { SigningAlgorithm } from './signature-algorithms.ts';
export { SignatureMismatchError, signerFromPrivateKey, type TbsSigner } from './signer.ts';

/** The issuing CA certificate has expired: nothing it signs would be valid. */
export class IssuerExpiredError extends Error {
  constructor(notAfter: Date) {
    super(`the issuing CA certificate expired at ${notAfter.toISOString()}`);
    this.name = 'IssuerExpiredError';
  }
}

/** Default clock-skew allowance for notBefore (DESIGN.md §4: backdated a few minutes). */
export const DEFAULT_BACKDATE_MS = 5 * 60_000;

/** 16 random bytes with a leading byte in 0x01–0x7f: positive, no padding octet, ~127 bits of entropy. */
export function randomSerialNumber(): Uint8Array {
  const serial = new Uint8Array(randomBytes(16));
  serial[0] = (serial[0] as number) & 0x7f || 0x01;
  return serial;
}

export interface BuiltCertificate {
  readonly der: Uint8Array;
  readonly pem: string;
  /** Serial number, lowercase hex. */
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The leaf is shorter than its profile asked because the issuing CA certificate expires sooner. */
  readonly cappedByIssuer?: boolean;
}

export interface LeafCertificateOptions {
  /** The issuing CA certificate (parse it once with parseCertificate). */
  readonly issuer: ParsedCertificate;
  /** The device SubjectPublicKeyInfo (DER); goes into the certificate verbatim. Must pass the key policy. */
  readonly spkiDer: Uint8Array;
  /** Subject, SANs, validity, EKUs and keyUsage (default: by key type), rendered from the profile. */
  readonly profile: Pick<
    RenderedProfile,
    'subject' | 'subjectAltNames' | 'validityMs' | 'extendedKeyUsages' | 'keyUsages'
  > & {
    /** For messages. */
    readonly name?: string;
  };
  readonly signer: TbsSigner;
  /** Cancels a remote signature (shutdown, lost lease). */
  readonly signal?: AbortSignal;
  /** Issuance time. Default: now. */
  readonly now?: Date;
  /** How far notBefore is set back for device clock skew. Default {@link DEFAULT_BACKDATE_MS} (5 min). */
  readonly backdateMs?: number;
  /** The CA's own limit on a leaf's lifetime (ms), applied on top of the profile's. Default: none. */
  readonly maxValidityMs?: number;
  /** Positive big-endian serial number. Default: {@link randomSerialNumber}. */
  readonly serial?: Uint8Array;
  /** Where relying parties find revocation information and the CA certificate. Default: neither extension. */
  readonly revocationInfo?: RevocationInfo;
}

/** The URLs a self-run CA's leaves point to (cRLDistributionPoints, authorityInfoAccess caIssuers). */
export interface RevocationInfo {
  readonly crlUrl?: string;
  readonly caIssuersUrl?: string;
}

interface TbsInput {
  readonly serial: Uint8Array;
  readonly algorithm: SigningAlgorithm;
  readonly issuerNameDer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectNameDer: Uint8Array;
  readonly spkiDer: Uint8Array;
  readonly extensions: readonly Uint8Array[];
}

function floorToSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function buildTbs(input: TbsInput): Uint8Array {
  if (input.serial.length === 0 || input.serial.length > 20 || ((input.serial[0] as number) & 0x80) !== 0) {
    throw new DerError('serial number must be 1–20 octets and positive (RFC 5280 §4.1.2.2)');
  }
  if (input.serial.every((b) => b === 0)) throw new DerError('serial number must not be zero');
  return sequence(
    tlv(contextConstructed(0), smallInteger(2)), // v3
    unsignedInteger(input.serial),
    signatureAlgorithmIdentifier(input.algorithm),
    input.issuerNameDer,
    sequence(x509Time(input.notBefore), x509Time(input.notAfter)),
    input.subjectNameDer,
    input.spkiDer,
    tlv(contextConstructed(3), sequence(...input.extensions)),
  );
}

function finish(der: Uint8Array, serial: Uint8Array, notBefore: Date, notAfter: Date): BuiltCertificate {
  return { der, pem: encodePem('CERTIFICATE', der), serialHex: toHex(serial), notBefore, notAfter };
}

/**
 * Builds and signs a leaf certificate: basicConstraints CA:false (critical), keyUsage (critical; the profile's
 * `keyUsages`, by default EC: digitalSignature, RSA: digitalSignature + keyEncipherment), extKeyUsage and
 * subjectAltName from the profile
 * (SAN critical when the subject is empty), SKI (RFC 5280 method 1) and AKI = the issuer's key identifier.
 * Validity runs from `now - backdate` to `min(now + validity, issuer.notAfter)`: a leaf never outlives its CA.
 * @throws TerminalError `key_policy` for a device key outside policy or a keyUsage it cannot use; DerError for a value that cannot be encoded;
 *   SignatureMismatchError when the signer's result does not verify; IssuerExpiredError when the CA has expired.
 */
export async function buildLeafCertificate(options: LeafCertificateOptions): Promise<BuiltCertificate> {
  const { issuer, profile } = options;
  const deviceKey = parseDeviceKey(options.spkiDer);
  const now = (options.now ?? new Date()).getTime();
  if (!(profile.validityMs > 0)) throw new Error(`profile validity must be positive, got ${profile.validityMs} ms`);
  if (issuer.notAfter.getTime() <= now) throw new IssuerExpiredError(issuer.notAfter);
  if (profile.subject.length === 0 && profile.subjectAltNames.length === 0) {
    throw new DerError('a certificate needs a subject or at least one subjectAltName (RFC 5280 §4.1.2.6)');
  }
  // Neither end of the leaf's validity lies outside the CA's.
  const notBefore = floorToSecond(
    Math.max(now - (options.backdateMs ?? DEFAULT_BACKDATE_MS), issuer.notBefore.getTime()),
  );
  const validityMs = Math.min(profile.validityMs, options.maxValidityMs ?? Number.POSITIVE_INFINITY);
  const notAfter = floorToSecond(Math.min(now + validityMs, issuer.notAfter.getTime()));
  const cappedByIssuer = issuer.notAfter.getTime() < now + validityMs;
  const serial = options.serial ?? randomSerialNumber();
  // Checked again although the workflow did when it rendered the profile: no certificate may carry a keyUsage
  // its key cannot honour.
  const keyUsage = keyUsagesForDevice(profile.name ?? 'profile', profile.keyUsages, deviceKey.type);
  const extensions = [
    basicConstraintsExtension({ ca: false }),
    keyUsageExtension(keyUsage),
    ...(profile.extendedKeyUsages.length > 0 ? [extendedKeyUsageExtension(profile.extendedKeyUsages)] : []),
    ...(profile.subjectAltNames.length > 0
      ? [subjectAltNameExtension(profile.subjectAltNames, profile.subject.length === 0)]
      : []),
    subjectKeyIdentifierExtension(keyIdentifierOf(options.spkiDer)),
    authorityKeyIdentifierExtension(issuer.subjectKeyIdentifier ?? keyIdentifierOf(issuer.spkiDer)),
    ...(options.revocationInfo?.crlUrl === undefined
      ? []
      : [crlDistributionPointsExtension(options.revocationInfo.crlUrl)]),
    ...(options.revocationInfo?.caIssuersUrl === undefined
      ? []
      : [authorityInfoAccessExtension(options.revocationInfo.caIssuersUrl)]),
  ];
  const tbs = buildTbs({
    serial,
    algorithm: options.signer.algorithm,
    // The issuer's subject Name, byte for byte: name chaining compares it with the issuer field.
    issuerNameDer: issuer.subjectNameDer,
    notBefore,
    notAfter,
    subjectNameDer: encodeName(profile.subject),
    spkiDer: options.spkiDer,
    extensions,
  });
  const signed = await signAndVerify(tbs, options.signer, issuer.spkiDer, options.signal);
  return { ...finish(signed.der, serial, notBefore, notAfter), cappedByIssuer };
}

export interface CaCertificateOptions {
  readonly subject: DistinguishedName;
  /** The CA's own SubjectPublicKeyInfo (DER). */
  readonly spkiDer: Uint8Array;
  /** Signs with the CA's own key (self-signed), or with the issuer's key when {@link issuer} is given. */
  readonly signer: TbsSigner;
  readonly validityMs: number;
  /** Default: now. */
  readonly now?: Date;
  /** Default {@link DEFAULT_BACKDATE_MS}. */
  readonly backdateMs?: number;
  /** basicConstraints pathLenConstraint. Default 0 (issues leaves only). */
  readonly pathLength?: number;
  /** Default: {@link randomSerialNumber}. */
  readonly serial?: Uint8Array;
  /**
   * The CA certificate that signs this one (a root issuing a subordinate CA); `signer` then holds its key. The
   * subordinate's validity ends no later than the issuer's, and its AKI names the issuer's key. Default: self-signed.
   */
  readonly issuer?: ParsedCertificate;
}

/**
 * A CA certificate: basicConstraints CA:true with pathLenConstraint (critical), keyUsage keyCertSign + cRLSign
 * (critical), SKI; self-signed unless `issuer` is given, then signed by the issuer with AKI = the issuer's key
 * identifier. (AKI is optional for self-signed certificates, RFC 5280 §4.2.1.1.)
 */
export async function buildCaCertificate(options: CaCertificateOptions): Promise<BuiltCertificate> {
  if (options.subject.length === 0) throw new DerError('a CA certificate needs a subject');
  const { issuer } = options;
  const now = (options.now ?? new Date()).getTime();
  if (issuer !== undefined && issuer.notAfter.getTime() <= now) throw new IssuerExpiredError(issuer.notAfter);
  const notBefore = floorToSecond(
    Math.max(now - (options.backdateMs ?? DEFAULT_BACKDATE_MS), issuer?.notBefore.getTime() ?? 0),
  );
  const notAfter = floorToSecond(Math.min(now + options.validityMs, issuer?.notAfter.getTime() ?? Infinity));
  const serial = options.serial ?? randomSerialNumber();
  const nameDer = encodeName(options.subject);
  const tbs = buildTbs({
    serial,
    algorithm: options.signer.algorithm,
    issuerNameDer: issuer?.subjectNameDer ?? nameDer,
    notBefore,
    notAfter,
    subjectNameDer: nameDer,
    spkiDer: options.spkiDer,
    extensions: [
      basicConstraintsExtension({ ca: true, pathLength: options.pathLength ?? 0 }),
      keyUsageExtension(['keyCertSign', 'cRLSign']),
      subjectKeyIdentifierExtension(keyIdentifierOf(options.spkiDer)),
      ...(issuer === undefined
        ? []
        : [authorityKeyIdentifierExtension(issuer.subjectKeyIdentifier ?? keyIdentifierOf(issuer.spkiDer))]),
    ],
  });
  const signed = await signAndVerify(tbs, options.signer, issuer?.spkiDer ?? options.spkiDer);
  return finish(signed.der, serial, notBefore, notAfter);
}

/** A self-signed CA certificate ({@link buildCaCertificate} without an issuer). */
export function buildSelfSignedCaCertificate(options: Omit<CaCertificateOptions, 'issuer'>): Promise<BuiltCertificate> {
  return buildCaCertificate(options);
}
