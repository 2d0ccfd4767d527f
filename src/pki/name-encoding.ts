/**
 * DER encodings of the profile's subject and subject alternative names, shared by the CSR builder and the
 * certificate builder so both say exactly the same thing (extensions.ts wraps the SANs into an extension).
 *
 * Each rendered attribute is encoded as ONE AttributeValue: the value is never parsed as DN text, so an email such
 * as `a,b+c@example.com` stays one CN (DESIGN.md §1).
 */
import {
  DerError,
  contextConstructed,
  contextPrimitive,
  encodeOid,
  ia5String,
  printableString,
  sequence,
  setOf,
  tlv,
  utf8String,
} from './der.ts';
import { SUBJECT_ATTRIBUTE_TYPES, type StringEncoding } from './subject-template.ts';
import type { DistinguishedName, SubjectAltName, SubjectAttribute } from './types.ts';

/** Microsoft's User Principal Name otherName (used by Windows/AD for smart-card logon and Wi-Fi EAP-TLS). */
export const UPN_OID = '1.3.6.1.4.1.311.20.2.3';

const ENCODING_BY_OID: ReadonlyMap<string, StringEncoding> = new Map(
  Object.values(SUBJECT_ATTRIBUTE_TYPES).map((info) => [info.oid, info.encoding]),
);

/** The string type an attribute is written with: from SUBJECT_ATTRIBUTE_TYPES by OID, UTF8String otherwise (RFC 5280 §4.1.2.6). */
export function attributeEncoding(attribute: SubjectAttribute): StringEncoding {
  return ENCODING_BY_OID.get(attribute.oid) ?? 'utf8';
}

function encodeAttributeValue(attribute: SubjectAttribute): Uint8Array {
  if (attribute.value === '') throw new DerError(`${attribute.type} has an empty value (SIZE (1..MAX))`);
  try {
    switch (attributeEncoding(attribute)) {
      case 'printable':
        return printableString(attribute.value);
      case 'ia5':
        return ia5String(attribute.value);
      case 'utf8':
        return utf8String(attribute.value);
    }
  } catch (error) {
    throw new DerError(`${attribute.type}: ${(error as Error).message}`);
  }
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName; each RDN a DER-sorted SET OF AttributeTypeAndValue. */
export function encodeName(name: DistinguishedName): Uint8Array {
  return sequence(
    ...name.map((rdn) => {
      if (rdn.length === 0) throw new DerError('empty RDN');
      return setOf(rdn.map((attribute) => sequence(encodeOid(attribute.oid), encodeAttributeValue(attribute))));
    }),
  );
}

function encodeGeneralName(san: SubjectAltName): Uint8Array {
  switch (san.type) {
    case 'email':
      // rfc822Name [1] IMPLICIT IA5String: same contents, context tag.
      return retag(ia5String(san.value), contextPrimitive(1));
    case 'dns':
      return retag(ia5String(san.value), contextPrimitive(2));
    case 'uri':
      return retag(ia5String(san.value), contextPrimitive(6));
    case 'upn':
      // otherName [0] IMPLICIT SEQUENCE { type-id, value [0] EXPLICIT UTF8String }
      return tlv(contextConstructed(0), encodeOid(UPN_OID), tlv(contextConstructed(0), utf8String(san.value)));
  }
}

/** Replaces the tag of a single-byte-tag TLV (IMPLICIT tagging). */
function retag(element: Uint8Array, tag: number): Uint8Array {
  const copy = element.slice();
  copy[0] = tag;
  return copy;
}

/** GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName, in profile order. */
export function encodeGeneralNames(names: readonly SubjectAltName[]): Uint8Array {
  if (names.length === 0) throw new DerError('subjectAltName needs at least one name');
  return sequence(...names.map(encodeGeneralName));
}
