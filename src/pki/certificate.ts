/**
 * Reading X.509 certificates: the semantic fields through `@peculiar/asn1-x509`, and the pieces that are compared
 * or reused byte for byte (TBS, issuer/subject Name, SPKI) as views of the original DER, never re-encoded.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  SubjectKeyIdentifier,
  type Name,
} from '@peculiar/asn1-x509';
import {
  DerError,
  TAG,
  assertWellFormed,
  bytesEqual,
  readChildren,
  readSingle,
  toHex,
  type DerElement,
} from './der.ts';
import { EXTENSION_OIDS } from './extensions.ts';
import { derFrom } from './pem.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from './subject-template.ts';

export interface ParsedCertificate {
  readonly der: Uint8Array;
  /** The signed part, verbatim. */
  readonly tbsDer: Uint8Array;
  /** Serial number as lowercase hex of its magnitude. */
  readonly serialHex: string;
  readonly issuerNameDer: Uint8Array;
  readonly subjectNameDer: Uint8Array;
  /** SubjectPublicKeyInfo, verbatim. */
  readonly spkiDer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectKeyIdentifier: Uint8Array | undefined;
  /** The authorityKeyIdentifier's keyIdentifier: names the CA key that signed. */
  readonly authorityKeyIdentifier: Uint8Array | undefined;
  /** basicConstraints cA. */
  readonly isCa: boolean;
  /** Signature algorithm OID of the outer certificate. */
  readonly signatureAlgorithmOid: string;
  /** Signature bits (BIT STRING contents without the unused-bits octet). */
  readonly signature: Uint8Array;
  /** The full parse, for callers that need more (extensions, names). */
  readonly asn1: Certificate;
}

interface TbsParts {
  readonly tbs: DerElement;
  readonly fields: readonly DerElement[];
  /** 1 when the optional `version [0]` is present (every v3 certificate), else 0 (v1). */
  readonly versionOffset: number;
  readonly signatureBits: Uint8Array;
}

function splitCertificate(der: Uint8Array): TbsParts {
  const certificate = readSingle(der, TAG.SEQUENCE, 'Certificate');
  assertWellFormed(certificate);
  const outer = readChildren(certificate);
  const [tbs, , signature] = outer;
  if (outer.length !== 3 || tbs?.tag !== TAG.SEQUENCE || signature?.tag !== TAG.BIT_STRING) {
    throw new DerError('Certificate is not SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }');
  }
  if (signature.contents[0] !== 0) throw new DerError('signatureValue is not whole octets');
  const fields = readChildren(tbs);
  const versionOffset = fields[0]?.tag === 0xa0 ? 1 : 0;
  if (fields.length < 6 + versionOffset) throw new DerError('TBSCertificate has too few fields');
  return { tbs, fields, versionOffset, signatureBits: signature.contents.subarray(1) };
}

/** A TBSCertificate field by its position in a v3 certificate (version = 0, serial = 1, …, SPKI = 6). */
function field(parts: TbsParts, index: number, tag: number, what: string): DerElement {
  const element = parts.fields[index - 1 + parts.versionOffset];
  if (element?.tag !== tag) throw new DerError(`TBSCertificate ${what} missing or malformed`);
  return element;
}

/** Parses a certificate from PEM (one CERTIFICATE block) or DER. */
export function parseCertificate(input: string | Uint8Array): ParsedCertificate {
  const der = derFrom(input, 'CERTIFICATE');
  const parts = splitCertificate(der);
  const asn1 = AsnConvert.parse(der, Certificate);
  const tbs = asn1.tbsCertificate;
  const extension = (oid: string) => tbs.extensions?.find((e) => e.extnID === oid);
  const ski = extension(EXTENSION_OIDS.subjectKeyIdentifier);
  const bc = extension(EXTENSION_OIDS.basicConstraints);
  const aki = extension(EXTENSION_OIDS.authorityKeyIdentifier);
  const akiId = aki === undefined ? undefined : AsnConvert.parse(aki.extnValue, AuthorityKeyIdentifier).keyIdentifier;
  return {
    der,
    tbsDer: parts.tbs.bytes,
    serialHex: toHex(new Uint8Array(tbs.serialNumber)).replace(/^(00)+(?=.)/, ''),
    issuerNameDer: field(parts, 3, TAG.SEQUENCE, 'issuer').bytes,
    subjectNameDer: field(parts, 5, TAG.SEQUENCE, 'subject').bytes,
    spkiDer: field(parts, 6, TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes,
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
    subjectKeyIdentifier:
      ski === undefined ? undefined : new Uint8Array(AsnConvert.parse(ski.extnValue, SubjectKeyIdentifier).buffer),
    authorityKeyIdentifier: akiId === undefined ? undefined : new Uint8Array(akiId.buffer),
    isCa: bc === undefined ? false : AsnConvert.parse(bc.extnValue, BasicConstraints).cA,
    signatureAlgorithmOid: asn1.signatureAlgorithm.algorithm,
    signature: parts.signatureBits,
    asn1,
  };
}

/** The SubjectPublicKeyInfo (DER) of a certificate, exactly as it appears in the certificate. */
export function spkiOfCertificate(certificate: string | Uint8Array): Uint8Array {
  const parts = splitCertificate(derFrom(certificate, 'CERTIFICATE'));
  return field(parts, 6, TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes;
}

/**
 * Whether the certificate carries exactly this SPKI, byte for byte. The workflow checks this before uploading:
 * Chrome requires the uploaded certificate's key to be the device key (DESIGN.md §1). Malformed input → false.
 */
export function certificateMatchesSpki(certificatePem: string, spkiDer: Uint8Array): boolean {
  try {
    return bytesEqual(spkiOfCertificate(certificatePem), spkiDer);
  } catch {
    return false;
  }
}

const SHORT_NAMES = new Map(Object.entries(SUBJECT_ATTRIBUTE_TYPES).map(([short, info]) => [info.oid, short]));

/** `CN=…, O=…` for messages and listings (no escaping: display only). */
export function describeName(name: Name): string {
  return name
    .map((rdn) => rdn.map((atv) => `${SHORT_NAMES.get(atv.type) ?? atv.type}=${atv.value.toString()}`).join('+'))
    .join(', ');
}
