/**
 * Value types shared by CSR building, CA backends and the workflow. Pure data: no behaviour, no imports.
 */

/** One attribute of a relative distinguished name, already rendered (no template left in `value`). */
export interface SubjectAttribute {
  /** Short name as written in profiles (`CN`, `O`, `OU`, `C`, `E`, …). */
  readonly type: string;
  /** Dotted OID of the attribute type. */
  readonly oid: string;
  readonly value: string;
}

/** An RDN sequence, most significant first as written (`CN=…,O=…` → `[[CN], [O]]`); each RDN may be multi-valued. */
export type DistinguishedName = readonly (readonly SubjectAttribute[])[];

export type SubjectAltNameType = 'email' | 'dns' | 'uri' | 'upn';

export interface SubjectAltName {
  readonly type: SubjectAltNameType;
  readonly value: string;
}

/** The device key as the policy sees it (DESIGN.md §5: RSA ≥ 2048 or EC P-256). */
export type DeviceKeyInfo =
  | { readonly type: 'rsa'; readonly modulusBits: number; readonly publicExponent: number }
  | { readonly type: 'ec'; readonly namedCurve: string };

export type KeyType = DeviceKeyInfo['type'];

/** keyUsage bits a leaf certificate may carry (RFC 5280 §4.2.1.3; src/pki/key-usage.ts says which key needs which). */
export type LeafKeyUsage =
  'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'dataEncipherment' | 'keyAgreement';

/** A certificate profile rendered for one process: what the issued certificate must say. */
export interface RenderedProfile {
  /** The profile's name in configuration (the process's profileAdapterConfigReference). */
  readonly name: string;
  readonly subject: DistinguishedName;
  readonly subjectAltNames: readonly SubjectAltName[];
  /** Requested lifetime in milliseconds, counted from issuance (backends cap it at their CA's notAfter). */
  readonly validityMs: number;
  /** Extended key usages as dotted OIDs. */
  readonly extendedKeyUsages: readonly string[];
  /**
   * keyUsage bits, already checked against the device key type. Absent in records written before profiles had
   * `keyUsages`: the key type's default applies (src/pki/key-usage.ts).
   */
  readonly keyUsages?: readonly LeafKeyUsage[];
}
