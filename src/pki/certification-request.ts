/**
 * PKCS#10 (RFC 2986) in two halves, because the adapter never holds the device key (DESIGN.md §1):
 *
 * 1. {@link buildCertificationRequestInfo} renders the CertificationRequestInfo whose DER is sent as `signData`;
 * 2. {@link assembleCertificationRequest} wraps those exact bytes with the device's signature.
 *
 * The info is never re-encoded between the two (a re-encoding that differs by one byte invalidates the device's
 * signature), so the outer SEQUENCE is concatenated by hand around the signed bytes. On resume after a crash the
 * bytes come back from the process's `signData`; {@link parseCertificationRequestInfo} checks them and hands out
 * the SPKI inside, so the workflow can compare it with the process SPKI.
 */
import { TerminalError } from '../errors.ts';
import {
  DerError,
  TAG,
  assertWellFormed,
  bitString,
  contextConstructed,
  encodeOid,
  readChildren,
  readSingle,
  sequence,
  setOf,
  smallInteger,
} from './der.ts';
import { ecdsaDerToRaw } from './proof-of-possession.ts';
import { extendedKeyUsageExtension, subjectAltNameExtension } from './extensions.ts';
import { encodeName } from './name-encoding.ts';
import { signatureAlgorithmIdentifier } from './signature-algorithms.ts';
import { signAndVerify, type TbsSigner } from './signer.ts';
import type { DistinguishedName, KeyType, SubjectAltName } from './types.ts';

/** PKCS#9 extensionRequest attribute (RFC 2985 §5.4.2). */
export const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14';

export interface CertificationRequestInfoInput {
  /** The rendered subject; each attribute value is encoded as one AttributeValue. */
  readonly subject: DistinguishedName;
  /** Requested SANs; sent in an extensionRequest attribute. None → no subjectAltName requested. */
  readonly subjectAltNames: readonly SubjectAltName[];
  /** The device SubjectPublicKeyInfo (DER), embedded verbatim. */
  readonly spkiDer: Uint8Array;
  /** EKU OIDs to request as well. Default: none (the CA takes them from the profile anyway). */
  readonly extendedKeyUsages?: readonly string[];
}

/**
 * DER of `CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, subjectPKInfo,
 * attributes [0] IMPLICIT SET OF Attribute }`.
 */
export function buildCertificationRequestInfo(input: CertificationRequestInfoInput): Uint8Array {
  // The SPKI goes in verbatim; it must at least be one well-formed DER SEQUENCE.
  assertWellFormed(readSingle(input.spkiDer, TAG.SEQUENCE, 'SubjectPublicKeyInfo'));

  const extensions: Uint8Array[] = [];
  if (input.subjectAltNames.length > 0) {
    extensions.push(subjectAltNameExtension(input.subjectAltNames, input.subject.length === 0));
  }
  if (input.extendedKeyUsages !== undefined && input.extendedKeyUsages.length > 0) {
    extensions.push(extendedKeyUsageExtension(input.extendedKeyUsages));
  }
  const attributes =
    extensions.length === 0 ? [] : [sequence(encodeOid(EXTENSION_REQUEST_OID), setOf([sequence(...extensions)]))];

  return sequence(smallInteger(0), encodeName(input.subject), input.spkiDer, setOf(attributes, contextConstructed(0)));
}

/** The PKCS#10 signature algorithm for the device key: sha256WithRSAEncryption or ecdsa-with-SHA256. */
export function csrSignatureAlgorithm(keyType: KeyType): 'RS256' | 'ES256' {
  return keyType === 'rsa' ? 'RS256' : 'ES256';
}

/**
 * DER `CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }`
 * around the exact `criDer` bytes.
 * @param signatureDer the device signature as verified (DER ECDSA-Sig-Value for EC; see verifyProofOfPossession)
 */
export function assembleCertificationRequest(
  criDer: Uint8Array,
  keyType: KeyType,
  signatureDer: Uint8Array,
): Uint8Array {
  assertWellFormed(readSingle(criDer, TAG.SEQUENCE, 'CertificationRequestInfo'));
  if (signatureDer.length === 0) throw new DerError('empty signature');
  if (keyType === 'ec') ecdsaDerToRaw(signatureDer, 66); // must be DER here; raw r||s is converted before
  return sequence(criDer, signatureAlgorithmIdentifier(csrSignatureAlgorithm(keyType)), bitString(signatureDer));
}

export interface SignedRequestInput {
  /** The requester's subject (a CA's own name, e.g. `CN=Example Device Issuing CA,O=Example`). */
  readonly subject: DistinguishedName;
  /** The public key the request is for (DER SPKI); the signer must hold its private half. */
  readonly spkiDer: Uint8Array;
  readonly signer: TbsSigner;
  readonly signal?: AbortSignal;
}

/**
 * A PKCS#10 request signed by a key the adapter holds only through a signer (a CA key in Cloud KMS asking its
 * parent CA for a certificate). The signature is verified against `spkiDer` before the request is returned, so a
 * signer for another key cannot produce a request the parent would refuse.
 * @returns the DER CertificationRequest.
 * @throws SignatureMismatchError when the signer's key is not the one in `spkiDer`.
 */
export async function buildSignedCertificationRequest(input: SignedRequestInput): Promise<Uint8Array> {
  const info = buildCertificationRequestInfo({ subject: input.subject, subjectAltNames: [], spkiDer: input.spkiDer });
  return (await signAndVerify(info, input.signer, input.spkiDer, input.signal)).der;
}

export interface ParsedCertificationRequestInfo {
  /** The SubjectPublicKeyInfo inside, as a view of the input bytes (verbatim). */
  readonly spkiDer: Uint8Array;
  /** The subject Name, DER, verbatim. */
  readonly subjectDer: Uint8Array;
}

/**
 * Minimal validation of bytes that should be the DER of a CertificationRequestInfo (taken from a process's
 * `signData` when resuming): version 0, a Name, an SPKI, the attributes, nothing else, well-formed DER throughout.
 * @throws TerminalError (`internal`) when they are not: signData cannot be asked for twice (DESIGN.md §1), so a
 *   process whose signed bytes are not a request this adapter could have built cannot be completed.
 */
export function parseCertificationRequestInfo(der: Uint8Array): ParsedCertificationRequestInfo {
  try {
    const info = readSingle(der, TAG.SEQUENCE, 'CertificationRequestInfo');
    assertWellFormed(info);
    const children = readChildren(info);
    const [version, subject, spki, attributes] = children;
    if (
      children.length !== 4 ||
      version === undefined ||
      subject === undefined ||
      spki === undefined ||
      attributes === undefined
    ) {
      throw new DerError(`CertificationRequestInfo has ${children.length} fields, expected 4`);
    }
    if (version.tag !== TAG.INTEGER || version.contents.length !== 1 || version.contents[0] !== 0) {
      throw new DerError('CertificationRequestInfo version is not 0');
    }
    if (subject.tag !== TAG.SEQUENCE) throw new DerError('subject is not a Name');
    if (spki.tag !== TAG.SEQUENCE || readChildren(spki).length !== 2)
      throw new DerError('subjectPKInfo is not an SPKI');
    if (attributes.tag !== contextConstructed(0)) throw new DerError('attributes [0] missing');
    return { spkiDer: spki.bytes, subjectDer: subject.bytes };
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    throw new TerminalError(`signData is not a CertificationRequestInfo: ${error.message}`, {
      reason: 'internal',
      cause: error,
    });
  }
}
