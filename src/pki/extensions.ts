/**
 * X.509 v3 extensions (RFC 5280 §4.2) as DER, shared by the CSR's extensionRequest and the certificate builder.
 */
import { createHash } from 'node:crypto';
import {
  DerError,
  TAG,
  boolean,
  contextConstructed,
  contextPrimitive,
  encodeOid,
  ia5String,
  namedBitString,
  octetString,
  readChildren,
  readSingle,
  sequence,
  smallInteger,
  tlv,
} from './der.ts';
import { encodeGeneralNames } from './name-encoding.ts';
import type { SubjectAltName } from './types.ts';

export const EXTENSION_OIDS = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  cRLDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
} as const;

/** id-ad-caIssuers (RFC 5280 §4.2.2.1). */
const CA_ISSUERS_OID = '1.3.6.1.5.5.7.48.2';

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE_BITS = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export type KeyUsageName = keyof typeof KEY_USAGE_BITS;

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } — DER omits a FALSE default. */
export function encodeExtension(oid: string, critical: boolean, valueDer: Uint8Array): Uint8Array {
  return critical
    ? sequence(encodeOid(oid), boolean(true), octetString(valueDer))
    : sequence(encodeOid(oid), octetString(valueDer));
}

export function basicConstraintsExtension(options: { ca: boolean; pathLength?: number }): Uint8Array {
  const value = options.ca
    ? sequence(boolean(true), ...(options.pathLength === undefined ? [] : [smallInteger(options.pathLength)]))
    : sequence(); // cA DEFAULT FALSE is omitted in DER
  return encodeExtension(EXTENSION_OIDS.basicConstraints, true, value);
}

export function keyUsageExtension(usages: readonly KeyUsageName[]): Uint8Array {
  return encodeExtension(EXTENSION_OIDS.keyUsage, true, namedBitString(usages.map((u) => KEY_USAGE_BITS[u])));
}

export function extendedKeyUsageExtension(oids: readonly string[]): Uint8Array {
  if (oids.length === 0) throw new DerError('extKeyUsage needs at least one purpose');
  return encodeExtension(EXTENSION_OIDS.extKeyUsage, false, sequence(...oids.map(encodeOid)));
}

/** RFC 5280 §4.2.1.6: the SAN extension is critical when the subject is empty. */
export function subjectAltNameExtension(names: readonly SubjectAltName[], subjectIsEmpty: boolean): Uint8Array {
  return encodeExtension(EXTENSION_OIDS.subjectAltName, subjectIsEmpty, encodeGeneralNames(names));
}

export function subjectKeyIdentifierExtension(keyIdentifier: Uint8Array): Uint8Array {
  return encodeExtension(EXTENSION_OIDS.subjectKeyIdentifier, false, octetString(keyIdentifier));
}

/** AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, … } */
export function authorityKeyIdentifierExtension(keyIdentifier: Uint8Array): Uint8Array {
  return encodeExtension(
    EXTENSION_OIDS.authorityKeyIdentifier,
    false,
    sequence(tlv(contextPrimitive(0), keyIdentifier)),
  );
}

/** GeneralName uniformResourceIdentifier: `[6] IMPLICIT IA5String`. */
function uriGeneralName(uri: string): Uint8Array {
  return ia5StringAs(contextPrimitive(6), uri);
}

function ia5StringAs(tag: number, value: string): Uint8Array {
  const ia5 = ia5String(value);
  return tlv(tag, ia5.subarray(ia5.length - value.length));
}

/**
 * cRLDistributionPoints (RFC 5280 §4.2.1.13) with one DistributionPoint whose fullName is `url`:
 * `SEQUENCE { SEQUENCE { [0] { [0] { [6] url } } } }`. Not critical.
 */
export function crlDistributionPointsExtension(url: string): Uint8Array {
  const fullName = tlv(contextConstructed(0), uriGeneralName(url));
  const distributionPointName = tlv(contextConstructed(0), fullName);
  return encodeExtension(EXTENSION_OIDS.cRLDistributionPoints, false, sequence(sequence(distributionPointName)));
}

/** authorityInfoAccess (RFC 5280 §4.2.2.1) with one caIssuers URL, where a relying party fetches the CA certificate. */
export function authorityInfoAccessExtension(caIssuersUrl: string): Uint8Array {
  return encodeExtension(
    EXTENSION_OIDS.authorityInfoAccess,
    false,
    sequence(sequence(encodeOid(CA_ISSUERS_OID), uriGeneralName(caIssuersUrl))),
  );
}

/** The subjectPublicKey BIT STRING's bits (without the unused-bits octet) of a DER SubjectPublicKeyInfo. */
export function subjectPublicKeyBits(spkiDer: Uint8Array): Uint8Array {
  const spki = readSingle(spkiDer, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const children = readChildren(spki);
  const [algorithm, key] = children;
  if (children.length !== 2 || algorithm?.tag !== TAG.SEQUENCE || key?.tag !== TAG.BIT_STRING) {
    throw new DerError('SubjectPublicKeyInfo is not SEQUENCE { AlgorithmIdentifier, BIT STRING }');
  }
  if (key.contents.length < 2 || key.contents[0] !== 0) throw new DerError('subjectPublicKey is not whole octets');
  return key.contents.subarray(1);
}

/** Key identifier by RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
export function keyIdentifierOf(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha1').update(subjectPublicKeyBits(spkiDer)).digest());
}
