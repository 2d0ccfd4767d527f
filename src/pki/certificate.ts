/**
 * Reading X.509 certificates: the semantic fields through `@peculiar/asn1-x509`, and the pieces that are compared
 * or reused byte for byte (TBS, issuer/subject Name, SPKI) as views of the original DER, never re-encoded.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { AuthorityKeyIdentifier, BasicConstraints, Certificate, Name, SubjectKeyIdentifier } from '@peculiar/asn1-x509';
import {
  DerError,
  TAG,
  assertWellFormed,
  bytesEqual,
  decodeOid,
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

/** What the inventory keeps of a leaf: the fields of {@link ParsedCertificate} it records, and the issuer in words. */
export interface CertificateSummary {
  readonly serialHex: string;
  /** The issuer Name as {@link describeName} writes it. */
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spkiDer: Uint8Array;
  readonly authorityKeyIdentifier: Uint8Array | undefined;
}

/**
 * The inventory's fields of a certificate, read with the strict DER reader: the same values as
 * {@link parseCertificate}, at a fraction of its cost (only the issuer Name goes through the ASN.1 toolkit). The
 * workflow records every leaf it uploads, so this runs once per certificate.
 */
export function certificateSummary(input: string | Uint8Array): CertificateSummary {
  const parts = splitCertificate(derFrom(input, 'CERTIFICATE'));
  const serial = field(parts, 1, TAG.INTEGER, 'serialNumber');
  const validity = readChildren(field(parts, 4, TAG.SEQUENCE, 'validity'));
  const [notBefore, notAfter] = validity;
  if (validity.length !== 2 || notBefore === undefined || notAfter === undefined) {
    throw new DerError('TBSCertificate validity is not SEQUENCE { notBefore, notAfter }');
  }
  return {
    serialHex: toHex(serial.contents).replace(/^(00)+(?=.)/, ''),
    issuer: describeName(AsnConvert.parse(field(parts, 3, TAG.SEQUENCE, 'issuer').bytes, Name)),
    notBefore: decodeTime(notBefore),
    notAfter: decodeTime(notAfter),
    spkiDer: field(parts, 6, TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes,
    authorityKeyIdentifier: authorityKeyIdentifierOf(parts),
  };
}

/** UTCTime (years 1950–2049) or GeneralizedTime, in UTC as RFC 5280 §4.1.2.5 requires (fractions tolerated). */
function decodeTime(element: DerElement): Date {
  const text = Buffer.from(element.contents).toString('latin1');
  const match =
    element.tag === TAG.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : element.tag === TAG.GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(text)
        : null;
  if (match === null) throw new DerError(`certificate validity time "${text}" is not a UTC time`);
  const [, y, mo, d, h, mi, sec, fraction] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  const year = element.tag === TAG.UTC_TIME ? (Number(y) >= 50 ? 1900 : 2000) + Number(y) : Number(y);
  const ms = fraction === undefined ? 0 : Math.floor(Number(fraction) * 1000);
  return new Date(Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), ms));
}

/** The keyIdentifier of the authorityKeyIdentifier extension, when the certificate has one. */
function authorityKeyIdentifierOf(parts: TbsParts): Uint8Array | undefined {
  // After the SPKI: issuerUniqueID [1], subjectUniqueID [2], extensions [3] EXPLICIT, each optional.
  const extensions = parts.fields.slice(6 + parts.versionOffset).find((f) => f.tag === 0xa3);
  if (extensions === undefined) return undefined;
  for (const extension of readChildren(readSingle(extensions.contents, TAG.SEQUENCE, 'extensions'))) {
    const children = readChildren(extension);
    const value = children[children.length - 1];
    if (children[0] === undefined || decodeOid(children[0]) !== EXTENSION_OIDS.authorityKeyIdentifier) continue;
    if (value?.tag !== TAG.OCTET_STRING) throw new DerError('authorityKeyIdentifier extnValue is not an OCTET STRING');
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, … }
    const keyIdentifier = readChildren(readSingle(value.contents, TAG.SEQUENCE, 'authorityKeyIdentifier')).find(
      (c) => c.tag === 0x80,
    );
    return keyIdentifier === undefined ? undefined : new Uint8Array(keyIdentifier.contents);
  }
  return undefined;
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
